"""Conformance kit: proves that a BaseOptimizer subclass keeps the child contract.

Each check runs the optimizer the way every backend does, with ``run_child`` and a real message
channel (a thread and a ``QueueLink``; no manager), against a task that records every call and can
hold evaluations at a gate, so the kit can act while the optimizer is surely mid-run. It checks:

(a) ``check_reports``: evaluations reach the manager as IterationReports whose rows, x of shape
    (k, n) and fx of shape (k,), are exactly the points the task evaluated, with their values;
(b) ``check_stop``: a Stop ends the run within ``timeout`` with OptimizerFinished(stopped=True);
(c) ``check_pause``: a Pause is answered with ChildPaused, no evaluation happens until Resume,
    and the run goes on afterwards;
(d) ``check_checkpoint``: SaveState(path) is answered with StateSaved without error, and
    ``type(opt).checkpoint_load(path)`` gives an optimizer (``is_restart`` True) that runs again;
(e) ``check_inject``: an InjectIncumbent is accepted and the run goes on;
(f) every run ends with exactly one final message, an OptimizerFinished (a ChildFailed fails the
    check and shows the child's traceback).

The first failure raises ConformanceError (an AssertionError, so test runners show it as a
failure) saying what was expected. Evaluations run in threads even for ``backend='processes'``:
the kit's recording task must see them. The factory's optimizer needs a budget well above
``gate_after`` evaluations so it is still running when the kit acts.

Example, in your own test suite::

    from glompo_hpc.optimizers.conformance import check_optimizer
    from mypackage import MyOptimizer

    def test_my_optimizer_keeps_the_contract():
        check_optimizer(lambda: MyOptimizer(workers=2), timeout=10)
"""

from .checks import check_checkpoint, check_inject, check_optimizer, check_pause, check_reports, check_stop
from .harness import ChildRun, ConformanceError, RecordingTask

__all__ = ("ConformanceError", "ChildRun", "RecordingTask", "check_optimizer", "check_reports", "check_stop",
           "check_pause", "check_checkpoint", "check_inject")
