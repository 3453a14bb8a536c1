"""Scripts written the way GloMPO 3.1's docs, examples and tests write them, imports changed only.

Each runs (with DeprecationWarnings) or stops at once with the message the guide documents.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glompo_hpc import (BestUnmoving, ChainSelector, CheckpointingControl, CMAOptimizer, CycleSelector,
                        GloMPOManager, KillsAfterConvergence, MaxFuncCalls, MaxSeconds, MinFuncCalls, NOptConverged,
                        RandomOptimizer, Rastrigin, ScipyOptimizer)
from glompo_hpc.compat.guide import GUIDE
from glompo_hpc.errors import ConfigurationError, GloMPOError
from glompo31_components import GradientTask, ReturnsNothing, SendsPauseCode, SendsText, SteepestGradient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _python_blocks(heading: str) -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.parametrize("index", [1, 2], ids=["imports-changed-only", "warnings-fixed"])
def test_the_guides_side_by_side_script_runs(tmp_path, monkeypatch, index):
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks("## A GloMPO 3.1 script, side by side")
    assert "from glompo." in blocks[0] and "from glompo_hpc import" in blocks[index]
    if index == 1:  # the 3.1 script and this one differ in their imports only
        body = [line for line in blocks[index].splitlines() if not line.startswith(("from ", "   "))]
        assert all(line in blocks[0].splitlines() for line in body)
    with pytest.warns(DeprecationWarning) if index == 1 else _no_deprecation() as record:
        namespace: dict = {}
        exec(compile(blocks[index], "guide", "exec"), namespace)
    if index == 1:
        warned = " ".join(str(w.message) for w in record)
        for name in ("convergence_checker", "killing_conditions", "hunt_frequency", "checkpoint_iter_frequency",
                     "call_kwargs", "f_evals"):
            assert name in warned
    manager = namespace["manager"]
    assert manager.f_counter >= 600 and manager.result.fx < 0
    assert list((manager.working_dir / "checkpoints").glob("*.tar"))


class _no_deprecation:
    def __enter__(self):
        import warnings
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error", DeprecationWarning)
        return []

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def _gradient_selector():
    return CycleSelector((SteepestGradient, {"max_iters": 10000, "precision": 1e-8, "gamma": [0.1, 0.01]}, None))


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_the_31_gradient_optimizer_reads_the_detailed_return_and_converges(tmp_path, backend):
    """3.1's test_mwe pattern: fx, dx, dy = function.detailed_call(x); message_manager(0, reason)."""
    task = GradientTask()
    with pytest.warns(DeprecationWarning):
        manager = GloMPOManager().setup(
            task=task, bounds=((-10, 10), (-10, 10)), opt_selector=_gradient_selector(), working_dir=tmp_path,
            overwrite_existing=True, max_jobs=2, backend=backend, summary_files=1,
            convergence_checker=KillsAfterConvergence(2, 1) | MaxFuncCalls(20000) | MaxSeconds(session_max=60),
            killing_conditions=MinFuncCalls(1000))
        result = manager.start_manager()
    assert result.fx == pytest.approx(0.0, abs=1e-8)
    assert np.allclose(result.x, [3.0, -1.0], atol=1e-4)
    assert manager.conv_counter >= 1  # message_manager(0, ...) counts as converged
    assert not manager.opt_crashed


def test_detailed_call_without_a_detailed_task_says_so(tmp_path):
    with pytest.warns(DeprecationWarning):
        manager = GloMPOManager().setup(task=lambda x: float(np.sum(np.square(x))), bounds=((-1, 1), (-1, 1)),
                                        opt_selector=_gradient_selector(), working_dir=tmp_path, backend="threads",
                                        max_jobs=1, exit_conditions=MaxFuncCalls(10))
    manager.start_manager()
    assert manager.opt_crashed
    assert any("has no detailed_call(x) method" in m for rec in manager.opt_log.records.values()
               for m in [rec.end_cond, *rec.messages])


def test_minimize_returning_none_ends_cleanly_with_its_best_point(tmp_path, caplog):
    task = Rastrigin(dims=2)
    manager = GloMPOManager().setup(task=task, bounds=task.bounds, opt_selector=CycleSelector(ReturnsNothing),
                                    working_dir=tmp_path, backend="threads", max_jobs=1,
                                    exit_conditions=MaxFuncCalls(9))
    with caplog.at_level(logging.WARNING), pytest.warns(DeprecationWarning, match="minimize returning None"):
        result = manager.start_manager()
    assert not manager.opt_crashed and np.isfinite(result.fx)
    assert "returned None" in caplog.text


def test_message_manager_9_logs_the_text_and_1_fails_saying_what_to_do(tmp_path, caplog):
    task = Rastrigin(dims=2)
    manager = GloMPOManager().setup(task=task, bounds=task.bounds, opt_selector=CycleSelector(SendsText),
                                    working_dir=tmp_path / "a", backend="threads", max_jobs=1,
                                    exit_conditions=MaxFuncCalls(3))
    with caplog.at_level(logging.WARNING), pytest.warns(DeprecationWarning, match=r"self.logger.warning\(text\)"):
        manager.start_manager()
    assert "a note from the optimizer" in caplog.text and not manager.opt_crashed

    opt = SendsPauseCode()
    with pytest.raises(GloMPOError, match="check_messages"):
        opt.message_manager(1)
    with pytest.raises(GloMPOError, match="return a MinimizeResult"):
        opt.message_manager(4)


def test_selector_3_tuples_move_constructor_call_kwargs_and_refuse_others():
    with pytest.warns(DeprecationWarning, match="call_kwargs"):
        selector = CycleSelector((CMAOptimizer, {"workers": 1}, {"sigma0": 0.3}))
    assert selector.options[0].init_kwargs == {"workers": 1, "sigma0": 0.3}
    with pytest.warns(DeprecationWarning, match="third element"):
        CycleSelector((RandomOptimizer, {"iters": 10}, None))
    with pytest.raises(ConfigurationError, match=r"call_kwargs \['maxiter'\] would be lost"):
        CycleSelector((ScipyOptimizer, {}, {"maxiter": 5}))


def test_a_bad_option_of_a_chain_selector_fails_at_setup_with_a_did_you_mean(tmp_path):
    task = Rastrigin(dims=2)
    selector = ChainSelector((RandomOptimizer, {"iters": 10}), (RandomOptimizer, {"itres": 10}), fcall_thresholds=[50])
    with pytest.raises(ConfigurationError, match=r"optimizer option 1 .*did you mean 'iters'"):
        GloMPOManager().setup(task=task, bounds=task.bounds, opt_selector=selector, working_dir=tmp_path / "r",
                              backend="threads", max_jobs=1)
    assert not (tmp_path / "r").exists()
    bad_cma = CycleSelector((CMAOptimizer, {"sigma0": -1}))
    with pytest.raises(ConfigurationError, match="optimizer option 0 .*sigma0"):
        GloMPOManager().setup(task=task, bounds=task.bounds, opt_selector=bad_cma, working_dir=tmp_path / "r",
                              backend="threads", max_jobs=1)


def test_hunters_and_checkpoint_control_of_31_in_one_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = Rastrigin(dims=3)
    with pytest.warns(DeprecationWarning):
        manager = GloMPOManager.new_manager(
            task, task.bounds, CycleSelector((CMAOptimizer, {}, {"sigma0": 1.0})), working_dir="run",
            backend="threads", max_jobs=2, convergence_checker=MaxFuncCalls(800),
            killing_conditions=BestUnmoving(50, 0.01), hunt_frequency=20, aggressive_kill=False,
            checkpoint_control=CheckpointingControl(checkpoint_iter_frequency=400, checkpoint_at_conv=True,
                                                    naming_format="chk_%(count).tar"))
        result = manager.start_manager()
        assert result.stats["opts_started"] == manager.o_counter >= 1
        assert manager.hunt_counter == manager.stopcheck_counter
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names and all(re.fullmatch(r"chk_\d{3}\.tar", n) for n in names)  # the format as written


MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")


@pytest.mark.slow
@pytest.mark.skipif(MPIRUN is None, reason="mpirun not found")
def test_the_gradient_pattern_runs_on_mpi_ranks(tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    for name in [n for n in env if n.startswith(("OMPI_COMM_WORLD", "PMI_", "PMIX_"))]:
        del env[name]
    proc = subprocess.run([MPIRUN, "--oversubscribe", "-n", "3", sys.executable, str(HERE / "gradient_on_mpi.py"),
                           str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"BEST 0\.0+\d* \[3\.0+\d*, -1\.0+\d*\] CONVERGED [1-9]", proc.stdout), proc.stdout[-2000:]


def test_the_guides_gradient_optimizer_runs_as_written(tmp_path):
    from glompo_hpc import BaseOptimizer, MinimizeResult

    block = _python_blocks("### The gradient pattern and 3.1's optimizer idioms")[0]
    namespace = {"np": np, "BaseOptimizer": BaseOptimizer, "MinimizeResult": MinimizeResult}
    exec(compile(block, "guide", "exec"), namespace)
    selector = CycleSelector((namespace["SteepestGradient"], {"max_iters": 5000, "gamma": [0.1, 0.01],
                                                              "precision": 1e-9}))
    with pytest.warns(DeprecationWarning, match="message_manager"):
        manager = GloMPOManager().setup(task=GradientTask(), bounds=((-10, 10), (-10, 10)), opt_selector=selector,
                                        working_dir=tmp_path, backend="threads", max_jobs=1,
                                        exit_conditions=NOptConverged(1) | MaxFuncCalls(5000))
        result = manager.start_manager()
    assert manager.conv_counter >= 1 and result.fx == pytest.approx(0.0, abs=1e-8)
