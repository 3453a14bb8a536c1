"""Wall time to a target on 1, 4 and 16 slots: what the slots buy on an expensive task.

``python -m bench.quality.walltime --help``. The task sleeps ``--delay`` seconds (default 0.01)
in every evaluation, so 16 slots are meaningful even on a machine with few cores: the
contenders' threads wait, not compute. glompo_hpc (recommended configuration, threads backend)
and NGOpt (``num_workers`` = slots, each batch evaluated over ``slots`` threads) run on every slot
count; BIPOP-CMA-ES runs as users run it, one process evaluating one point at a time, once.
Reported: median seconds to the target over the seeds (successful runs), successes, and the
speed-up against the same contender on one slot. Prints figures, asserts nothing.
"""

from __future__ import annotations

import os

from .runner import SINGLE_THREAD_ENV

for _key, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import problems as problem_sets  # noqa: E402
from . import runner  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.quality.walltime", description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="ackley-10", help="a full-mode problem (default ackley-10)")
    parser.add_argument("--target", type=float, default=1e-3, help="success at f* + TARGET (default 1e-3)")
    parser.add_argument("--budget", type=int, default=4000, help="evaluations per run (default 4000)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds per evaluation (default 0.01)")
    parser.add_argument("--slots", default="1,4,16", help="slot counts (default 1,4,16)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--contenders", default="glompo,ngopt,bipop")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "walltime")
    return parser.parse_args(argv)


def jobs(args: argparse.Namespace) -> list[runner.Job]:
    problem = problem_sets.select(problem_sets.suite("full"), args.problem)[0].with_budget(args.budget)
    problem = dataclasses.replace(problem, tol_abs=args.target)
    slot_counts = [int(s) for s in args.slots.split(",")]
    out = []
    for contender in args.contenders.split(","):
        for slots in ([1] if contender == "bipop" else slot_counts):
            for seed in range(1, args.seeds + 1):
                label = f"{contender}@{slots}"
                out.append(runner.Job(problem, contender, seed, slots, args.delay, label))
    return out


def table(rows: list[runner.Row]) -> str:
    lines = ["| contender | slots | success | evals to target (median) | time to target, s (median) | "
             "speed-up vs 1 slot |", "|---|---:|---:|---:|---:|---:|"]
    one_slot: dict[str, float] = {}
    labels = list(dict.fromkeys(r.contender for r in rows))
    for label in labels:
        rs = [r for r in rows if r.contender == label]
        name, slots = label.split("@")
        hits = [r for r in rs if r.success]
        t = float(np.median([r.time_to_target for r in hits])) if hits else math.nan
        e = float(np.median([r.evals_to_target for r in hits])) if hits else math.nan
        if slots == "1":
            one_slot[name] = t
        speed = one_slot.get(name, math.nan) / t if hits else math.nan
        lines.append(f"| {name} | {slots} | {len(hits)}/{len(rs)} | {e:,.0f} | {t:.2f} | "
                     f"{'-' if math.isnan(speed) else f'{speed:.1f}x'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    todo = jobs(args)
    command = "python -m bench.quality.walltime " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"{len(todo)} runs ({command})", flush=True)
    results = runner.run_all(todo, 1, lambda i, n, r: print(
        f"[{i}/{n}] {r.contender:10s} seed {r.seed} evals {r.evals} {'hit' if r.success else '   '} "
        f"t {r.time_to_target:.2f}s wall {r.wall:.1f}s", flush=True))
    rows = [r for r, _ in results]
    args.out.mkdir(parents=True, exist_ok=True)
    runner.write_csv(rows, args.out / "results.csv")
    text = table(rows)
    (args.out / "table.md").write_text(f"<!-- {command} -->\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
