"""Job scripts: the golden generic scripts, values and quoting from the job file, and what the
script does at run time (requeue or not), run by bash with stand-ins for srun/scontrol/squeue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glompo_hpc import cli
from glompo_hpc.jobfile.schema import SlurmSpec
from glompo_hpc.slurm.jobscript import LAUNCHERS, generic_jobscript, launch_command, render_jobscript
from slurm_support import ROOT, WEIRD_NAME, sbatch_options, write_job

pytestmark = pytest.mark.timeout(60)

def render(tmp_path: Path, launcher: str, slurm: str, capsys) -> tuple[str, Path]:
    job = write_job(tmp_path / "a dir with spaces", slurm=slurm)
    assert cli.main(["jobscript", str(job), "--launcher", launcher]) == 0
    return capsys.readouterr().out, job


# ------------------------------------------------------------ golden and static content

@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_generic_scripts_in_jobscripts_are_the_generated_ones(launcher):
    kept = (ROOT / "jobscripts" / f"glompo_{launcher}.sbatch").read_text()
    assert kept == generic_jobscript(launcher), (
        f"jobscripts/glompo_{launcher}.sbatch differs from generic_jobscript({launcher!r}); regenerate it with "
        f"python -c \"from glompo_hpc.slurm.jobscript import generic_jobscript as g; "
        f"open('jobscripts/glompo_{launcher}.sbatch', 'w').write(g('{launcher}'))\"")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_generic_script_has_the_requeue_machinery_and_says_what_to_edit(launcher):
    text = generic_jobscript(launcher)
    options = sbatch_options(text)
    assert options["--requeue"] is True and options["--open-mode"] == "append"
    assert options["--signal"] == "B:USR2@300" and options["--time"] == "01:00:00"
    for edit in ("##SBATCH --account=YOUR_ACCOUNT", "##SBATCH --partition=YOUR_PARTITION", "# ---- EDIT: modules",
                 "# module load", "activate"):
        assert edit in text
    assert "trap on_usr2 USR2" in text and 'scontrol requeue "$SLURM_JOB_ID"' in text
    assert 'job_file="${1:?usage: sbatch ' in text
    assert ("srun --mpi=pmix" if launcher == "srun" else 'mpirun -n "${SLURM_NTASKS:-1}"') in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_filled_script_takes_every_value_from_the_job_file(tmp_path, capsys):
    text, job = render(tmp_path, "srun", "{time: '2-03:00:00', nodes: 2, ntasks: 8, cpus_per_task: 3, "
                                         "partition: long, account: proj-42, signal_delay_s: 600, max_requeues: 7, "
                                         "srun_args: [--mpi=pmix, --overcommit], setup: ['module load foo/1.2']}",
                       capsys)
    options = sbatch_options(text)
    expected = {"--job-name": "glompo", "--time": "2-03:00:00", "--nodes": "2", "--ntasks": "8",
                "--cpus-per-task": "3", "--partition": "long", "--account": "proj-42", "--signal": "B:USR2@600",
                "--open-mode": "append", "--requeue": True,
                "--output": str(job.parent / "slurm_logs" / "glompo-%j.out")}
    assert options == expected
    assert (job.parent / "slurm_logs").is_dir()  # SLURM does not create it and would fail silently
    assert "module load foo/1.2\n" in text and "max_requeues=7 " in text
    assert "launch=(srun --mpi=pmix --overcommit)" in text


def test_values_with_spaces_and_shell_metacharacters_stay_single_words(tmp_path, capsys):
    quoted_name = WEIRD_NAME.replace("'", "''")  # YAML single-quoted string
    text, job = render(tmp_path, "mpirun", f"{{job_name: '{quoted_name}', log_dir: 'my logs', "
                                           f"python: '/opt/py thon/bin/python3', mpirun_args: ['--map-by', 'x y']}}",
                       capsys)
    options = sbatch_options(text)
    assert options["--job-name"] == WEIRD_NAME
    assert options["--output"] == str(job.parent / "my logs" / "glompo-%j.out")
    # what bash makes of the assignments is exactly the values
    assignments = "\n".join(line for line in text.splitlines() if line.startswith(("python=", "job_file=", "launch=")))
    shown = subprocess.run(["bash", "-c", assignments + '\nprintf "%s\\n" "$python" "$job_file" "${launch[@]}"'],
                           capture_output=True, text=True, env={"SLURM_NTASKS": "5", "PATH": os.environ["PATH"]})
    assert shown.stdout.splitlines() == ["/opt/py thon/bin/python3", str(job), "mpirun", "-n", "5", "--map-by", "x y"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_launch_commands_and_unknown_launcher():
    slurm = SlurmSpec(srun_args=["--mpi=pmix"], mpirun_args=["--oversubscribe"])
    assert launch_command(slurm, "srun") == ["srun", "--mpi=pmix"]
    assert launch_command(slurm, "mpirun") == ["mpirun", "-n", '"${SLURM_NTASKS:-1}"', "--oversubscribe"]
    with pytest.raises(ValueError, match="launcher"):
        render_jobscript(slurm, "aprun")


def test_jobscript_command_rejects_an_unknown_launcher_and_a_bad_slurm_section(tmp_path, capsys):
    job = write_job(tmp_path, slurm="{walltime: 10}")
    assert cli.main(["jobscript", str(job)]) == 2
    err = capsys.readouterr().err
    assert "slurm.walltime: unknown key; valid keys: job_name='glompo', time='01:00:00'" in err
    assert cli.main(["jobscript", str(write_job(tmp_path)), "--launcher", "aprun"]) == 2


# ------------------------------------------------------------ the script at run time (bash, stand-ins)

FAKE_RUN = r'''#!/bin/bash
# stands in for `python -m glompo_hpc run JOB --resume auto`: records its arguments, then acts per $FAKE_RUN
printf '%s\n' "$@" > "$FAKE_DIR/run_args"
case "$FAKE_RUN" in
    exit:*) exit "${FAKE_RUN#exit:}" ;;
    wait)   # checkpoint-and-exit-3 on USR2 or TERM, like the manager
        trap 'echo USR2 > "$FAKE_DIR/run_signal"; exit 3' USR2
        trap 'echo TERM > "$FAKE_DIR/run_signal"; exit 3' TERM
        touch "$FAKE_DIR/run_started"
        for _ in $(seq 300); do sleep 0.1; done
        exit 0 ;;
esac
'''


@pytest.fixture
def fake_cluster(tmp_path):
    """A bin directory with srun (runs its command), scontrol (records) and squeue (prints $FAKE_STATE)."""
    bin_dir = tmp_path / "fake bin"
    bin_dir.mkdir()
    scripts = {
        "srun": '#!/bin/bash\nexec "$@"\n',
        "scontrol": '#!/bin/bash\necho "$*" >> "$FAKE_DIR/scontrol_calls"\n',
        "squeue": '#!/bin/bash\necho "${FAKE_STATE:-RUNNING}"\n',
        "python": FAKE_RUN,
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def start_script(tmp_path, fake_cluster, fake_run, restarts=None, state="RUNNING", max_requeues=2):
    job = write_job(tmp_path / "job dir", slurm=f"{{max_requeues: {max_requeues}, python: '{fake_cluster / 'python'}'}}")
    text = render_jobscript(SlurmSpec(max_requeues=max_requeues), "srun", job_file=job,
                            python=str(fake_cluster / "python"))
    script = tmp_path / "job script.sbatch"
    script.write_text(text)
    env = {"PATH": f"{fake_cluster}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path), "FAKE_RUN": fake_run,
           "FAKE_STATE": state, "SLURM_JOB_ID": "99", "SLURM_JOB_NODELIST": "node1"}
    if restarts is not None:
        env["SLURM_RESTART_COUNT"] = str(restarts)
    proc = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, job


def finish(proc) -> tuple[int, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out + err


def requeue_calls(tmp_path) -> list[str]:
    calls = tmp_path / "scontrol_calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_script_runs_the_job_file_with_resume_auto_and_a_normal_end_is_not_requeued(tmp_path, fake_cluster):
    proc, job = start_script(tmp_path, fake_cluster, "exit:0")
    code, log = finish(proc)
    assert code == 0, log
    assert (tmp_path / "run_args").read_text().splitlines() == ["-m", "glompo_hpc", "run", str(job), "--resume", "auto"]
    assert requeue_calls(tmp_path) == []


@pytest.mark.parametrize("status", [1, 2, 130])
def test_a_failed_run_is_not_requeued(tmp_path, fake_cluster, status):
    proc, _ = start_script(tmp_path, fake_cluster, f"exit:{status}")
    code, log = finish(proc)
    assert code == status and requeue_calls(tmp_path) == []


def test_requeue_status_requeues_while_restarts_remain(tmp_path, fake_cluster):
    proc, _ = start_script(tmp_path, fake_cluster, "exit:3", restarts=1, max_requeues=2)
    code, log = finish(proc)
    assert code == 0, log
    assert requeue_calls(tmp_path) == ["requeue 99"]
    assert "restart 2 of at most 2" in log


def test_requeue_status_after_max_requeues_stops_with_a_clear_message(tmp_path, fake_cluster):
    proc, _ = start_script(tmp_path, fake_cluster, "exit:3", restarts=2, max_requeues=2)
    code, log = finish(proc)
    assert code == 3 and requeue_calls(tmp_path) == []
    assert "job 99 was already restarted 2 time(s), the most max_requeues (2) allows: not requeued again" in log


def test_a_job_that_is_no_longer_running_is_not_requeued(tmp_path, fake_cluster):
    proc, _ = start_script(tmp_path, fake_cluster, "exit:3", state="COMPLETING")
    code, log = finish(proc)
    assert code == 3 and requeue_calls(tmp_path) == []
    assert "state COMPLETING" in log


def wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_usr2_is_forwarded_to_the_run_and_its_checkpoint_requeues(tmp_path, fake_cluster):
    proc, _ = start_script(tmp_path, fake_cluster, "wait")
    wait_for(tmp_path / "run_started")
    proc.send_signal(signal.SIGUSR2)
    code, log = finish(proc)
    assert (tmp_path / "run_signal").read_text().strip() == "USR2"
    assert code == 0, log
    assert requeue_calls(tmp_path) == ["requeue 99"]
    assert "USR2: the time limit is near" in log and "the run exited with status 3" in log


def test_term_without_a_warning_is_a_cancel_and_not_requeued(tmp_path, fake_cluster):
    proc, _ = start_script(tmp_path, fake_cluster, "wait")
    wait_for(tmp_path / "run_started")
    proc.send_signal(signal.SIGTERM)
    code, log = finish(proc)
    assert (tmp_path / "run_signal").read_text().strip() == "TERM"
    assert code == 3 and requeue_calls(tmp_path) == []
    assert "cancelled" in log


# ------------------------------------------------------------ a user's first day (issue 18, item 5)

def test_site_options_and_extra_sbatch_lines_are_keys(tmp_path, capsys):
    slurm = ('{mem: 4G, qos: long, gres: "gpu:1", constraint: "skylake&ib", '
             'sbatch: ["--mail-type=END", "--mail-user=me@uni.example", "--exclusive"]}')
    text, _ = render(tmp_path, "mpirun", slurm, capsys)
    options = sbatch_options(text)
    assert options["--mem"] == "4G" and options["--qos"] == "long" and options["--gres"] == "gpu:1"
    assert options["--constraint"] == "skylake&ib" and options["--mail-type"] == "END"
    assert options["--mail-user"] == "me@uni.example" and options["--exclusive"] is True
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_an_sbatch_item_that_is_not_an_option_is_refused(tmp_path, capsys):
    job = write_job(tmp_path, slurm='{sbatch: ["mail-type=END"]}')
    assert cli.main(["jobscript", str(job)]) == 2
    assert "slurm.sbatch[0]: expected a long sbatch option" in capsys.readouterr().err


def test_the_python_of_the_setup_lines_is_not_overridden(tmp_path, capsys):
    text, _ = render(tmp_path, "srun", "{setup: ['source /opt/site/venv/bin/activate']}", capsys)
    setup_at = text.index("source /opt/site/venv/bin/activate")
    python_line = next(line for line in text.splitlines() if line.startswith("python="))
    assert python_line.startswith("python=python3 ") and text.index(python_line) > setup_at
    assert sys.executable not in text
    chosen, _ = render(tmp_path / "b", "srun", "{setup: ['module load x'], python: /site/bin/python3.12}", capsys)
    assert "python=/site/bin/python3.12 " in chosen
    bare, _ = render(tmp_path / "c", "srun", "{}", capsys)  # no setup: this interpreter is the one known
    assert f"python={sys.executable} " in bare


def test_requeue_without_checkpointing_warns(tmp_path, capsys):
    job = write_job(tmp_path, checkpointing="false")
    assert cli.main(["jobscript", str(job)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "checkpointing off" in err and "from scratch" in err
    job = write_job(tmp_path / "b", checkpointing="{checkpoint_time_interval: 600}")
    assert cli.main(["jobscript", str(job)]) == 0
    assert capsys.readouterr().err == ""


def test_the_mpirun_script_says_mpi4py_must_match_mpirun(tmp_path, capsys):
    text, _ = render(tmp_path, "mpirun", "{}", capsys)
    assert "mpi4py must be built against the MPI whose mpirun is first on PATH" in text
    srun_text, _ = render(tmp_path / "b", "srun", "{}", capsys)
    assert "mpi4py must" not in srun_text
