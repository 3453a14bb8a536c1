"""Log more than the cost: a task whose ``detailed_call`` returns extra values, read back from the log.

    python examples/detailed_call_task.py            # 6000 evaluations
    python examples/detailed_call_task.py --quick    # 2000, what the test runs

With ``is_log_detailed=True`` the manager evaluates through ``task.detailed_call(x)``, which
returns ``(fx, *extras)``; ``task.headers()`` names the extras and gives their types, and every
evaluation's extras land as typed columns in ``glompo_log.h5`` (``summary_files=3``), next to its
parameters and cost, for plots and diagnosis after the run.
"""

import argparse
from pathlib import Path

import numpy as np

from glompo_hpc import BaseFunction, GloMPOManager, MaxFuncCalls
from glompo_hpc.outputs.read_log import read_log


class DampedOscillationFit(BaseFunction):
    """Fit ``y = a exp(-t / tau) cos(omega t)`` to noisy data: the cost is the sum of squared
    residuals. Wrong frequencies that match a few oscillations make it multimodal."""

    TRUE = (2.0, 3.0, 4.0)  # a, tau, omega that made the data
    NOISE = 0.05

    def __init__(self):
        self.t = np.linspace(0, 10, 200)
        rng = np.random.default_rng(0)
        self.y = self.model(self.TRUE) + self.NOISE * rng.standard_normal(self.t.size)
        self.bounds = [(0.1, 5.0), (0.5, 10.0), (0.5, 10.0)]

    def model(self, p):
        a, tau, omega = p
        return a * np.exp(-self.t / tau) * np.cos(omega * self.t)

    def __call__(self, x):
        return self.detailed_call(x)[0]

    def detailed_call(self, x):
        """The cost first, then the extras in the order of ``headers()``."""
        residuals = self.model(x) - self.y
        rms = float(np.sqrt(np.mean(residuals ** 2)))
        worst = int(np.argmax(np.abs(residuals)))  # which data point fits worst
        verdict = "within noise" if rms < 1.5 * self.NOISE else "misfit"
        return float(np.sum(residuals ** 2)), rms, worst, verdict

    def headers(self):
        """Names and numpy types of the extras; 'str' stores text."""
        return {"rms_residual": "float64", "worst_point": "int64", "verdict": "str"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller budget (the test's setting)")
    parser.add_argument("--working-dir", default="runs/detailed_call_task", help="where the outputs go")
    args = parser.parse_args()

    task = DampedOscillationFit()
    manager = GloMPOManager.new_manager(
        task, task.bounds,
        working_dir=args.working_dir, overwrite_existing=True, max_jobs=2, backend="threads",
        exit_conditions=MaxFuncCalls(2000 if args.quick else 6000),
        is_log_detailed=True,  # evaluate through detailed_call and keep the extras
        summary_files=3,  # 3 writes glompo_log.h5, where the extras go
        seed=2,
    )
    result = manager.start_manager()
    print(f"Best fit:    a={result.x[0]:.4f} tau={result.x[1]:.4f} omega={result.x[2]:.4f} "
          f"(the data were made with a={task.TRUE[0]} tau={task.TRUE[1]} omega={task.TRUE[2]})")
    print(f"Best fx:     {result.fx:.6g} after {result.stats['f_counter']} evaluations")

    # Every evaluation's extras, per optimizer, as typed columns (read_log takes the file lock
    # that keeps it from reading a half-written flush, so it also works while a run writes).
    log = read_log(Path(args.working_dir) / "glompo_log.h5", columns=("call_id", "fx", "extras"))
    print(f"Log extras:  {log.attrs['extras_headers']} in each of {log.n_rows} rows")
    call_id = np.concatenate([opt.data["call_id"] for opt in log.optimizers])
    fx = np.concatenate([opt.data["fx"] for opt in log.optimizers])
    extras = {name: np.concatenate([opt.data["extras"][name] for opt in log.optimizers])
              for name in task.headers()}
    best = int(np.argmin(fx))
    print(f"Best row:    call {call_id[best]}: fx={fx[best]:.6g} rms_residual={extras['rms_residual'][best]:.4f} "
          f"worst_point={extras['worst_point'][best]} verdict={extras['verdict'][best]!r}")
    fits = int(np.sum(extras["verdict"] == "within noise"))
    print(f"Verdicts:    {fits} of {len(fx)} logged evaluations fit within the noise")


if __name__ == "__main__":
    main()
