"""The command line: subcommands, the default `run`, one-line errors with exit 2, a real run."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from glompo_hpc import cli

TASK = "glompo_hpc.tasks.functions:Rastrigin"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "glompo_hpc", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def small_job(tmp_path) -> Path:
    return write(tmp_path / "job.yaml", f"""
        task: {{function: "{TASK}", kwargs: {{dims: 2}}}}
        optimizers:
          options: [{{type: CMAOptimizer, sigma0: 1.0}}]
        exit_conditions: "MaxFuncCalls(2000)"
        manager: {{backend: threads, max_jobs: 2, working_dir: out, seed: 1}}
    """)


# ------------------------------------------------------------ help and parsing

def test_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for name in cli.COMMANDS:
        assert re.search(rf"^\s+{name}\s", proc.stdout, re.M), proc.stdout
    assert "run" in cli.COMMANDS and "validate" in cli.COMMANDS


def test_run_help_documents_the_options(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--working-dir", "--overwrite", "--backend", "--max-jobs", "--summary-files", "--log-level",
                   "--quiet", "JOB.yaml"):
        assert option in out


def test_no_arguments_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_options_before_the_job_file_mean_run(small_job, capsys):
    assert cli.main(["--max-jobs", "0", str(small_job)]) == 2
    assert "run: error: argument --max-jobs" in capsys.readouterr().err


def test_argument_errors_exit_2(capsys):
    assert cli.main(["run", "job.yaml", "--max-jobs", "0"]) == 2
    assert "--max-jobs" in capsys.readouterr().err


def test_validate_prints_ok_with_a_summary(small_job, capsys):
    assert cli.main(["validate", str(small_job)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"OK: {small_job}: task {TASK} (2 parameters)")
    assert "CMAOptimizer" in out and "MaxFuncCalls(fmax=2000)" in out and "backend threads" in out
    assert not (small_job.parent / "out").exists()  # validate creates nothing


def test_a_new_subcommand_is_one_registration(capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))

    @cli.command("hello", "say hello", lambda p: p.add_argument("name"))
    def hello(args):
        print(f"hello {args.name}")
        return 0

    assert cli.main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


# ------------------------------------------------------------ user errors: one line, exit 2

BAD_JOBS = {
    "yaml_syntax": ("task: x\nmanager:\n  backend: [threads\n", r"bad\.yaml: line \d+, column \d+: invalid YAML"),
    "top_level_list": ("- task\n", r"bad\.yaml: line 1: the top level must be a mapping"),
    "unknown_key": (f"task: {TASK}\ncolour: red\n", r"colour: unknown key; valid keys: task \(required\)"),
    "bad_value": (f"task: {TASK}\nmanager: {{max_jobs: four}}\n", r"manager\.max_jobs: expected an integer >= 1"),
    "bad_import": ("task: nowhere_xyz.mod:f\n", r"task\.function: cannot import 'nowhere_xyz\.mod:f'"),
    "unsafe_expr": (f"task: {TASK}\nstoppers: \"__import__('os').system('x')\"\n", r"stoppers: expression .* not allowed"),
    "min_ge_max": (f"task: {TASK}\nbounds: [[0, 1], [2, 2]]\n", r"bounds\[1\]: min 2\.0 >= max 2\.0"),
    "bad_param": (f"task: {TASK}\nexit_conditions: {{type: MaxFuncCalls, fmax: 10, tol: 1}}\n",
                  r"exit_conditions\.tol: unknown parameter 'tol'"),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_job_files_give_one_line_and_exit_2(tmp_path, capsys, case, command):
    text, pattern = BAD_JOBS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main([command, str(path)]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("glompo-hpc: error: ")
    assert re.search(pattern, lines[0]), lines[0]


def test_missing_job_file_in_a_real_process(tmp_path):
    proc = run_cli("missing.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "glompo-hpc: error: job file 'missing.yaml' not found\n"
    assert proc.stdout == ""


def test_invalid_job_in_a_real_process_has_no_traceback(tmp_path):
    write(tmp_path / "job.yaml", f"""
        task: {TASK}
        optimizers: {{options: [{{type: CMAOptimizer, sigma0: -1}}]}}
        manager: {{backend: threads}}
    """)
    proc = run_cli("job.yaml", "--backend", "threads", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "glompo-hpc: error: optimizers.options[0].sigma0: sigma0 must be a positive finite number, got -1"]


def test_old_results_in_working_dir_exit_2(small_job, capsys):
    out = small_job.parent / "out"
    out.mkdir()
    (out / "glompo_manager_log.yml").write_text("old: run\n")
    assert cli.main([str(small_job), "--quiet"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("glompo-hpc: error: ") and "--overwrite" in lines[0]


def test_keyboard_interrupt_exits_130(small_job, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    commands = dict(cli.COMMANDS)
    commands["validate"] = dataclasses.replace(commands["validate"], handler=interrupted)
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["validate", str(small_job)]) == 130
    assert capsys.readouterr().err == "glompo-hpc: interrupted\n"


def test_a_signal_that_came_while_importing_is_acted_on(small_job, capsys, tmp_path):
    """`python -m glompo_hpc` records a USR2/TERM that arrives while it imports; main() replays it:
    a walltime warning that early asks for a requeue (3) instead of being lost or killing the rank."""
    assert cli.main(["run", str(small_job)], early_signals=[signal.SIGUSR2]) == 3
    assert capsys.readouterr().err == "glompo-hpc: interrupted by SIGUSR2 before the optimization ran\n"
    assert cli.main(["run", str(small_job)], early_signals=[signal.SIGTERM]) == 128 + signal.SIGTERM
    assert not list(tmp_path.glob("**/glompo_manager_log.yml"))  # nothing ran


# ------------------------------------------------------------ real runs

def _field(stdout: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(.*)$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_end_to_end_run_with_default_command(small_job):
    proc = run_cli(small_job.name, "--quiet", cwd=small_job.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    best = float(_field(proc.stdout, "Best fx"))
    assert 0 <= best < 5  # 2-D Rastrigin: minimum 0, the runner-up basins are at ~1, 2, 4
    assert len(_field(proc.stdout, "Best x").strip("[]").split(",")) == 2
    assert int(_field(proc.stdout, "Evaluations")) >= 2000
    assert "MaxFuncCalls" in _field(proc.stdout, "Exit reason")
    assert re.match(r"\d+ started", _field(proc.stdout, "Optimizers"))
    assert (small_job.parent / "out").is_dir()  # working_dir relative to the job file


def test_overrides_reach_the_manager(small_job, capsys, tmp_path):
    target = tmp_path / "elsewhere"
    code = cli.main(["run", str(small_job), "--working-dir", str(target), "--summary-files", "1",
                     "--max-jobs", "1", "--log-level", "warning"])
    assert code == 0, capsys.readouterr().err
    assert (target / "glompo_manager_log.yml").is_file()
    assert not (small_job.parent / "out").exists()
    assert "Best fx:" in capsys.readouterr().out
    # a second run in the same place needs --overwrite
    assert cli.main(["run", str(small_job), "--working-dir", str(target), "--summary-files", "1", "--quiet"]) == 2
    assert "earlier run" in capsys.readouterr().err
    assert cli.main(["run", str(small_job), "--working-dir", str(target), "--overwrite", "--quiet"]) == 0


def test_ctrl_c_ends_a_run_cleanly_with_130(tmp_path):
    write(tmp_path / "job.yaml", f"""
        task: {{function: "{TASK}", kwargs: {{dims: 2, delay: 0.002}}}}
        exit_conditions: "MaxSeconds(session_max=60)"
        manager: {{backend: threads, max_jobs: 1}}
        logging: {{level: INFO}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "job.yaml"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:  # wait until an optimizer is running
            line = proc.stderr.readline()
            seen.append(line)
            if "Started optimizer" in line or not line:
                break
        assert any("Started optimizer" in s for s in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "glompo-hpc: interrupted" in err
    assert "Best fx:" in out and "interrupted by SIGINT" in _field(out, "Exit reason")
