"""``glompo-hpc watch``: one frame (--once), and the live view in a real 80x24 terminal (tmux)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import uuid

import pytest

from support.runs import EVENT_WAIT, cli, finished_run, requeued_run, tree_digest, wait_for, write_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("watch_done"))


def test_once_prints_a_frame_of_a_finished_run_and_writes_nothing(done_run):
    before = tree_digest(done_run)
    shown = cli("watch", done_run, "--once", env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    frame = shown.stdout
    assert "glompo-hpc watch" in frame and "state: finished: MaxFuncCalls(fmax=3000)" in frame
    assert re.search(r"evaluations 3,\d\d\d ", frame)
    assert "ended because" in frame and re.search(r"stopper: ", frame), frame  # a stopper decision is shown
    assert "The run is not running (finished" in frame
    assert max(len(line) for line in frame.splitlines()) <= 80
    assert len(frame.splitlines()) <= 24
    assert tree_digest(done_run) == before


def test_once_shows_the_sessions_of_a_requeued_run(tmp_path):
    run = requeued_run(tmp_path)
    frame = cli("watch", run, "--once", env={"COLUMNS": "80"}).stdout
    assert "sessions 2 (1 requeue)" in frame, frame
    assert re.search(r"checkpoints [1-9]", frame)


class Tmux:
    """A detached tmux server of our own (its own socket) with one 80x24 window."""

    STATUS = "watch-exit-status"

    def __init__(self, command: list[str], cwd) -> None:
        assert shutil.which("tmux"), "tmux is installed by .ci/run"
        self.socket = f"glompo-watch-{uuid.uuid4().hex[:8]}"
        # A shell reports the exit status on the screen: tmux 3.3 loses a pane's status when the pty's
        # end of file reaches it before the exit (it then shows a dead pane with no status). The
        # shell's no-op INT trap keeps it alive through Ctrl-C; the command gets SIGINT as usual.
        wrapped = f"trap : INT; {shlex.join(command)}; echo; echo {self.STATUS} $?; sleep 600"
        self._tmux("new-session", "-d", "-x", "80", "-y", "24", "-c", str(cwd), shlex.join(["sh", "-c", wrapped]))

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def screen_when(self, condition, what: str) -> str:
        """The screen, once ``condition(screen)`` holds (waiting for the view to redraw)."""
        return wait_for(lambda: (lambda s: s if condition(s) else None)(self.screen()), what)

    def dead(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        found = re.search(rf"^{self.STATUS} (\d+)$", self.screen(), re.MULTILINE)
        return int(found.group(1)) if found else None

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _evaluations(screen: str) -> int | None:
    found = re.search(r"evaluations ([\d,]+) ", screen)
    return int(found.group(1).replace(",", "")) if found else None


def test_live_view_in_tmux_follows_a_running_run_to_its_end(tmp_path):
    job = write_job(tmp_path, budget=6000, delay=0.002, checkpoint_every=1500)
    writer = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "run", str(job)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "glompo_log.h5"
    wait_for(lambda: log.is_file(), "the run's log")
    tmux = Tmux([sys.executable, "-m", "glompo_hpc", "watch", "run", "--interval", "0.3"], tmp_path)
    try:
        first = tmux.screen_when(lambda s: "glompo-hpc watch" in s and _evaluations(s) is not None, "the first screen")
        assert "state: running" in first, first
        assert all(len(line) <= 80 for line in first.splitlines())
        # refreshes while the run writes: the count on the screen grows (each flush is a file event)
        grown = tmux.screen_when(lambda s: (_evaluations(s) or 0) > _evaluations(first),
                                 "a refresh showing more evaluations")
        assert "id" in grown and "alive" in grown
        writer.communicate(timeout=EVENT_WAIT)
        assert writer.returncode == 0
        assert wait_for(lambda: tmux.dead() is not None, "watch to end with the run") is not None
        assert tmux.dead() == 0
        last = tmux.screen()
        assert "The run is not running (finished: MaxFuncCalls(fmax=6000))" in last, last
    finally:
        tmux.close()
        if writer.poll() is None:
            writer.kill()


def test_ctrl_c_ends_the_view_cleanly(tmp_path):
    job = write_job(tmp_path, budget=200_000, delay=0.002, checkpoint_every=100_000)
    writer = subprocess.Popen([sys.executable, "-m", "glompo_hpc", "run", str(job)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "glompo_log.h5"
    try:
        wait_for(lambda: log.is_file(), "the run's log")
        tmux = Tmux([sys.executable, "-m", "glompo_hpc", "watch", "run", "--interval", "0.3"], tmp_path)
        try:
            wait_for(lambda: "state: running" in tmux.screen(), "the first screen")
            tmux.keys("C-c")
            wait_for(lambda: tmux.dead() is not None, "watch to end after Ctrl-C")
            assert tmux.dead() == 0
            assert "Traceback" not in tmux.screen()
        finally:
            tmux.close()
        assert writer.poll() is None  # the watched run goes on, undisturbed
    finally:
        writer.terminate()
        writer.communicate(timeout=EVENT_WAIT)
