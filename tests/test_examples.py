"""Every example runs (quick settings) so none rots."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_quickstart_finds_the_global_minimum(tmp_path, backend):
    """Issue 2's acceptance: the quick example finds Rastrigin's global minimum (f = 0) on one node."""
    res = subprocess.run([sys.executable, "-m", "glompo_hpc", str(ROOT / "examples" / "quickstart.yaml"),
                          "--working-dir", str(tmp_path), "--backend", backend], capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    best = float(re.search(r"Best fx:\s+(\S+)", res.stdout).group(1))
    assert best < 1e-3  # every other local minimum of Rastrigin is >= 0.99
    assert (tmp_path / "glompo_manager_log.yml").exists()
