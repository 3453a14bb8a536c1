"""Every component of a run chosen explicitly, with the reason for each choice.

    python examples/python_customised.py            # 6-D Rastrigin, up to 60000 evaluations
    python examples/python_customised.py --quick    # 3-D, what the test runs

Start from python_minimal.py (the recommended defaults) and change only what your problem needs;
this file shows where each knob is. docs/api.md and docs/components.md list every option.
"""

import argparse
import logging
from pathlib import Path

from glompo_hpc import (BestUnmoving, CheckpointingControl, ChainSelector, CMAOptimizer, EvaluationsUnmoving,
                        ExploitExploreGenerator, GloMPOManager, LastPointsInvalid, MaxFuncCalls,
                        MaxSeconds, MinFuncCalls, Rastrigin, ScipyOptimizer, TargetCost)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 3-D problem and a small budget (the test's setting)")
    parser.add_argument("--working-dir", default="runs/python_customised", help="where the outputs go")
    args = parser.parse_args()

    # Rastrigin: about 10**n local minima in the box; the global one is f(0, ..., 0) = 0.
    task = Rastrigin(dims=3 if args.quick else 6)
    n = task.dims
    width = task.bounds[0][1] - task.bounds[0][0]
    budget = 2000 * n if args.quick else 10000 * n
    working_dir = Path(args.working_dir)
    working_dir.mkdir(parents=True, exist_ok=True)

    # The manager reports through the 'glompo_hpc' loggers; on a cluster a file outlives the job's
    # terminal. INFO shows every start and stop, and the status lines (status_interval below).
    logging.basicConfig(filename=working_dir / "run.log", filemode="w", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    # Which child to start, by how much of the budget is used: a chain of three phases.
    selector = ChainSelector(
        # Scouts: small CMA-ES populations converge fast, so many basins get sampled. workers=2:
        # each evaluates two points at a time and occupies two slots.
        (CMAOptimizer, {"sigma0": 0.2 * width, "popsize": 4 * n, "workers": 2}),
        # Then large populations with a wider first step: on a rugged landscape they see past the
        # small ripples to the global trend (the remedy IPOP-CMA-ES applies at each restart).
        (CMAOptimizer, {"sigma0": 0.3 * width, "popsize": 16 * n, "workers": 2}),
        # Last, Nelder-Mead from the best points so far (see the generator): cheap, precise polish.
        (ScipyOptimizer, {"method": "Nelder-Mead", "options": {"xatol": 1e-8, "fatol": 1e-12}}),
        # Phase 1 until 20 % of the budget, phase 2 until 80 %, phase 3 until 95 %; then no new
        # child (as many thresholds as options): one started later could not get anywhere.
        fcall_thresholds=[int(0.2 * budget), int(0.8 * budget), int(0.95 * budget)],
    )

    # Stop a child (never the one holding the best point, see apply_stoppers_to_best) when
    #   its last 10 n values lie within 0.1 % of each other: it has settled in a basin no better
    #   than the best one, and polishing it further is wasted, or
    #   its best has improved by less than 1 % over its last 300 n evaluations: it is stuck
    #   (a shorter window would also stop large populations during their slow start),
    # but only after 100 n evaluations, so no child is judged before it has had a fair chance;
    # and at once if its last 20 values were all NaN/inf (a model that keeps failing there).
    stoppers = ((EvaluationsUnmoving(calls=10 * n, tol=1e-3) | BestUnmoving(calls=300 * n, tol=0.01))
                & MinFuncCalls(100 * n)) | LastPointsInvalid(n_iters=20)

    # End on the first that holds: the known minimum reached (drop it when you do not know one),
    # the evaluation budget spent, or an hour gone (on a cluster: less than the job's time limit).
    exit_conditions = TargetCost(task.min_fx, atol=1e-6) | MaxFuncCalls(budget) | MaxSeconds(session_max=3600)

    # Start points: random early on, drawn ever closer to the best children's best points as the
    # budget is used; focus=2 keeps exploring for longer than the default 1.
    generator = ExploitExploreGenerator(task.bounds, budget, focus=2, seed=7)

    # A checkpoint every quarter of the budget and one at the end; only the newest two are kept.
    checkpoints = CheckpointingControl(checkpoint_eval_interval=budget // 4, checkpoint_at_conv=True, keep_past=1)

    manager = GloMPOManager.new_manager(
        task, task.bounds, selector,
        working_dir=working_dir,
        overwrite_existing=True,  # an example is rerun often; a real run would rather refuse to clobber
        max_jobs=4,  # slots: two CMA-ES children at a time (two slots each), or more Nelder-Meads
        backend="processes",  # children in their own processes: a crash or a hang cannot take the manager down
        exit_conditions=exit_conditions,
        x0_generator=generator,
        stoppers=stoppers,
        stopcheck_interval=20 * n,  # stopper checks are cheap, but need new evaluations to say anything
        apply_stoppers_to_best=False,  # never stop the child that holds the best point
        share_best_solutions=False,  # sharing the best point pulls every child into one basin
        force_terminations_after=300,  # a child silent for 5 minutes is hung: terminate and replace it
        checkpoint_control=checkpoints,
        summary_files=3,  # YAML summary, plots, and glompo_log.h5 with every evaluation
        split_printstreams=True,  # each child's prints in glompo_optimizer_printstreams/, not mixed
        status_interval=30,  # a status line (evaluations/s, best, CPU, memory) every 30 s in run.log
        seed=11,  # the children's seeds derive from it: a rerun repeats this one, up to timing
    )
    result = manager.start_manager()

    print(f"Best fx:      {result.fx:.6g}   (the global minimum is {task.min_fx})")
    print(f"Best x:       {[round(float(v), 6) for v in result.x]}")
    print(f"Found by:     optimizer {result.origin['opt_id']} ({result.origin['type']})")
    print(f"Evaluations:  {result.stats['f_counter']} of {budget}")
    print(f"Optimizers:   {result.stats['o_counter']} started, {result.stats['stopped']} stopped by the manager, "
          f"{result.stats['conv_counter']} converged")
    print(f"Exit reason:  {result.stats['exit_reason']}")
    print(f"Checkpoints:  {', '.join(str(working_dir / 'checkpoints' / name) for name in manager.checkpoint_files)}")
    print(f"Outputs:      {', '.join(sorted(p.name for p in working_dir.iterdir()))}")


if __name__ == "__main__":  # importing this file (e.g. for its classes) must not start a run
    main()
