"""Batch scripts for ``sbatch`` that checkpoint before the time limit, requeue and resume.

:func:`render_jobscript` writes the script for one launcher (``mpirun`` or ``srun``) from a job
file's ``slurm:`` section. With a job file it is filled in (``glompo-hpc jobscript JOB.yaml``);
without one it is the generic script kept in ``jobscripts/``, which takes the job file as its
argument and says what to edit.

Every value taken from the job file is quoted with :func:`shlex.quote`, in ``#SBATCH`` lines as
well (sbatch reads shell quotes there): paths with spaces and names with ``;``, ``$`` or quotes
stay one word and run nothing. Only ``slurm.setup`` lines are copied verbatim: they are commands.
A value with a line break (or NUL) is refused (:func:`one_line`): a ``#SBATCH`` directive is
one line, and the break would end it and make the rest of the value a command of the script.

What the script does at run time:

- ``#SBATCH --signal=B:USR2@S``: SLURM sends USR2 to the batch shell S seconds before the limit;
  the trap forwards it to the launcher (``mpirun`` and ``srun`` pass it on to every rank) and
  the run checkpoints, stops and exits with :attr:`glompo_hpc.run.ExitCode.REQUEUE`.
- On that status, and only on it, the script runs ``scontrol requeue $SLURM_JOB_ID`` unless
  ``SLURM_RESTART_COUNT`` has reached ``max_requeues`` or the job is no longer RUNNING. SIGTERM
  without USR2 before it is ``scancel`` or preemption: the run checkpoints but is not requeued
  (SLURM would requeue even a cancelled job). A USR2 before the launch requeues without
  starting the run.
- ``--open-mode=append`` keeps every allocation's output in one log; the next start runs
  ``glompo-hpc run JOB --resume auto`` and continues from the newest checkpoint.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from ..errors import JobFileError
from ..jobfile.registry import show
from ..jobfile.schema import SlurmSpec
from ..run import ExitCode

__all__ = ("LAUNCHERS", "render_jobscript", "generic_jobscript", "sbatch_directives", "launch_command", "one_line",
           "node_python", "requeue_warning")

LAUNCHERS = ("mpirun", "srun")
LOG_NAME = "glompo-%j.out"  # %j: SLURM's job id; one file per job, appended to by each restart

q = shlex.quote
LINE_BREAKS = "\n\r\0"  # NUL too: bash drops it, so what runs would differ from what was checked


def one_line(value: str, key_path: str) -> str:
    """``value``, refused (JobFileError naming ``key_path``) if it holds a line break or NUL.

    Quoting cannot make a line break safe in a ``#SBATCH`` line: the directive would end there,
    and the rest would be a command of the script (and end sbatch's reading of the directives).
    """
    if any(c in value for c in LINE_BREAKS):
        raise JobFileError(key_path, f"{show(value)} contains a line break or NUL, which a batch script cannot "
                                     f"hold safely; write it on one line")
    return value


def sbatch_directives(slurm: SlurmSpec, log_dir: str | Path | None = None) -> list[str]:
    """The ``#SBATCH`` lines: the request from ``slurm``, plus requeue, USR2 warning and appended log.

    Args:
        slurm: The job file's ``slurm:`` section.
        log_dir: Directory of the output file; None: the directory sbatch is run from.
    """
    output = LOG_NAME if log_dir is None else str(Path(log_dir) / LOG_NAME)
    lines = ["# EDIT the request for your site: account, partition, time, nodes and tasks.",
             "# A line starting with '##' is off; remove one '#' to use it."]

    def directive(name: str, value: object | None, placeholder: str | None = None) -> None:
        if value is not None:
            lines.append(f"#SBATCH --{name}={q(one_line(str(value), 'slurm.' + name.replace('-', '_')))}")
        elif placeholder is not None:
            lines.append(f"##SBATCH --{name}={placeholder}")

    directive("job-name", slurm.job_name)
    directive("account", slurm.account, "YOUR_ACCOUNT")
    directive("partition", slurm.partition, "YOUR_PARTITION")
    directive("time", slurm.time)
    directive("nodes", slurm.nodes)
    directive("ntasks", slurm.ntasks)
    directive("cpus-per-task", slurm.cpus_per_task)
    for name in ("mem", "qos", "gres", "constraint"):
        directive(name, getattr(slurm, name))
    for i, option in enumerate(slurm.sbatch):  # one word each: '--mail-user=a@b.org', '--exclusive'
        lines.append(f"#SBATCH {q(one_line(option, f'slurm.sbatch[{i}]'))}")
    lines += ["# Nothing below needs editing: requeue on request, USR2 to this script before the",
              "# limit (the trap below forwards it), one log appended to by every restart.",
              "#SBATCH --requeue",
              f"#SBATCH --signal=B:USR2@{int(slurm.signal_delay_s)}",
              "#SBATCH --open-mode=append",
              f"#SBATCH --output={q(one_line(output, 'slurm.log_dir'))}"]
    return lines


def launch_command(slurm: SlurmSpec, launcher: str) -> list[str]:
    """The launcher and its arguments (before the Python command), as shell words.

    ``mpirun`` starts ``$SLURM_NTASKS`` ranks (it reads the allocation from SLURM); ``srun``
    takes the task count from the allocation itself.
    """
    if launcher == "mpirun":
        return ["mpirun", "-n", '"${SLURM_NTASKS:-1}"', *_words(slurm.mpirun_args, "slurm.mpirun_args")]
    if launcher == "srun":
        return ["srun", *_words(slurm.srun_args, "slurm.srun_args")]
    raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")


def _words(args: Sequence[str], key_path: str) -> list[str]:
    return [q(one_line(a, f"{key_path}[{i}]")) for i, a in enumerate(args)]


def render_jobscript(slurm: SlurmSpec, launcher: str = "mpirun", job_file: str | Path | None = None,
                     log_dir: str | Path | None = None, python: str | None = None,
                     script_name: str | None = None) -> str:
    """The batch script text.

    Args:
        slurm: The job file's ``slurm:`` section (``SlurmSpec()`` for the generic script).
        launcher: ``mpirun`` or ``srun``.
        job_file: The job file (made absolute); None: the script's first argument.
        log_dir: Directory of the scheduler's output file (None: where sbatch runs).
        python: The interpreter with glompo_hpc (default: ``slurm.python``, else ``python3``).
        script_name: Shown in the usage line (default: ``glompo_<launcher>.sbatch``).

    Returns:
        The script, ending with a newline.
    """
    launch = launch_command(slurm, launcher)
    script_name = script_name or f"glompo_{launcher}.sbatch"
    python = one_line(python or slurm.python or "python3", "slurm.python")
    if job_file is None:
        job_line = f'job_file="${{1:?usage: sbatch {script_name} JOB.yaml}}"'
        origin = [f"#   sbatch {script_name} JOB.yaml",
                  "#",
                  "# The job file's slurm: section holds the same settings; 'python -m glompo_hpc jobscript",
                  f"# JOB.yaml --launcher {launcher}' prints this script filled in from it."]
    else:
        job_line = f"job_file={q(one_line(str(Path(job_file).absolute()), 'the job file path'))}"
        origin = ["#   sbatch THIS_FILE",
                  "#",
                  f"# Written by 'glompo-hpc jobscript --launcher {launcher}' from the job file below."]
    setup = [*slurm.setup] if slurm.setup else ["# module load OpenMPI Python", '# source "$HOME/venvs/glompo/bin/activate"']
    lines = [
        "#!/bin/bash",
        f"# GloMPO (glompo_hpc) under SLURM, launched with {launcher}: the run checkpoints before the",
        "# time limit, the job requeues itself and the next start resumes, until the optimization",
        "# ends or max_requeues restarts are spent (docs/slurm.md).",
        "#",
        *origin,
        *sbatch_directives(slurm, log_dir),
        "",
        "set -u",
        "",
        "# ---- EDIT: modules and the Python environment that has glompo_hpc installed",
        *setup,
        f"python={q(python)}  # the interpreter with glompo_hpc, found after the setup above",
        job_line,
        f"max_requeues={int(slurm.max_requeues)}  # keep equal to the job file's slurm.max_requeues",
        f"launch=({' '.join(launch)})",
        *(_MPI4PY_NOTE if launcher == "mpirun" else ()),
        "",
        "# ---- nothing below needs editing",
        f"exit_requeue={int(ExitCode.REQUEUE)}  # glompo-hpc run: 'checkpointed at the time limit, requeue me'",
        *_RUN_AND_REQUEUE,
    ]
    return "\n".join(lines) + "\n"


# mpi4py is built against one MPI library; an mpirun of another starts N separate one-rank worlds.
_MPI4PY_NOTE = ("# mpi4py must be built against the MPI whose mpirun is first on PATH after the setup above",
                "# (check: $python -c 'import mpi4py; print(mpi4py.get_config())'; 'which mpirun').")


def node_python(slurm: SlurmSpec, this_interpreter: str) -> str:
    """The interpreter the script runs: ``slurm.python``; else ``python3`` from the PATH that the
    ``setup`` lines leave (they activate the site's environment, which an absolute path to this
    machine's interpreter would override); else, with no setup, ``this_interpreter``."""
    if slurm.python is not None:
        return slurm.python
    return "python3" if slurm.setup else this_interpreter


def requeue_warning(checkpointing: object | None) -> str | None:
    """What a requeued job loses when the job file has no checkpointing, else None."""
    if checkpointing is not None:
        return None
    return ("the job file turns checkpointing off, so the job checkpoints neither periodically nor at the time "
            "limit: each requeued start runs 'run --resume auto' from scratch; remove 'checkpointing: false' "
            "(or set checkpoint_time_interval) to continue across requeues")


def generic_jobscript(launcher: str) -> str:
    """The script kept in ``jobscripts/glompo_<launcher>.sbatch``: 4 tasks, the job file as argument.

    ``srun`` gets ``--mpi=pmix`` (Open MPI 5 and Debian's SLURM; some sites want ``pmi2``).
    """
    slurm = SlurmSpec(ntasks=4, srun_args=["--mpi=pmix"] if launcher == "srun" else [])
    return render_jobscript(slurm, launcher)


def _bash_lines(text: str) -> Sequence[str]:
    return text.strip("\n").splitlines()


# The run, the traps and the requeue decision: the same for both launchers; only values above vary.
_RUN_AND_REQUEUE = _bash_lines(r'''
usr2=0       # USR2 received: the time limit is near
cancelled=0  # TERM received: scancel, preemption, or the limit itself
run_pid=""
note() { echo "$(date '+%F %T') glompo job script: $*" >&2; }
on_usr2() {
    usr2=$((usr2 + 1))
    note "USR2: the time limit is near; asking the run to checkpoint and stop"
    if [ -n "$run_pid" ]; then kill -USR2 "$run_pid" 2>/dev/null || true; fi
}
on_term() {
    cancelled=$((cancelled + 1))
    note "TERM: stopping the run"
    if [ -n "$run_pid" ]; then kill -TERM "$run_pid" 2>/dev/null || true; fi
}
trap on_usr2 USR2
trap on_term TERM

note "job ${SLURM_JOB_ID:-?} start $((${SLURM_RESTART_COUNT:-0} + 1)) on ${SLURM_JOB_NODELIST:-?}: $job_file"
if [ "$usr2" -gt 0 ]; then
    rc=$exit_requeue  # the warning came before the launch: requeue without starting
else
    "${launch[@]}" "$python" -m glompo_hpc run "$job_file" --resume auto &
    run_pid=$!
    rc=0
    while :; do
        seen=$((usr2 + cancelled))
        wait "$run_pid"
        status=$?
        if [ "$status" -eq 127 ]; then break; fi  # already collected by the wait before
        rc=$status
        # a trapped signal cuts `wait` short with 128+n while the run goes on: wait again
        if [ "$rc" -gt 128 ] && [ $((usr2 + cancelled)) -ne "$seen" ]; then continue; fi
        break
    done
fi
note "the run exited with status $rc"

if [ "$rc" -ne "$exit_requeue" ]; then
    exit "$rc"  # finished (0) or failed: never requeued
fi
# SLURM would requeue even a cancelled job: requeue only a running one that was warned, not cancelled
state=$(squeue -h -j "$SLURM_JOB_ID" -o %T 2>/dev/null || true)
if { [ "$cancelled" -gt 0 ] && [ "$usr2" -eq 0 ]; } || { [ -n "$state" ] && [ "$state" != RUNNING ]; }; then
    note "job $SLURM_JOB_ID was cancelled or hit its limit (state ${state:-?}): not requeued;" \
         "submit the script again to resume from the last checkpoint"
    exit "$rc"
fi
restarts=${SLURM_RESTART_COUNT:-0}
if [ "$restarts" -ge "$max_requeues" ]; then
    note "job $SLURM_JOB_ID was already restarted $restarts time(s), the most max_requeues ($max_requeues)" \
         "allows: not requeued again; submit the script again to resume from the last checkpoint"
    exit "$rc"
fi
note "checkpointed: requeueing job $SLURM_JOB_ID (restart $((restarts + 1)) of at most $max_requeues)"
if scontrol requeue "$SLURM_JOB_ID"; then
    exit 0
fi
note "scontrol requeue $SLURM_JOB_ID failed; submit the script again to resume from the last checkpoint"
exit "$rc"
''')
