"""Every example runs (quick settings) so none rots."""

from __future__ import annotations

import importlib.util
import os
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


# ------------------------------------------------------------ the Python examples (examples/*.py)

EXAMPLES = ROOT / "examples"
SLURM_EXAMPLE = EXAMPLES / "slurm"
# every example takes --quick (small settings) and --working-dir; generous for a loaded machine
EXAMPLE_TIMEOUT = 110


def run_example(name: str, tmp_path: Path, *args: str) -> str:
    """Run ``examples/<name> --quick`` as a user would, from a scratch directory; its stdout."""
    res = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", "--working-dir", str(tmp_path / "run"),
                          *args], capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, cwd=tmp_path)
    assert res.returncode == 0, f"{name} exited with {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def printed(label: str, out: str) -> str:
    """The first word after ``label:`` at the start of a line of the example's output."""
    found = re.search(rf"^{label}:\s+(\S+)", out, re.M)
    assert found, f"no '{label}:' line in\n{out}"
    return found.group(1)


def load_example(name: str):
    """Import an example as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# MaxFuncCalls can be passed by up to one batch per child (docs/api.md): at most a few populations
BATCH_SLACK = 500


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_python_minimal_runs_on_the_recommended_defaults(tmp_path, backend):
    out = run_example("python_minimal.py", tmp_path, "--backend", backend)
    # in the global minimum's basin (Rastrigin's basins meet at +-0.5 in each coordinate). Mostly
    # it is the minimum itself; in some runs it is a point of that basin no child went on to polish
    # (the last, widest children are cut by the budget: docs/benchmarks.md), e.g. f = 0.93 at
    # x = (-0.04, -0.06)
    best_x = [float(v) for v in re.search(r"^Best x:\s+\[(.*)\]", out, re.M).group(1).split(",")]
    assert len(best_x) == 2 and all(abs(v) < 0.5 for v in best_x), out
    # the recommended budget, 2000 evaluations per parameter, is the exit condition
    assert "Exit reason: MaxFuncCalls(fmax=4000)" in out
    assert 4000 <= int(printed("Evaluations", out)) <= 4000 + BATCH_SLACK
    assert (tmp_path / "run" / "glompo_manager_log.yml").exists()


def test_python_customised_reaches_the_target_and_writes_every_output_it_configures(tmp_path):
    out = run_example("python_customised.py", tmp_path)
    run = tmp_path / "run"
    evaluations, budget = re.search(r"^Evaluations:\s+(\d+) of (\d+)", out, re.M).groups()
    assert int(evaluations) <= int(budget) + BATCH_SLACK
    # on the target, or at least in the global basin (every other minimum of Rastrigin is >= 0.99)
    assert float(printed("Best fx", out)) < 1e-3, out
    for name in ("glompo_manager_log.yml", "glompo_log.h5", "trajectories.png", "best_so_far.png", "run.log"):
        assert (run / name).is_file(), f"{name} missing: {sorted(p.name for p in run.iterdir())}"
    checkpoints = sorted((run / "checkpoints").glob("*.tar"))
    assert 1 <= len(checkpoints) <= 2  # keep_past=1: the newest and one before it
    assert all(str(path) in out for path in checkpoints)
    assert "Status:" in (run / "run.log").read_text()  # the status line, in the log file it set up


def test_expensive_task_stoppers_reach_the_target_with_fewer_evaluations(tmp_path):
    out = run_example("expensive_task.py", tmp_path)
    found = {label: re.search(rf"^{label}:\s+(.*) after\s+(\d+) evaluations, .*, (\d+) children", out, re.M)
             for label in ("without stoppers", "with stoppers")}
    assert all(found.values()), out
    (reached_without, evals_without, children_without), (reached_with, evals_with, children_with) = (
        m.groups() for m in found.values())
    assert reached_without == reached_with == "reached the global minimum", out
    # the same children from the same points: only what the stopped ones would have spent differs
    assert children_without == children_with and int(children_with) >= 2, out
    assert int(evals_with) < int(evals_without), out
    assert f"Stoppers saved {int(evals_without) - int(evals_with)} evaluations" in out


def test_custom_optimizer_example_runs_under_the_manager(tmp_path):
    out = run_example("custom_optimizer.py", tmp_path)
    assert re.search(r"^Found by:\s+optimizer \d+ \(LocalRandomSearch\)", out, re.M), out
    assert float(printed("Best fx", out)) < 1e-3  # Ackley's global minimum; the local ones are >= 2.5
    assert (tmp_path / "run" / "glompo_manager_log.yml").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_custom_optimizer_example_passes_the_conformance_kit(workers):
    from glompo_hpc.optimizers.conformance import check_optimizer

    example = load_example("custom_optimizer.py")
    check_optimizer(lambda: example.LocalRandomSearch(workers=workers), timeout=60)
    check_optimizer(lambda: example.LocalRandomSearch(workers=workers, seed=3), timeout=60)  # an explicit seed


def test_detailed_call_example_logs_its_extras_and_reads_them_back(tmp_path):
    import h5py
    import numpy as np

    out = run_example("detailed_call_task.py", tmp_path)
    task = load_example("detailed_call_task.py").DampedOscillationFit()
    rows = 0
    with h5py.File(tmp_path / "run" / "glompo_log.h5", "r") as f:
        groups = [g for name, g in f.items() if name.startswith("optimizer_")]
        assert groups
        for g in groups:
            n = int(g.attrs["rows"])
            extras = g["extras"]
            assert set(extras) == {"rms_residual", "worst_point", "verdict"}
            assert extras["rms_residual"].dtype == np.float64 and extras["worst_point"].dtype == np.int64
            # every logged row's extras are what detailed_call gives at its point
            for i in range(0, n, max(1, n // 5)):
                fx, rms, worst, verdict = task.detailed_call(g["x"][i])
                assert g["fx"][i] == pytest.approx(fx)
                assert extras["rms_residual"][i] == pytest.approx(rms) and extras["worst_point"][i] == worst
                assert extras["verdict"][i].decode() == verdict
            rows += n
    # what the example printed from the log
    assert re.search(rf"^Verdicts:\s+\d+ of {rows} logged evaluations fit within the noise", out, re.M), out
    best = re.search(r"^Best row:.*rms_residual=(\S+) worst_point=(\d+) verdict='within noise'", out, re.M)
    assert best and float(best.group(1)) < 1.5 * task.NOISE, out


# ------------------------------------------------------------ the SLURM examples (examples/slurm/)

SBATCH_HEADER = """\
# The example job of this directory:  cd examples/slurm && sbatch run_{launcher}.sbatch job.yaml
# Generated from job.yaml's slurm: section by glompo_hpc.slurm.jobscript.render_jobscript, in the
# form that takes the job file as its argument ('python -m glompo_hpc jobscript job.yaml' writes
# one with the job file built in). After editing job.yaml, regenerate both scripts with
#   GLOMPO_REGENERATE_EXAMPLES=1 pytest tests/test_examples.py -k sbatch
#
"""


def example_sbatch(launcher: str) -> str:
    """What examples/slurm/run_<launcher>.sbatch must hold: the header, then the generated script."""
    from glompo_hpc.jobfile import load_job_file
    from glompo_hpc.slurm.jobscript import render_jobscript

    spec = load_job_file(SLURM_EXAMPLE / "job.yaml")
    shebang, body = render_jobscript(spec.slurm, launcher, script_name=f"run_{launcher}.sbatch").split("\n", 1)
    return f"{shebang}\n{SBATCH_HEADER.format(launcher=launcher)}{body}"


@pytest.mark.parametrize("launcher", ["mpirun", "srun"])
def test_example_sbatch_scripts_are_generated_from_the_example_job(launcher):
    path = SLURM_EXAMPLE / f"run_{launcher}.sbatch"
    expected = example_sbatch(launcher)
    if os.environ.get("GLOMPO_REGENERATE_EXAMPLES"):
        path.write_text(expected)
    assert path.read_text() == expected, (
        f"{path.relative_to(ROOT)} is not what the package generates from examples/slurm/job.yaml; regenerate "
        f"with GLOMPO_REGENERATE_EXAMPLES=1 pytest tests/test_examples.py -k sbatch")
    text = path.read_text()
    for line in ("#SBATCH --requeue", "#SBATCH --signal=B:USR2@300", "#SBATCH --time=12:00:00", "#SBATCH --ntasks=8",
                 "trap on_usr2 USR2", 'scontrol requeue "$SLURM_JOB_ID"', "max_requeues=5"):
        assert line in text
    assert ("launch=(srun --mpi=pmix)" if launcher == "srun" else 'launch=(mpirun -n "${SLURM_NTASKS:-1}")') in text
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_example_slurm_job_file_is_valid():
    res = subprocess.run([sys.executable, "-m", "glompo_hpc", "validate", str(SLURM_EXAMPLE / "job.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("OK:"), res.stdout + res.stderr
