"""Settings from environment variables: one reader (glompo_hpc/env_settings.py), one error policy.

Every GLOMPO_HPC_* setting with a bad value raises the same ConfigurationError naming the variable
and the value (the command line: one line, exit 2); unset, each keeps its documented default.
"""

from __future__ import annotations

import io

import pytest

from glompo_hpc.backends.backoff import poll_max_sleep
from glompo_hpc.core.optlog import OptimizerLog
from glompo_hpc.env_settings import env_bool, env_choice, env_float, env_int, env_str
from glompo_hpc.errors import ConfigurationError
from glompo_hpc.outputs.hdf5_log import HDF5LogWriter, flush_settings
from glompo_hpc.outputs.progress import ProgressMode, _interval, _resolve
from support.runs import cli, write_job

# variable -> (what reads it, a bad value)
READERS = {
    "GLOMPO_HPC_LOG_FLUSH_SECONDS": (flush_settings, "0"),
    "GLOMPO_HPC_LOG_FLUSH_ROWS": (flush_settings, "many"),
    "GLOMPO_HPC_LOG_TAIL_ROWS": (lambda: OptimizerLog(2), "0"),
    "GLOMPO_HPC_LOG_ENDED_ROWS": (lambda: OptimizerLog(2), "1e3"),
    "GLOMPO_HPC_PROGRESS": (lambda: _resolve(ProgressMode.AUTO, io.StringIO()), "loud"),
    "GLOMPO_HPC_PROGRESS_SECONDS": (_interval, "-5"),
    "GLOMPO_HPC_POLL_MAX_SLEEP": (poll_max_sleep, "2"),
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in READERS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_bad_value_raises_the_one_error_naming_variable_and_value(clean_env, name):
    read, bad = READERS[name]
    clean_env.setenv(name, bad)
    with pytest.raises(ConfigurationError) as caught:
        read()
    assert f"environment variable {name}={bad!r} is not valid: expected " in str(caught.value)


def test_unset_variables_give_the_documented_defaults(clean_env, tmp_path):
    assert flush_settings() == {"flush_seconds": 5.0, "flush_rows": 8192}
    writer = HDF5LogWriter(tmp_path / "log.h5", 2)
    assert (writer.flush_seconds, writer.flush_rows) == (5.0, 8192)
    log = OptimizerLog(2)
    assert (log.tail_rows, log.ended_rows) == (10_000, 10_000)
    assert _resolve(ProgressMode.LINES, io.StringIO()) is ProgressMode.LINES
    assert _interval() == 60.0
    assert poll_max_sleep() == 0.005


def test_set_variables_are_applied(clean_env, tmp_path):
    for name, value in {"GLOMPO_HPC_LOG_FLUSH_SECONDS": "0.5", "GLOMPO_HPC_LOG_FLUSH_ROWS": "100",
                        "GLOMPO_HPC_LOG_TAIL_ROWS": "30", "GLOMPO_HPC_LOG_ENDED_ROWS": "7",
                        "GLOMPO_HPC_PROGRESS": " OFF ", "GLOMPO_HPC_PROGRESS_SECONDS": "2.5"}.items():
        clean_env.setenv(name, value)
    writer = HDF5LogWriter(tmp_path / "log.h5", 2)
    assert (writer.flush_seconds, writer.flush_rows) == (0.5, 100)
    log = OptimizerLog(2)
    assert (log.tail_rows, log.ended_rows) == (30, 7)
    assert _resolve(ProgressMode.LINES, io.StringIO()) is ProgressMode.OFF
    assert _interval() == 2.5


def test_the_readers_check_type_and_range(clean_env):
    env = {"N": "12", "X": "0.25", "B": "Yes", "S": "  text ", "C": "Lines", "E": ""}
    assert env_int("N", 1, minimum=12, environ=env) == 12
    assert env_int("E", 3, environ=env) == 3  # empty counts as unset
    assert env_float("X", 1.0, maximum=0.25, environ=env) == 0.25
    assert env_bool("B", False, environ=env) is True and env_bool("missing", True, environ=env) is True
    assert env_str("S", environ=env) == "text" and env_str("E", "d", environ=env) == "d"
    assert env_choice("C", ("lines", "live"), "live", environ=env) == "lines"
    for read, expected in ((lambda: env_int("N", 1, minimum=13, environ=env), "an integer >= 13"),
                           (lambda: env_float("X", 1.0, maximum=0.1, environ=env), "a finite number > 0 and <= 0.1"),
                           (lambda: env_float("N", 1.0, environ={"N": "nan"}), "a finite number > 0"),
                           (lambda: env_bool("S", True, environ=env), "one of 1, true, yes, on, 0, false, no, off"),
                           (lambda: env_choice("C", ("a", "b"), "a", environ=env), "one of a, b")):
        with pytest.raises(ConfigurationError, match="expected " + expected):
            read()


def test_the_command_line_shows_a_bad_variable_in_one_line_before_the_run(tmp_path):
    for name, bad in (("GLOMPO_HPC_LOG_FLUSH_ROWS", "many"), ("GLOMPO_HPC_PROGRESS_SECONDS", "soon")):
        job = write_job(tmp_path / name, budget=300)
        done = cli("run", job, cwd=job.parent, env={name: bad})
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # no crash report: nothing had started
        assert done.stderr.startswith(f"glompo-hpc: error: environment variable {name}={bad!r} is not valid"), \
            done.stderr
