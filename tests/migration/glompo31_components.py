"""Components written the way GloMPO 3.1's test suite and docs write them, imports changed only.

``GradientTask``/``SteepestGradient`` are 3.1's ``test_mwe`` (tests/core/test_manager.py): an
optimizer reading the gradient from the task's ``detailed_call``, with 3.1's constructor
signature, ``_pause_signal``/``_signal_pipe`` checks, ``message_manager(0, reason)`` and a
``callstop`` that does not call super(). Importable by name so process and MPI children can
unpickle them.
"""

from __future__ import annotations

import numpy as np

from glompo_hpc import BaseOptimizer, MinimizeResult


class GradientTask:
    """f(x, y) = (x - 3)^2 + 10 (y + 1)^2; ``detailed_call`` returns the value and both partials."""

    def __call__(self, x):
        return self.detailed_call(x)[0]

    def detailed_call(self, pt):
        x, y = pt
        return (x - 3.0) ** 2 + 10.0 * (y + 1.0) ** 2, 2.0 * (x - 3.0), 20.0 * (y + 1.0)


class SteepestGradient(BaseOptimizer):

    def __init__(self, max_iters, gamma, precision, _opt_id=None, _signal_pipe=None, _results_queue=None,
                 _pause_flag=None, workers=1, backend='threads', is_log_detailed=False):
        super().__init__(_opt_id, _signal_pipe, _results_queue, _pause_flag, workers, backend, is_log_detailed)
        self.max_iters = max_iters
        self.gamma = np.array(gamma)
        self.precision = precision
        self.terminate = False
        self.reason = None
        self.current_x = None
        self.result = MinimizeResult()

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        next_x = np.array(x0)
        it = 0
        while not self.terminate:
            if self._pause_signal:
                self._pause_signal.wait()
            it += 1
            if self._signal_pipe:
                self.check_messages()
            self.current_x = next_x
            fx, dx, dy = function.detailed_call(self.current_x)
            grad = np.array([dx, dy])
            next_x = self.current_x - self.gamma * grad
            step = next_x - self.current_x
            if np.all(np.abs(step) <= self.precision):
                self.reason = "xtol condition"
                break
            if it >= self.max_iters:
                self.reason = "imax condition"
                break
        if self._signal_pipe:
            self.message_manager(0, self.reason)
        self.result.x, self.result.fx = list(self.current_x), fx
        return self.result

    def callstop(self, *args):
        self.terminate = True
        self.reason = "manager termination"


class ReturnsNothing(BaseOptimizer):
    """3.1's test optimizers often evaluated a few points and returned None."""

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        for shift in (0.0, 0.5, -0.5):
            function(np.asarray(x0) + shift)
            self.check_messages()

    def callstop(self, *args):
        pass


class SendsText(BaseOptimizer):
    """Uses 3.1's ``message_manager(9, text)`` for a log line, then ends normally."""

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        fx = function(x0)
        self.message_manager(9, "a note from the optimizer")
        result = MinimizeResult()
        result.x, result.fx = list(x0), fx
        return result

    def callstop(self, *args):
        pass


class SendsPauseCode(BaseOptimizer):
    """Sends 3.1's code 1, which only 3.1's base class sent."""

    def minimize(self, function, x0, bounds, callbacks=None, **kwargs):
        function(x0)
        self.message_manager(1)

    def callstop(self, *args):
        pass
