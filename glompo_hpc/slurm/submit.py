"""Submitting a job file through submitit: ``glompo-hpc submit JOB.yaml`` and :func:`submit`.

The submitted callable, :class:`GlompoRun`, runs the job with ``--resume auto`` inside the
submitit process on every task (rank 0 runs the manager), through :func:`glompo_hpc.run.run`, as
the command line does. Its ``checkpoint`` method is what
makes submitit requeue instead of giving up:

- SLURM sends USR2 ``slurm.signal_delay_s`` before the limit (submitit's ``--signal=USR2@S``).
  While the run goes on, its own handlers have the signal (the manager's: checkpoint,
  stop, write the outputs), and ``run`` returns :attr:`ExitCode.REQUEUE`. :class:`GlompoRun` puts
  submitit's handlers back and raises USR2 again: submitit calls ``checkpoint`` (a new
  submission of the same job, which starts with ``--resume auto``), pickles it, runs
  ``scontrol requeue`` and exits.
- It does not hand over once ``slurm.max_requeues`` restarts are spent (the job then fails
  with that message) or when the job is no longer running (``scancel``: SLURM would requeue
  even a cancelled job). submitit's own countdown (``max_num_timeout``) is the same number.

submitit is imported only when a submission is made, so the rest of the package works without it.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment import detect
from .jobscript import node_python, one_line
from ..run import ExitCode
from .walltime import RequeueBudget, requeue_refusal

__all__ = ("GlompoRun", "Submission", "submit", "make_executor", "format_submission")

logger = logging.getLogger("glompo_hpc.slurm.submit")


class GlompoRun:
    """The callable submitit runs: ``glompo-hpc run JOB --resume auto`` in this process.

    It has a ``checkpoint`` method, which is all submitit needs to requeue it (submitit checks
    for the name), and it holds nothing but the job file's path: the run's state lives in the
    run's own checkpoints, so the resubmission after a requeue is this same object.

    Args:
        job_file: The job file (absolute).
        max_requeues: ``slurm.max_requeues``: no hand-over to submitit once spent.
    """

    HANDOVER_WAIT_S = 60.0  # s: how long to wait for submitit's handler to requeue and exit

    def __init__(self, job_file: str | Path, max_requeues: int = 10) -> None:
        self.job_file = str(Path(job_file).absolute())
        self.max_requeues = max_requeues

    @property
    def argv(self) -> list[str]:
        """The command line this run is equivalent to."""
        return ["run", self.job_file, "--resume", "auto"]

    def __call__(self) -> dict[str, Any]:
        from .. import run as run_module
        from ..core.signals import LATE_SIGNALS, ignore_late_signal
        from .walltime import guard_for_run

        env = detect()
        logger.info("glompo-hpc %s (job %s, start %d, rank %d)", shlex.join(self.argv), env.job_id,
                    env.restart_count + 1, env.rank)
        saved = {sig: signal.getsignal(sig) for sig in LATE_SIGNALS}
        code = None
        try:
            request = run_module.RunRequest(self.job_file, resume="auto")
            code = run_module.run_program(request, guard=guard_for_run, restore_signals=False)
        finally:
            # Only a requeue needs submitit's handlers back (the hand-over below raises its USR2).
            # Any other end is final: a late USR2 must not requeue it, nor a TERM fail it, so the
            # handlers that log and ignore them stay until the process exits (no gap in between).
            for sig, handler in saved.items():
                signal.signal(sig, handler if code == ExitCode.REQUEUE and handler is not None else ignore_late_signal)
        outcome = {"job_file": self.job_file, "exit_code": code, "job_id": env.job_id,
                   "restart_count": env.restart_count, "requeued": False}
        if code == ExitCode.REQUEUE and env.rank == 0:
            budget = RequeueBudget.from_environment(self.max_requeues, env)
            if not budget.allows_requeue():
                raise RuntimeError(budget.exhausted_message())  # the job fails with the reason
            refusal = requeue_refusal(self.max_requeues, env)
            if refusal is None:
                self._hand_over_to_submitit()  # does not return
            logger.warning("%s", refusal)
            return outcome  # cancelled: the user's decision, not a failure
        if code not in (ExitCode.OK, ExitCode.REQUEUE):
            raise RuntimeError(f"glompo-hpc run {self.job_file} exited with status {code} (see the log above)")
        return outcome

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook: the submission that resumes this run (a DelayedSubmission)."""
        from submitit.helpers import DelayedSubmission

        logger.warning("Requeueing %s: the next start resumes with --resume auto", self.job_file)
        return DelayedSubmission(GlompoRun(self.job_file, self.max_requeues), *args, **kwargs)

    def _hand_over_to_submitit(self) -> None:
        # submitit's USR2 handler is back in place; raising USR2 runs it from the main loop:
        # checkpoint(), pickle, `scontrol requeue`, sys.exit. It does not return.
        handler = signal.getsignal(signal.SIGUSR2)
        if not callable(handler):
            raise RuntimeError("the run asked for a requeue, but no USR2 handler is installed "
                               "(is this running under submitit?)")
        logger.info("The run checkpointed and asks for a requeue: handing over to submitit")
        os.kill(os.getpid(), signal.SIGUSR2)
        deadline = time.monotonic() + self.HANDOVER_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.1)
        raise RuntimeError(f"submitit did not requeue within {self.HANDOVER_WAIT_S:.0f} s after USR2")

    def __repr__(self) -> str:
        return f"GlompoRun({self.job_file!r}, max_requeues={self.max_requeues})"


@dataclass
class Submission:
    """What :func:`submit` did (or would do, for a dry run)."""

    job_file: str
    sbatch_text: str
    sbatch_command: list[str]
    run_command: list[str]
    folder: Path
    job_id: str | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    job: Any = None  # the submitit Job (not for a dry run)

    @property
    def dry_run(self) -> bool:
        return self.job_id is None


def _executor_class(dry_run: bool) -> type:
    import submitit

    if not dry_run:
        return submitit.SlurmExecutor

    class DryRunExecutor(submitit.SlurmExecutor):
        # SlurmExecutor refuses to exist without `srun`; a dry run only writes text
        @classmethod
        def affinity(cls) -> int:
            return 1

    return DryRunExecutor


def make_executor(spec: Any, dry_run: bool = False) -> Any:
    """A submitit SlurmExecutor with the job file's ``slurm:`` section as its parameters.

    Args:
        spec: The validated job file (:class:`~glompo_hpc.jobfile.JobSpec`).
        dry_run: Build it even where there is no SLURM (nothing is submitted).
    """
    slurm = spec.slurm
    if slurm.ntasks % slurm.nodes:
        from ..errors import JobFileError
        raise JobFileError("slurm.ntasks", f"submitit starts the same number of tasks on every node: "
                                           f"{slurm.ntasks} tasks on {slurm.nodes} nodes do not divide evenly")
    folder = Path(spec.base_dir) / Path(slurm.log_dir).expanduser() / "%j"
    python = node_python(slurm, sys.executable)
    # submitit writes these into #SBATCH lines and the script: a line break there would run its rest
    for value, key_path in ((slurm.job_name, "slurm.job_name"), (slurm.partition, "slurm.partition"),
                            (slurm.account, "slurm.account"), (python, "slurm.python"), (str(folder), "slurm.log_dir"),
                            *((a, f"slurm.srun_args[{i}]") for i, a in enumerate(slurm.srun_args))):
        if value is not None:
            one_line(value, key_path)
    executor = _executor_class(dry_run)(folder=folder, max_num_timeout=slurm.max_requeues, python=shlex.quote(python))
    params: dict[str, Any] = {
        "job_name": slurm.job_name,
        "time": math.ceil(slurm.time_seconds / 60),  # submitit counts minutes
        "nodes": slurm.nodes,
        "ntasks_per_node": slurm.ntasks // slurm.nodes,
        "cpus_per_task": slurm.cpus_per_task,
        "signal_delay_s": int(slurm.signal_delay_s),
        "additional_parameters": {"requeue": True},
    }
    for name in ("partition", "account", "mem", "qos", "gres", "constraint"):
        if getattr(slurm, name) is not None:
            params[name] = one_line(getattr(slurm, name), f"slurm.{name}")
    for i, option in enumerate(slurm.sbatch):  # '--mail-type=END' -> mail_type: END; '--exclusive' -> True
        name, _, value = one_line(option, f"slurm.sbatch[{i}]")[2:].partition("=")
        params["additional_parameters"][name.replace("-", "_")] = value or True
    if slurm.srun_args:
        params["srun_args"] = list(slurm.srun_args)
    if slurm.setup:
        params["setup"] = list(slurm.setup)
    executor.update_parameters(**params)
    return executor


def submit(job_file: str | Path, dry_run: bool = False) -> Submission:
    """Submit a job file to SLURM through submitit (or, with ``dry_run``, only say what would be).

    The job runs ``glompo-hpc run JOB --resume auto`` with the ``slurm:`` section's request;
    before each time limit it checkpoints and is requeued, at most ``slurm.max_requeues`` times.

    Args:
        job_file: The YAML job file.
        dry_run: Validate and build the sbatch text, submit nothing.

    Returns:
        The job id (None for a dry run), the sbatch text and command, and the log files.

    Raises:
        FileNotFoundError, JobFileError: The job file is missing or invalid.
        submitit.core.utils.FailedJobError: sbatch refused the job.
    """
    from ..jobfile import load_job_file

    spec = load_job_file(job_file)
    run = GlompoRun(Path(job_file).resolve(), spec.slurm.max_requeues)
    executor = make_executor(spec, dry_run=dry_run)
    run_command = [shlex.quote(node_python(spec.slurm, sys.executable)), "-m", "glompo_hpc", *map(shlex.quote, run.argv)]
    folder = Path(executor.folder)
    if dry_run:
        sbatch_file = folder.parent / ".submission_file_<id>.sh"
        text = executor._make_submission_file_text(executor._submitit_command_str, "dry-run")
        return Submission(str(run.job_file), text, executor._make_submission_command(sbatch_file), run_command, folder)
    job = executor.submit(run)
    paths = job.paths
    text = paths.submission_file.read_text() if paths.submission_file.exists() else ""
    logger.info("Submitted %s as job %s", run.job_file, job.job_id)
    return Submission(str(run.job_file), text, executor._make_submission_command(paths.submission_file), run_command,
                      paths.folder, job_id=str(job.job_id), stdout=paths.stdout, stderr=paths.stderr, job=job)


def format_submission(sub: Submission) -> str:
    """Lines for the terminal: the sbatch text and commands for a dry run, else the id and the logs."""
    if sub.dry_run:
        return "\n".join([
            f"# dry run: nothing submitted. submitit would write this file and run: {shlex.join(map(str, sub.sbatch_command))}",
            f"# each task then runs the equivalent of: {' '.join(sub.run_command)}",
            f"# logs: {sub.folder}",
            sub.sbatch_text.rstrip("\n"),
        ])
    return "\n".join([
        f"Submitted job {sub.job_id}: {sub.job_file}",
        f"  stdout: {sub.stdout}",
        f"  stderr: {sub.stderr}",
        f"  watch:  squeue -j {sub.job_id}    tail -f {shlex.quote(str(sub.stderr))}",
    ])
