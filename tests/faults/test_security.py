"""Security properties users rely on (docs/security.md):

* every file and directory a run creates follows the user's umask (0644/0755 under 022,
  0600/0700 under 077), checkpoints included, and the process umask is never loosened meanwhile;
* generated job scripts quote every value: running one runs nothing hidden in a name, path or
  argument, and a line break (which no quoting makes safe in a #SBATCH line) is refused;
* job files are read as data: a python tag is refused in one line and constructs nothing;
* checkpoints are code: a world-writable one is refused before anything is unpickled, one of
  another user loads with a warning.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import dill
import pytest
import yaml

from glompo_hpc import cli
from glompo_hpc.core.checkpoint_file import open_checkpoint, write_checkpoint_file
from glompo_hpc.errors import CheckpointError
from glompo_hpc.outputs.atomic import atomic_write_text

pytestmark = pytest.mark.timeout(180)

RASTRIGIN = "glompo_hpc.tasks.functions:Rastrigin"
ERROR = "glompo-hpc: error: "


def job_dict(**manager) -> dict:
    """A tiny job with explicit components, checkpoints every 20 evaluations and every output."""
    return {
        "task": {"function": RASTRIGIN, "kwargs": {"dims": 2}},
        "bounds": [[-5, 5], [-5, 5]],
        "optimizers": {"selector": "CycleSelector", "options": [{"type": "RandomOptimizer", "iters": 10}]},
        "stoppers": "MinFuncCalls(min_pts=5)",
        "exit_conditions": "MaxFuncCalls(fmax=60)",
        "generator": {"type": "RandomGenerator"},
        "manager": {"backend": "threads", "max_jobs": 2, "working_dir": "wd", "summary_files": 3, "seed": 1,
                    **manager},
        "checkpointing": {"checkpoint_eval_interval": 20},
        "logging": {"level": "WARNING", "file": "logs/run.log"},
        "slurm": {"time": 10, "log_dir": "slurm_logs"},
    }


def write_job(directory: Path, data: dict, name: str = "job.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_error_line(code: int, err: str) -> str:
    """The single ``glompo-hpc: error:`` line of a refused command (exit 2, no traceback)."""
    assert code == 2 and "Traceback" not in err, err
    (line,) = [entry for entry in err.splitlines() if entry.startswith(ERROR)]
    assert err.rstrip("\n").endswith(line)
    return line


# ------------------------------------------------------------ file modes

def cli_with_umask(umask: int, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """``python -m glompo_hpc ARGV`` in a process of its own whose umask is ``umask``."""
    command = ["bash", "-c", f'umask {umask:03o} && exec "$@"', "bash", sys.executable, "-m", "glompo_hpc", *argv]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def modes_under(*roots: Path) -> dict[Path, int]:
    found = {}
    for root in roots:
        found[root] = stat.S_IMODE(root.lstat().st_mode)
        for p in root.rglob("*"):
            found[p] = stat.S_IMODE(p.lstat().st_mode)
    return found


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_everything_a_run_creates_follows_the_umask(tmp_path, umask):
    """Working dir, HDF5 log, YAML summary, plots, printstreams, checkpoints (dir and tar files),
    the log file and its dir, the SLURM log dir, and plots drawn later by `glompo-hpc plot`."""
    job = write_job(tmp_path, job_dict(backend="processes"))
    cli_with_umask(umask, tmp_path, "run", str(job))
    cli_with_umask(umask, tmp_path, "jobscript", str(job))
    cli_with_umask(umask, tmp_path, "plot", "wd", "--output", "plots")
    wd = tmp_path / "wd"
    expected_kinds = [wd / "glompo_log.h5", wd / "glompo_manager_log.yml", wd / "trajectories.png",
                      wd / "checkpoints", *(wd / "checkpoints").glob("*.tar"),
                      *(wd / "glompo_optimizer_printstreams").glob("*"), tmp_path / "logs" / "run.log",
                      tmp_path / "slurm_logs", *(tmp_path / "plots").glob("*.png")]
    modes = modes_under(wd, tmp_path / "logs", tmp_path / "slurm_logs", tmp_path / "plots")
    assert set(expected_kinds) <= set(modes) and len(expected_kinds) >= 12, sorted(modes)
    for path, mode in modes.items():
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == want, f"{path.relative_to(tmp_path)}: {mode:o}, expected {want:o} under umask {umask:03o}"


def test_the_process_umask_is_never_loosened(tmp_path, monkeypatch):
    """Reading the umask by setting it (os.umask(0) and back) would hand every other thread of the
    process, optimizer threads and user tasks among them, umask 0 meanwhile: world-writable files."""
    real_umask, set_to = os.umask, []

    def spy(mask: int) -> int:
        set_to.append(mask)
        return real_umask(mask)

    original = real_umask(0o022)
    real_umask(original)
    monkeypatch.setattr(os, "umask", spy)
    atomic_write_text(tmp_path / "summary.yml", "x: 1\n")
    code, out, err = main("run", str(write_job(tmp_path, job_dict())))  # threads, checkpoints, every output
    assert code == 0, err
    assert list((tmp_path / "wd" / "checkpoints").glob("*.tar"))
    assert all(mask & original == original for mask in set_to), [oct(m) for m in set_to]


# ------------------------------------------------------------ job scripts

def sbatch_directives(script: str) -> dict[str, str]:
    """``#SBATCH --name=value`` lines as sbatch reads them (shell words); each must be one word."""
    found = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            words = shlex.split(line[len("#SBATCH "):])
            assert len(words) == 1, line
            name, _, value = words[0].partition("=")
            found[name] = value
    return found


EVIL = "x $(touch pwned1) `touch pwned2` ; touch pwned3 ' ; touch pwned4 ; ' \" & | > pwned5 $HOME ${HOME} \\"
EVIL_ARGS = ["--opt=$(touch pwned6)", "two words", "`touch pwned7`", "';touch pwned8;'", "$((6*7))"]


def stand_in_launchers(tmp_path: Path) -> Path:
    """mpirun and srun that only record the words they were given, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mpirun", "srun"):
        (bin_dir / name).write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > "$RECORD_DIR/{name}.args"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("launcher", ["mpirun", "srun"])
def test_a_script_from_hostile_values_runs_nothing_hidden_in_them(tmp_path, monkeypatch, launcher):
    monkeypatch.chdir(tmp_path)  # a `touch pwned` that ran anywhere here would leave its file
    python = tmp_path / f"py {EVIL.replace('/', '')}" / "python"
    slurm = {"job_name": f"name {EVIL}", "partition": f"part {EVIL}", "account": f"acct {EVIL}",
             "python": str(python), "srun_args": EVIL_ARGS, "mpirun_args": EVIL_ARGS,
             "log_dir": "logs $(touch pwned9) ;x", "time": 10}
    job = write_job(tmp_path / "job $(touch pwned10) `id` dir", {"task": RASTRIGIN, "slurm": slurm})
    code, script, err = main("jobscript", str(job), "--launcher", launcher)
    assert code == 0, err
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    directives = sbatch_directives(script)
    assert [directives[f"--{k}"] for k in ("job-name", "partition", "account")] == \
        [slurm["job_name"], slurm["partition"], slurm["account"]]
    assert directives["--output"] == str(job.parent / slurm["log_dir"] / "glompo-%j.out")
    env = {"PATH": f"{stand_in_launchers(tmp_path)}:{os.environ['PATH']}", "RECORD_DIR": str(tmp_path),
           "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}
    ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    recorded = (tmp_path / f"{launcher}.args").read_text().splitlines()
    options = ["-n", "4", *EVIL_ARGS] if launcher == "mpirun" else EVIL_ARGS
    assert recorded == [*options, str(python), "-m", "glompo_hpc", "run", str(job), "--resume", "auto"]
    assert not list(tmp_path.rglob("pwned*")), list(tmp_path.rglob("pwned*"))


LINE_BREAK_CASES = {  # key: (slurm section, launcher the value is used by)
    "job_name": ({"job_name": "x\ntouch pwned #"}, "mpirun"),
    "partition": ({"partition": "p\n$(touch pwned)"}, "mpirun"),
    "account": ({"account": "a\r\ntouch pwned"}, "mpirun"),
    "python": ({"python": "/usr/bin/python3\ntouch pwned"}, "mpirun"),
    "log_dir": ({"log_dir": "logs\ntouch pwned #"}, "mpirun"),
    "srun_args[1]": ({"srun_args": ["--mpi=pmix", "--x\ntouch pwned"]}, "srun"),
    "mpirun_args[0]": ({"mpirun_args": ["--x=\0"]}, "mpirun"),
}


@pytest.mark.parametrize("key", sorted(LINE_BREAK_CASES))
def test_a_line_break_in_a_value_is_refused_and_no_script_is_written(tmp_path, key):
    slurm, launcher = LINE_BREAK_CASES[key]
    job = write_job(tmp_path, {"task": RASTRIGIN, "slurm": {"time": 10, **slurm}})
    code, out, err = main("jobscript", str(job), "--launcher", launcher)
    line = one_error_line(code, err)
    assert line.startswith(f"{ERROR}slurm.{key}: ") and "line break" in line and out == ""
    assert list(tmp_path.iterdir()) == [job]  # not even the log directory


def test_a_job_file_in_a_directory_with_a_line_break_is_refused(tmp_path):
    job = write_job(tmp_path / "dir\ntouch pwned #", {"task": RASTRIGIN})
    line = one_error_line(*main("jobscript", str(job))[::2])
    assert line.startswith(f"{ERROR}the job file path: ") and "line break" in line


@pytest.mark.parametrize("key", ["job_name", "partition", "account", "python", "log_dir", "srun_args[1]"])
def test_submit_refuses_a_line_break_too(tmp_path, key):
    pytest.importorskip("submitit")  # an optional dependency: `submit` needs it
    job = write_job(tmp_path, {"task": RASTRIGIN, "slurm": {"time": 10, **LINE_BREAK_CASES[key][0]}})
    code, out, err = main("submit", str(job), "--dry-run")
    assert one_error_line(code, err).startswith(f"{ERROR}slurm.{key}: ") and out == ""


def test_submit_quotes_partition_account_and_log_dir(tmp_path):
    pytest.importorskip("submitit")
    slurm = {"partition": f"part {EVIL}", "account": f"acct {EVIL}", "log_dir": "logs $(touch pwned) ;x", "time": 10}
    job = write_job(tmp_path, {"task": RASTRIGIN, "slurm": slurm})
    code, out, err = main("submit", str(job), "--dry-run")
    assert code == 0, err
    directives = sbatch_directives(out)
    assert (directives["--partition"], directives["--account"]) == (slurm["partition"], slurm["account"])
    assert directives["--output"].startswith(str(job.parent / slurm["log_dir"]))


# ------------------------------------------------------------ job files are data

TAGGED = "task: !!python/object/apply:os.system ['touch {marker}']\n"


@pytest.mark.parametrize("argv", [["validate"], ["run"], ["jobscript"], ["submit", "--dry-run"]])
def test_a_python_tag_is_refused_in_one_line_and_runs_nothing(tmp_path, argv):
    marker = tmp_path / "marker"
    job = tmp_path / "evil.yaml"
    job.write_text(TAGGED.format(marker=marker))
    line = one_error_line(*main(argv[0], str(job), *argv[1:])[::2])
    assert "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'" in line
    assert not marker.exists()


def test_a_python_tag_in_a_real_process(tmp_path):
    marker = tmp_path / "marker"
    job = tmp_path / "evil.yaml"
    job.write_text(TAGGED.format(marker=marker))
    proc = subprocess.run([sys.executable, "-m", "glompo_hpc", "run", str(job)], capture_output=True, text=True,
                          timeout=60)
    assert one_error_line(proc.returncode, proc.stderr) and proc.stdout == "" and not marker.exists()


# ------------------------------------------------------------ checkpoints are code

@pytest.fixture
def checkpoint(tmp_path) -> tuple[Path, Path]:
    """(the newest checkpoint of a tiny run, its job file)."""
    job = write_job(tmp_path, job_dict(summary_files=0))
    code, out, err = main("run", str(job))
    assert code == 0, err
    return max((tmp_path / "wd" / "checkpoints").glob("*.tar"), key=lambda p: p.stat().st_mtime_ns), job


class _RunsCode:
    """Unpickles to what ``original`` unpickles to, after touching ``marker``: a tampered checkpoint."""

    def __init__(self, original: bytes, marker: Path):
        self.original, self.marker = original, marker

    def __reduce__(self):
        code = f"open({str(self.marker)!r}, 'w').close() or __import__('dill').loads({self.original!r})"
        return eval, (code,)


def tampered_copy(source: Path, marker: Path, destination: Path) -> Path:
    """``source`` with its manager state made to run code on loading, checksums recomputed."""
    staging = destination.parent / "staging"
    with open_checkpoint(source) as contents:
        shutil.copytree(contents.root, staging)
        manifest = contents.manifest
    (staging / "manifest.json").unlink()
    blob = (staging / "manager.pkl").read_bytes()
    (staging / "manager.pkl").write_bytes(dill.dumps(_RunsCode(blob, marker)))
    kept_by_the_writer = ("format_version", "glompo_hpc_version", "created", "members")
    info = {k: v for k, v in manifest.items() if k not in kept_by_the_writer}
    return write_checkpoint_file(staging, destination, info)


def test_checkpoints_are_code_and_a_world_writable_one_is_refused_before_unpickling(checkpoint, tmp_path):
    source, job = checkpoint
    marker = tmp_path / "marker"
    evil = tampered_copy(source, marker, tmp_path / "evil" / "ck.tar")
    evil.chmod(0o666)
    line = one_error_line(*main("resume", str(evil), str(job))[::2])
    assert "is world-writable" in line and f"chmod o-w {evil}" in line
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="world-writable"):
        open_checkpoint(evil)
    # the checksums do not stop tampering, only trust does: once trusted (o-w), its code runs
    evil.chmod(0o644)
    code, out, err = main("resume", str(evil), str(job))
    assert code == 0 and marker.exists(), err


def test_a_checkpoint_of_another_user_loads_with_a_warning(checkpoint, monkeypatch):
    source, job = checkpoint
    owner = source.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    code, out, err = main("resume", str(source), str(job))
    assert code == 0, err
    assert f"belongs to another user (uid {owner}; you are uid {owner + 1})" in err
    assert "load only checkpoints you trust" in err


def test_a_group_writable_checkpoint_loads_without_a_warning(checkpoint, caplog):
    """umask 002 (per-user groups) makes every file group-writable: those are the user's own."""
    source, _ = checkpoint
    source.chmod(0o664)
    with open_checkpoint(source) as contents:
        assert contents.member("manager.pkl") is not None
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_resume_auto_skips_a_world_writable_checkpoint_and_names_it(checkpoint, tmp_path):
    source, job = checkpoint
    marker = tmp_path / "marker"
    evil = tampered_copy(source, marker, tmp_path / "evil" / "ck.tar")
    planted = shutil.move(evil, source.parent / "glompo_checkpoint_zz_newest.tar")
    Path(planted).chmod(0o666)
    os.utime(planted, ns=(source.stat().st_mtime_ns + 10 ** 9,) * 2)  # the newest: what --resume auto tries first
    code, out, err = main("run", str(job), "--resume", "auto")
    assert code == 0 and not marker.exists(), err
    assert "Skipping checkpoint" in err and "glompo_checkpoint_zz_newest.tar' is world-writable" in err
    assert f"Resuming from checkpoint {source}" in err
