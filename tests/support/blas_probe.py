"""A task that records how many threads the BLAS of the process evaluating it may use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class BlasThreadProbe:
    """Sphere function; every call writes ``<pid> <BLAS threads>`` to a file in ``out_dir``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def __call__(self, x) -> float:
        from threadpoolctl import threadpool_info

        threads = max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
        Path(self.out_dir, f"{os.getpid()}.txt").write_text(f"{threads}\n")
        return float(np.sum(np.square(x)))


def recorded_threads(out_dir: str | Path) -> dict[int, int]:
    """pid -> BLAS threads, from the files the probe wrote."""
    return {int(p.stem): int(p.read_text()) for p in Path(out_dir).glob("*.txt")}
