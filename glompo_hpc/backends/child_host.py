"""The child host: runs one optimizer in a thread, a process or an MPI rank.

It attaches the optimizer to its manager link, hands it an ObservedTask in place of the raw
task, runs ``minimize`` and always ends with exactly one final message: OptimizerFinished, or
ChildFailed carrying the traceback.
"""

from __future__ import annotations

import socket
import traceback

import numpy as np

from ..protocol import messages as msg
from ..protocol.observed_task import ObservedTask, RemoteBatchEvaluator
from ..errors import OptimizerStopped
from ..optimizers.base import ManagerLink
from ..core.backend import ChildSpec

__all__ = ("run_child",)


def run_child(spec: ChildSpec, link: ManagerLink, allow_processes: bool = True,
              remote_batch: RemoteBatchEvaluator | None = None) -> None:
    """Run ``spec.optimizer`` to its end and report. Never raises.

    ``remote_batch`` spreads the optimizer's batches over other processes (MPI helper ranks).
    """
    opt = spec.optimizer
    opt.attach(spec.opt_id, link)
    task = ObservedTask(spec.task, opt, detailed=spec.is_log_detailed, flush_seconds=spec.flush_seconds,
                        allow_processes=allow_processes, remote_batch=remote_batch)
    try:
        try:
            result = opt.run(task, np.asarray(spec.x0, dtype=float), spec.bounds)  # minimize, 3.1 habits included
            stopped = opt.stop_requested
            x, fx = (result.x, result.fx) if result.x is not None else (task.best_x, task.best_fx)
            final = msg.OptimizerFinished(spec.opt_id, bool(result.success) and not stopped, x, float(fx),
                                          dict(result.stats), stopped, opt.stop_reason or "")
        except OptimizerStopped:
            final = msg.OptimizerFinished(spec.opt_id, False, task.best_x, float(task.best_fx),
                                          {"n_evals": task.n_evals}, True, opt.stop_reason or "")
        task.close()
    except BaseException as e:  # the host must report any failure, even SystemExit from user code
        try:
            task.close()
        except BaseException:
            pass
        final = msg.ChildFailed(spec.opt_id, f"{type(e).__name__}: {e}", traceback.format_exc(),
                                socket.gethostname(), type(opt).__name__)
    link.send(final)
