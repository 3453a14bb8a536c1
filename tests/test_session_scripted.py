"""The session's decisions, driven by a scripted backend: no processes, no threads, no sleeps.

Each test runs the real ``start_manager()`` with the backend replaced by ``ScriptedBackend``
(tests/scripted/backend.py) and the session's clock by a ``ScriptedClock`` that moves only when
the backend polls, then checks what the session decided: which children it started, what it sent
to each and in which order, and how the run ended.
"""

from __future__ import annotations

import pytest
from scripted.backend import ChildScript, ScriptedBackend, ScriptedClock
from support.optimizers import WalkOptimizer, sphere

from glompo_hpc import CheckpointingControl, CycleSelector, GloMPOManager, MaxFuncCalls
from glompo_hpc.core import interventions as interventions_module
from glompo_hpc.core import messages as msg
from glompo_hpc.core import plugins
from glompo_hpc.core import session as session_module
from glompo_hpc.core.checkpoint_file import list_checkpoints, open_checkpoint
from glompo_hpc.core.policies import CRASH_LOOP_LIMIT
from glompo_hpc.core.state import EndKind
from glompo_hpc.stoppers import BaseStopper

BOUNDS = [(-5.0, 5.0)] * 2


@pytest.fixture
def scripted(monkeypatch, request):
    """Install a ScriptedBackend whose children follow ``scripts(opt_id)``; returns it."""
    clock = ScriptedClock()
    monkeypatch.setattr(session_module, "time", clock)
    monkeypatch.setattr(interventions_module, "time", clock)

    def install(scripts) -> ScriptedBackend:
        backend = ScriptedBackend(scripts, clock)
        processes = plugins.backend_kind("processes")  # the session builds its transport from the registry
        plugins.register_backend(processes._replace(make=lambda: backend))
        request.addfinalizer(lambda: plugins.register_backend(processes))
        return backend

    return install


def run(tmp_path, **kwargs) -> GloMPOManager:
    kwargs.setdefault("max_jobs", 2)
    kwargs.setdefault("stoppers", False)
    kwargs.setdefault("split_printstreams", False)
    m = GloMPOManager.new_manager(sphere, BOUNDS, CycleSelector(WalkOptimizer), working_dir=tmp_path,
                                  backend="processes", **kwargs)
    m.start_manager()
    return m


def stops_to(backend: ScriptedBackend, opt_id: int) -> list[str]:
    return [m.reason for i, m in backend.sent if i == opt_id and isinstance(m, msg.Stop)]


class StopAllButBest(BaseStopper):
    def __call__(self, log, best_opt_id, tested_opt_id) -> bool:
        self.last_result = tested_opt_id != best_opt_id
        return self.last_result


# ------------------------------------------------------------------ spawning, stopping, exiting

def test_free_slots_are_filled_and_refilled_as_children_finish(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(reports=2, batch=4))
    m = run(tmp_path, max_jobs=3, exit_conditions=MaxFuncCalls(60))
    assert backend.started[:3] == [1, 2, 3]
    assert m.o_counter == len(backend.started) > 3  # finished children were replaced
    assert m.conv_counter >= m.o_counter - 3 and m.f_counter >= 60
    assert m.state.end.kind is EndKind.EXIT_CONDITIONS and m.exit_reason == "MaxFuncCalls(fmax=60)"


def test_stoppers_stop_every_child_but_the_best(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever", fx=lambda i, k: float(i)))
    m = run(tmp_path, stoppers=StopAllButBest(), stopcheck_interval=1, exit_conditions=MaxFuncCalls(40))
    assert stops_to(backend, 2)[0] == "StopAllButBest() = True"
    assert 2 in m.stopped_opts and m.opt_log.records[2].end_cond == "GloMPO Termination"
    assert stops_to(backend, 1) == ["manager is shutting down"]  # the best ran until the end


def test_the_end_stops_every_child_once_and_closes_the_backend(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever"))
    m = run(tmp_path, exit_conditions=MaxFuncCalls(50))
    assert m.state.end.kind is EndKind.EXIT_CONDITIONS and m.f_counter >= 50
    assert all(stops_to(backend, i) == ["manager is shutting down"] for i in backend.started)
    assert backend.closed and not backend.killed


# ------------------------------------------------------------------ checkpoints

def test_a_checkpoint_pauses_saves_then_resumes_every_live_child(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever"))
    cc = CheckpointingControl(checkpoint_eval_interval=20, naming_format="ck_%(count)")
    m = run(tmp_path, exit_conditions=MaxFuncCalls(50), checkpoint_control=cc)
    for opt_id in (1, 2):
        assert backend.messages_to(opt_id)[:3] == [msg.Pause, msg.SaveState, msg.Resume]
    first = list_checkpoints(tmp_path / "checkpoints")[-1]
    with open_checkpoint(tmp_path / "checkpoints" / "ck_000.tar") as c:
        # nothing half in: the rows in the log at the checkpoint are exactly the evaluations it counts
        assert sum(c.manifest["log_rows"].values()) == c.manifest["f_counter"]
        assert c.manifest["live_optimizers"] == [1, 2]
    assert first.exists() and len(m.checkpoint_log) >= 2


def test_a_checkpoint_at_convergence_does_not_resume_the_children(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever"))
    cc = CheckpointingControl(checkpoint_at_conv=True, naming_format="ck")
    run(tmp_path, exit_conditions=MaxFuncCalls(30), checkpoint_control=cc)
    for opt_id in (1, 2):
        assert backend.messages_to(opt_id) == [msg.Pause, msg.SaveState, msg.Stop]


# ------------------------------------------------------------------ interventions

def test_stop_and_chkpt_files_become_a_stop_and_a_checkpoint(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever"))
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "STOP_1").touch()
    (tmp_path / "CHKPT").touch()
    m = run(tmp_path, exit_conditions=MaxFuncCalls(400))
    assert stops_to(backend, 1) == ["STOP_1 intervention file"] and 1 in m.stopped_opts
    assert list_checkpoints(tmp_path / "checkpoints") and msg.Pause in backend.messages_to(2)
    assert not (tmp_path / "STOP_1").exists() and not (tmp_path / "CHKPT").exists()


def test_an_exit_file_ends_the_run_as_an_intervention(tmp_path, scripted):
    scripted(lambda opt_id: ChildScript(ending="forever"))
    (tmp_path / "EXIT").touch()
    m = run(tmp_path, exit_conditions=MaxFuncCalls(10 ** 6))
    assert m.state.end.kind is EndKind.INTERVENTION and m.exit_reason == "EXIT intervention file"


# ------------------------------------------------------------------ crashes

def test_children_crashing_with_no_evaluation_in_between_end_the_run_as_a_crash_loop(tmp_path, scripted):
    scripted(lambda opt_id: ChildScript(reports=0, ending="crash"))
    m = run(tmp_path, exit_conditions=MaxFuncCalls(100))
    assert m.state.end.kind is EndKind.CRASH_LOOP and not m.spawning_opts
    assert m.exit_reason.startswith(f"optimizers keep crashing: {CRASH_LOOP_LIMIT} in a row")
    assert CRASH_LOOP_LIMIT <= m.o_counter < CRASH_LOOP_LIMIT + 2 and m.opt_crashed


def test_crashes_between_evaluations_are_not_a_loop(tmp_path, scripted):
    scripted(lambda opt_id: ChildScript(reports=1, batch=1, ending="crash"))
    m = run(tmp_path, exit_conditions=MaxFuncCalls(3 * CRASH_LOOP_LIMIT))
    assert m.state.end.kind is EndKind.EXIT_CONDITIONS and m.o_counter > 2 * CRASH_LOOP_LIMIT


# ------------------------------------------------------------------ hung children

def test_a_silent_child_is_terminated_after_force_terminations_after(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever", hung=opt_id == 2))
    m = run(tmp_path, force_terminations_after=5, exit_conditions=MaxFuncCalls(2000))
    assert backend.killed[0] == 2 and m.opt_log.records[2].end_cond == "Forced GloMPO Termination"


def test_a_child_ignoring_the_final_stop_is_killed_after_end_timeout(tmp_path, scripted):
    backend = scripted(lambda opt_id: ChildScript(ending="forever"))
    answering_send = backend.send

    def send(opt_id, message):  # child 2 stops answering once the run is over
        if isinstance(message, msg.Stop) and opt_id == 2:
            backend.children[2].hung = True
        answering_send(opt_id, message)

    backend.send = send
    m = run(tmp_path, end_timeout=2, exit_conditions=MaxFuncCalls(40))
    assert backend.killed == [2] and m.opt_log.records[2].end_cond == "Forced GloMPO Termination"
    assert m.opt_log.records[1].end_cond == "Stopped: manager is shutting down"
