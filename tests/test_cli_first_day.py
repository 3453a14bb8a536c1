"""A new user's first day on the command line (issue 18): the defaults keep results and checkpoints,
and the rough edges (messages, counts, YAML, labels, pipes) are gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import pytest
import yaml

from glompo_hpc import cli
from glompo_hpc.outputs.task_label import task_label

ROOT = Path(__file__).resolve().parents[1]
RASTRIGIN = "glompo_hpc.tasks.functions:Rastrigin"

pytestmark = pytest.mark.timeout(900)  # each command starts Python with numpy: slow on a loaded machine


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def glompo(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, **kwargs)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


# ------------------------------------------------------------ Deliver 2: defaults for cluster work

def test_smallest_job_file_keeps_its_results_beside_it_and_checkpoints(tmp_path):
    """task and bounds only: outputs in <stem>_run/, readable by `summary`; a signal leaves a checkpoint
    that --resume auto continues from; the job file's own folder holds nothing else."""
    jobs = tmp_path / "jobs"
    job = write(jobs / "rastrigin.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 3, delay: 0.005}}}}
        bounds: {{min: -5.12, max: 5.12, dims: 3}}
        exit_conditions: "MaxFuncCalls(3000)"   # only to keep the test short; not one of the defaults
    """)
    proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", str(job), "--backend", "threads", "--max-jobs", "2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = jobs / "rastrigin_run"
    try:
        wait_for(run / "glompo_optimizer_printstreams", proc)  # optimizers run: the manager handles USR2
        proc.send_signal(signal.SIGUSR2)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == cli.EXIT_REQUEUE, err
    assert sorted(p.name for p in jobs.iterdir()) == ["rastrigin.yaml", "rastrigin_run"]
    assert list((run / "checkpoints").glob("*.tar")), sorted(p.name for p in run.iterdir())
    for name in ("glompo_manager_log.yml", "glompo_log.h5"):
        assert (run / name).is_file(), name
    summary = glompo("summary", run)
    assert summary.returncode == 0 and "State:" in summary.stdout, summary.stderr
    resumed = glompo("run", job, "--resume", "auto", "--backend", "threads", "--max-jobs", "2", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    sessions = yaml.safe_load((run / "glompo_manager_log.yml").read_text())["assignment"]["sessions"]
    assert len(sessions) == 2  # the second start continued the first


def test_job_files_that_set_the_keys_keep_their_behaviour(tmp_path):
    from glompo_hpc.jobfile import build_manager_kwargs, load_job_file

    job = write(tmp_path / "old.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 2}}}}
        manager: {{working_dir: ., summary_files: 0}}
        checkpointing: false
    """)
    kwargs = build_manager_kwargs(load_job_file(job))
    assert kwargs["working_dir"] == str(tmp_path) and kwargs["summary_files"] == 0
    assert kwargs["checkpoint_control"] is None
    defaults = build_manager_kwargs(load_job_file(write(tmp_path / "new.yaml", f"task: {RASTRIGIN}\n")))
    assert defaults["working_dir"] == str(tmp_path / "new_run") and defaults["summary_files"] == 3
    assert defaults["checkpoint_control"].checkpoint_time_interval == 1800


def test_python_api_keeps_the_reference_defaults():
    import inspect

    from glompo_hpc import GloMPOManager

    params = inspect.signature(GloMPOManager.setup).parameters
    assert params["summary_files"].default == 0 and params["checkpoint_control"].default is None
    assert params["working_dir"].default == "."


# ------------------------------------------------------------ item 4: resume without the job file

def test_resume_without_job_file_of_an_unpicklable_task_asks_for_the_job_file(tmp_path):
    code = tmp_path / "code"
    write(code / "vanishing.py", """
        class Sphere:
            def __init__(self, dims):
                self.dims = dims
            def __call__(self, x):
                return float(sum(v * v for v in x))
    """)
    job = write(code / "job.yaml", """
        task: {function: "vanishing:Sphere", kwargs: {dims: 2}}
        bounds: {min: -1, max: 1, dims: 2}
        exit_conditions: "MaxFuncCalls(300)"
        manager: {backend: threads, max_jobs: 1, working_dir: ../run, summary_files: 1}
        checkpointing: {checkpoint_at_init: true}
    """)
    first = glompo("run", job, "--quiet", cwd=code)
    assert first.returncode == 0, first.stderr
    (code / "vanishing.py").unlink()
    proc = glompo("resume", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("glompo-hpc: error: ")
    assert "give the job file" in line and "JOB.yaml" in line and "load_checkpoint" not in line


# ------------------------------------------------------------ item 7: one definition of "stopped"

def test_result_lines_summary_yaml_and_plot_legend_count_alike(tmp_path):
    pytest.importorskip("matplotlib")
    from glompo_hpc.outputs.plots import plot_trajectories

    job = write(tmp_path / "job.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 2}}}}
        optimizers: {{options: [{{type: CMAOptimizer, sigma0: 1.0, popsize: 6}}]}}
        stoppers: "MinFuncCalls(min_pts=150)"
        exit_conditions: "MaxFuncCalls(1500)"
        manager: {{backend: threads, max_jobs: 2, working_dir: run, seed: 3, summary_files: 3}}
        checkpointing: false
    """)
    proc = glompo("run", job, "--quiet")
    assert proc.returncode == 0, proc.stderr
    started, detail = re.search(r"^Optimizers:\s+(\d+) started \((.*)\)$", proc.stdout, re.M).groups()
    printed = {name: int(n) for n, name in re.findall(r"(\d+) (\w+)", detail)}
    data = yaml.safe_load((tmp_path / "run" / "glompo_manager_log.yml").read_text())
    assert data["counters"]["optimizers"]["by_end"] == printed
    assert sum(printed.values()) == int(started) and printed.get("stopped", 0) >= 1
    summary = glompo("summary", tmp_path / "run").stdout
    listed = dict((name, int(n)) for n, name in re.findall(r"(\d+) (\w+)", summary.split("started:")[1].splitlines()[0]))
    assert {k: v for k, v in listed.items() if v} == printed
    figure = plot_trajectories(tmp_path / "run" / "glompo_log.h5")
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    labels = {"stopped": "stopped by manager", "unfinished": "running at the end", "converged": "converged"}
    for category, n in printed.items():
        if category in labels:
            assert f"{labels[category]} ({n})" in legend, legend


# ------------------------------------------------------------ item 8: validate and YAML

def test_bounds_of_the_wrong_length_fail_validate_and_run_with_one_line(tmp_path):
    job = write(tmp_path / "job.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 6}}}}
        bounds: {{min: -5, max: 5, dims: 5}}
        manager: {{backend: threads}}
    """)
    for command in ("validate", "run"):
        proc = glompo(command, job)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "bounds: 5 [min, max] pairs" in proc.stderr and "takes 6 parameters" in proc.stderr
    assert not (tmp_path / "job_run").exists()


def test_yaml_1_2_floats_are_numbers(tmp_path):
    from glompo_hpc.jobfile import build_manager_kwargs, load_job_file

    job = write(tmp_path / "job.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 2}}}}
        exit_conditions: {{any: [{{type: TargetCost, target: 0, atol: 1e-6}}, {{type: MaxFuncCalls, fmax: 2000}}]}}
    """)
    assert glompo("validate", job).returncode == 0
    exits = build_manager_kwargs(load_job_file(job))["exit_conditions"]
    assert "atol=1e-06" in str(exits)
    from glompo_hpc.jobfile.yaml_text import parse_yaml
    assert parse_yaml("[1e-6, 2E+3, -1.5e3, 1_000e1, .5, 1e, e1, 1.0]", "t") == [1e-6, 2e3, -1.5e3, 1e4, 0.5, "1e", "e1", 1.0]


@pytest.mark.parametrize("text, line", [
    ("task: {function: x:y}\nbounds: [[0, 1], [0, 1]\nmanager: {backend: threads}\n", 2),
    ("task: {function: x:y}\nmanager: {backend: threads\n\n# a comment\nlogging: {level: INFO}\n", 2),
    ("task: {function: x:y}\nbounds: [[0, 1]]\n  manager: 3\n", 3),
    ("task: {function: x:y}\nlogging: {level: \"INFO}\nmanager: {}\n", 2),
])
def test_yaml_syntax_errors_name_the_real_line(tmp_path, text, line, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(text)
    assert cli.main(["validate", str(job)]) == 2
    err = capsys.readouterr().err
    assert f"line {line}," in err and "invalid YAML" in err, err


# ------------------------------------------------------------ item 9: polish

def test_jobfile_reference_has_no_sphinx_roles_or_developer_notes():
    text = (ROOT / "docs" / "jobfile.md").read_text()
    assert not re.search(r":(mod|class|func|meth|data|attr):`", text)
    for developer_text in ("build.validate", "Design choice", "dataclass", "This module", "::\n"):
        assert developer_text not in text, developer_text


def test_help_points_to_the_docs(capsys):
    assert cli.main(["validate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "docs/jobfile.md" in out and "schema.py" not in out


class Plain:
    def __init__(self, dims, scale=1.0, path="data.csv"):
        self.dims, self.scale = dims, scale  # path is not kept

    def __call__(self, x):
        return 0.0


def sphere(x):
    return 0.0


def test_task_labels_are_readable():
    assert task_label(Plain(3, scale=2.0)) == f"{__name__}.Plain(dims=3, scale=2.0)"
    assert task_label(sphere) == f"{__name__}.sphere"
    assert "object at 0x" not in task_label(object())
    from glompo_hpc.tasks.functions import Rastrigin
    assert task_label(Rastrigin(dims=2)) == repr(Rastrigin(dims=2))  # a repr of its own is kept


def test_summary_and_log_name_the_task_by_its_job_file_arguments(tmp_path):
    write(tmp_path / "mytasks.py", """
        class Bowl:
            def __init__(self, dims, scale):
                self.dims, self.scale = dims, scale
            def __call__(self, x):
                return self.scale * float(sum(v * v for v in x))
    """)
    job = write(tmp_path / "job.yaml", """
        task: {function: "mytasks:Bowl", kwargs: {dims: 2, scale: 2.5}}
        bounds: {min: -1, max: 1, dims: 2}
        exit_conditions: "MaxFuncCalls(200)"
        manager: {backend: threads, max_jobs: 1}
        checkpointing: false
    """)
    proc = glompo("run", job, "--quiet", "--summary-files", "3")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "job_run"
    summary = yaml.safe_load((run / "glompo_manager_log.yml").read_text())
    assert summary["assignment"]["task"] == "mytasks.Bowl(dims=2, scale=2.5)"
    with h5py.File(run / "glompo_log.h5", "r") as h5:
        assert h5.attrs["task"] == "mytasks.Bowl(dims=2, scale=2.5)"


def test_summary_into_a_closed_pipe_ends_quietly(tmp_path):
    job = write(tmp_path / "job.yaml", f"""
        task: {{function: "{RASTRIGIN}", kwargs: {{dims: 2}}}}
        exit_conditions: "MaxFuncCalls(100)"
        manager: {{backend: threads, max_jobs: 1, summary_files: 1}}
        checkpointing: false
    """)
    assert glompo("run", job, "--quiet").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already gone: every write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "glompo_hpc", "summary", str(tmp_path / "job_run")],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == cli.EXIT_BROKEN_PIPE
    assert proc.stderr == "", proc.stderr
