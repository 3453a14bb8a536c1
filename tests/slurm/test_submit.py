"""``submit --dry-run`` against the job file, and the submitit callable's requeue decisions (no SLURM)."""

from __future__ import annotations

import importlib
import pickle
import shlex
import signal

import pytest

from glompo_hpc import cli
from glompo_hpc import run as run_module
from glompo_hpc.core.signals import ignore_late_signal
from glompo_hpc import slurm as slurm_package
from glompo_hpc.slurm.submit import GlompoRun, submit
from slurm_support import WEIRD_NAME, sbatch_options, write_job

submitit = pytest.importorskip("submitit")
pytestmark = pytest.mark.timeout(60)


def dry_run(tmp_path, slurm: str, capsys) -> tuple[str, object]:
    job = write_job(tmp_path / "a dir with spaces", slurm=slurm)
    assert cli.main(["submit", str(job), "--dry-run"]) == 0
    return capsys.readouterr().out, job


def test_dry_run_prints_the_sbatch_file_from_the_slurm_section(tmp_path, capsys):
    out, job = dry_run(tmp_path, "{time: '1:30:00', nodes: 2, ntasks: 8, cpus_per_task: 2, partition: short, "
                                 "account: proj-42, signal_delay_s: 240, srun_args: [--mpi=pmix], "
                                 "setup: ['module load foo'], log_dir: 'my logs'}", capsys)
    options = sbatch_options(out)
    folder = job.parent / "my logs" / "%j"
    assert options == {
        "--job-name": "glompo", "--time": "90", "--nodes": "2", "--ntasks-per-node": "4", "--cpus-per-task": "2",
        "--partition": "short", "--account": "proj-42", "--signal": "USR2@240", "--requeue": True,
        "--open-mode": "append", "--wckey": "submitit",
        "--output": f"{folder}/%j_0_log.out", "--error": f"{folder}/%j_0_log.err",
    }
    assert "\nmodule load foo\n" in out
    srun = shlex.split(next(line for line in out.splitlines() if line.startswith("srun ")))
    assert "--mpi=pmix" in srun and srun[-3:] == ["-m", "submitit.core._submit", str(folder)]
    # the header says what would run, in shell words that give back the job file
    header = next(line for line in out.splitlines() if line.startswith("# each task then runs"))
    words = shlex.split(header.split(": ", 1)[1])
    assert words[-6:] == ["-m", "glompo_hpc", "run", str(job), "--resume", "auto"]
    assert "dry run: nothing submitted" in out
    assert not (job.parent / "my logs").exists()  # a dry run writes nothing


def test_dry_run_quotes_names_with_shell_metacharacters(tmp_path, capsys):
    quoted = WEIRD_NAME.replace("'", "''")
    out, _ = dry_run(tmp_path, f"{{job_name: '{quoted}', time: 5}}", capsys)
    assert sbatch_options(out)["--job-name"] == WEIRD_NAME
    assert sbatch_options(out)["--time"] == "5"


def test_submit_dry_run_returns_what_it_would_do(tmp_path):
    job = write_job(tmp_path, slurm="{time: 3, max_requeues: 4}")
    sub = submit(job, dry_run=True)
    assert sub.dry_run and sub.job_id is None and sub.job is None
    assert sub.sbatch_command[0] == "sbatch"
    assert "#SBATCH --time=3" in sub.sbatch_text and "#SBATCH --signal=USR2@45" in sub.sbatch_text


def test_submit_names_an_uneven_task_split(tmp_path, capsys):
    job = write_job(tmp_path, slurm="{nodes: 2, ntasks: 3}")
    assert cli.main(["submit", str(job), "--dry-run"]) == 2
    assert "slurm.ntasks" in capsys.readouterr().err


def test_submit_of_a_missing_job_file_is_one_line(tmp_path, capsys):
    assert cli.main(["submit", str(tmp_path / "nope.yaml"), "--dry-run"]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------ the callable

def test_callable_pickles_and_its_checkpoint_resubmits_itself_with_resume_auto(tmp_path):
    run = GlompoRun(tmp_path / "job.yaml", max_requeues=4)
    assert run.argv == ["run", str(tmp_path / "job.yaml"), "--resume", "auto"]
    again = pickle.loads(pickle.dumps(run))
    delayed = again.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, GlompoRun)
    assert delayed.function.argv == run.argv and delayed.function.max_requeues == 4
    assert hasattr(run, "checkpoint")  # what submitit looks for


class Handover(Exception):
    """Stands for submitit's handler, which requeues and exits."""


@pytest.fixture
def submitit_handler():
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        raise Handover

    previous = signal.signal(signal.SIGUSR2, handler)
    previous_term = signal.getsignal(signal.SIGTERM)
    yield calls
    signal.signal(signal.SIGUSR2, previous)
    signal.signal(signal.SIGTERM, previous_term)


def fake_cli(monkeypatch, code: int):
    def run_program(request, guard=None, restore_signals=True):
        # the run leaves its own handlers: GlompoRun must restore submitit's for a requeue
        assert request.resume == "auto" and not restore_signals
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return code
    monkeypatch.setattr(run_module, "run_program", run_program)


def test_callable_returns_the_outcome_of_a_finished_run(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 0)
    outcome = GlompoRun(tmp_path / "job.yaml")()
    assert outcome["exit_code"] == 0 and not outcome["requeued"]
    assert not submitit_handler
    # the run is over: a late USR2 is logged and ignored rather than handed to submitit, which would
    # requeue it, and a late TERM does not fail it (a Python handler, which programs started later do not inherit)
    assert signal.getsignal(signal.SIGUSR2) is ignore_late_signal
    assert signal.getsignal(signal.SIGTERM) is ignore_late_signal


def test_requeue_status_hands_over_to_submitits_handler(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 3)
    monkeypatch.setenv("GLOMPO_HPC_JOB_STATE", "RUNNING")
    with pytest.raises(Handover):
        GlompoRun(tmp_path / "job.yaml", max_requeues=2)()
    assert submitit_handler == [signal.SIGUSR2]


def test_spent_requeues_fail_the_job_with_the_reason(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 3)
    monkeypatch.setenv("GLOMPO_HPC_RESTART_COUNT", "2")
    with pytest.raises(RuntimeError, match=r"restarted 2 time\(s\), the most slurm.max_requeues \(2\)"):
        GlompoRun(tmp_path / "job.yaml", max_requeues=2)()
    assert not submitit_handler


def test_a_cancelled_job_is_not_handed_over(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 3)
    monkeypatch.setenv("GLOMPO_HPC_JOB_STATE", "CANCELLED")
    outcome = GlompoRun(tmp_path / "job.yaml")()
    assert outcome["exit_code"] == 3 and not outcome["requeued"] and not submitit_handler


def test_a_failed_run_fails_the_job(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="exited with status 2"):
        GlompoRun(tmp_path / "job.yaml")()


def test_other_ranks_never_hand_over(tmp_path, monkeypatch, submitit_handler):
    fake_cli(monkeypatch, 3)
    monkeypatch.setenv("GLOMPO_HPC_RANK", "1")
    assert GlompoRun(tmp_path / "job.yaml")()["exit_code"] == 3
    assert not submitit_handler


def test_package_exposes_submit_and_needs_submitit_only_to_submit():
    assert slurm_package.submit is submit and callable(slurm_package.submit)
    # submitit is imported inside functions only: the package loads on machines without it
    module = importlib.import_module("glompo_hpc.slurm.submit")
    source = module.__loader__.get_source(module.__name__)
    assert "\nimport submitit" not in source and "\nfrom submitit" not in source
