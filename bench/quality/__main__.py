"""Command line of the quality suite: ``python -m bench.quality --help``."""

from __future__ import annotations

import os

from .runner import SINGLE_THREAD_ENV

for _key, _value in SINGLE_THREAD_ENV.items():  # before numpy's BLAS starts its threads
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from . import problems as problem_sets  # noqa: E402
from . import hardreport, report, runner  # noqa: E402
from .contenders import CONTENDERS  # noqa: E402

DEFAULT_SEEDS = {"full": 10, "quick": 3, "expensive": 5, "rotated": 10, "hard": 5, "hard-quick": 2}

#: Contenders of the other modes when none are named: all but the CycleSelector pair (issue 14's
#: test of the manager's decisions, run by name).
DEFAULT_CONTENDERS = ",".join(c for c in CONTENDERS if not c.startswith("cycle"))

#: Contenders of the hard modes when none are named (de and da are far behind on them, and slow).
HARD_CONTENDERS = "glompo,unmanaged,bipop,ngopt"
DEFAULT_DELAY = 0.002


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description="Search quality of glompo_hpc against the optimizers users would pick instead: every "
                    "contender gets the same evaluation budget, slots and seeds on each problem.",
        epilog="Modes: full = 9 problems in 10-D and 30-D (2000 evaluations per parameter, 10 seeds); "
               "quick = the 10-D ones with a tenth of the budget and 3 seeds; expensive = ackley-10, levy-10 "
               f"and lj-4 (full budget, 5 seeds) with a {DEFAULT_DELAY} s delay per evaluation, reporting "
               "wall-clock time to target on the slots; rotated = Rastrigin and Styblinski-Tang in 10-D under "
               "a fixed random rotation (10 seeds); hard = Schaffers F7, Lunacek bi-Rastrigin, a composition of "
               "five basins and rotated Rastrigin, in 10-D and 20-D, 3 random instances each, 5 seeds, run to 1e-8 "
               f"(contenders {HARD_CONTENDERS} unless named); hard-quick = the 10-D instance 1 of each at a tenth "
               "of the budget, 2 seeds.")
    parser.add_argument("--mode", choices=("quick", "full", "expensive", "rotated", "hard", "hard-quick"),
                        default="quick")
    parser.add_argument("--problems",
                        help="comma-separated name globs, e.g. 'rastrigin-*,lj-4' (default: all of the mode)")
    parser.add_argument("--contenders",
                        help=f"comma-separated subset of {','.join(CONTENDERS)} (default: {DEFAULT_CONTENDERS}; "
                             f"hard modes: {HARD_CONTENDERS})")
    parser.add_argument("--seeds", type=int, help="runs per problem and contender (default: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_SEEDS.items()) + ")")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget")
    parser.add_argument("--slots", type=int, default=4, help="parallel slots of every contender (default 4)")
    parser.add_argument("--delay", type=float, help=f"seconds per evaluation (expensive mode: {DEFAULT_DELAY}, else 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs in parallel, one process each (default 1; keep 1 for wall-clock figures)")
    parser.add_argument("--glompo-options", default="{}",
                        help="JSON overrides of glompo_hpc.defaults.recommended_configuration for the glompo and "
                             "unmanaged contenders, e.g. '{\"sigma_frac\": 0.3}'")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=JSON",
                        help="an extra glompo contender named LABEL with these overrides (repeatable)")
    parser.add_argument("--out", type=Path, help="output directory (default bench/quality/results/MODE)")
    parser.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the tables and plot of DIR "
                        "(after a change of the report code)")
    parser.add_argument("--quiet", action="store_true", help="no line per finished run")
    return parser.parse_args(argv)


def build_jobs(args: argparse.Namespace) -> list[runner.Job]:
    problems = problem_sets.select(problem_sets.suite(args.mode), args.problems)
    if args.budget_scale != 1.0:
        problems = [p.with_budget(max(10, round(p.budget * args.budget_scale))) for p in problems]
    chosen = args.contenders or (HARD_CONTENDERS if args.mode.startswith("hard") else DEFAULT_CONTENDERS)
    contenders = [c.strip() for c in chosen.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    base = json.dumps(json.loads(args.glompo_options))
    entries = [(c, c, base if c in ("glompo", "unmanaged") else "{}") for c in contenders]
    for spec in args.variant:
        label, sep, text = spec.partition("=")
        if not sep or not label:
            raise SystemExit(f"--variant needs LABEL=JSON, got {spec!r}")
        entries.append(("glompo", label, json.dumps({**json.loads(base), **json.loads(text)})))
    seeds = args.seeds or DEFAULT_SEEDS[args.mode]
    delay = args.delay if args.delay is not None else (DEFAULT_DELAY if args.mode == "expensive" else 0.0)
    return [runner.Job(p, c, args.first_seed + s, args.slots, delay, label, options)
            for p in problems for c, label, options in entries for s in range(seeds)]


def write_report(out: Path, rows: list[runner.Row], traces: dict, title: str) -> str:
    timing = any(r.delay > 0 for r in rows)
    text = "\n\n".join([
        f"### Headline: median best fx - f* (successes/runs), best in bold\n\n{report.headline(rows)}",
        f"### glompo against each contender\n\n{report.comparison(rows)}",
        f"### Per problem\n\n{report.markdown_tables(rows, timing=timing)}"])
    if any(hardreport.group_of(r.problem) != r.problem for r in rows):
        text = "\n\n".join([
            "### Mean log10 precision, solved to 1e-2, ERT to 1e-2 (evaluations)\n\n"
            + hardreport.summary_table(rows, traces),
            "### Problem-seed pairs against BIPOP (0.1 decade ties)\n\n" + hardreport.pairs_table(rows), text])
        hardreport.plot_ecdf(traces, {r.problem: r.dims for r in rows}, out / "ecdf.png", title)
    (out / "table.md").write_text(f"<!-- {title} -->\n\n{text}\n")
    report.plot(traces, out / "best_so_far.png", title)
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        rows = runner.read_csv(args.report / "results.csv")
        source = args.report / "command.txt"
        title = source.read_text().strip() if source.exists() else f"report of {args.report}"
        print(write_report(args.report, rows, runner.read_traces(args.report / "traces.json.gz"), title))
        return 0
    jobs = build_jobs(args)
    out = args.out or Path(__file__).parent / "results" / args.mode
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.quality " + shlex.join(argv if argv is not None else sys.argv[1:])
    (out / "command.txt").write_text(command + "\n")
    print(f"{len(jobs)} runs ({command}); outputs in {out}", flush=True)
    t0 = time.perf_counter()

    def progress(done: int, total: int, row: runner.Row) -> None:
        if not args.quiet:
            print(f"[{done}/{total} {time.perf_counter() - t0:6.0f}s] {row.problem:14s} {row.contender:12s} "
                  f"seed {row.seed:<3d} best {row.best_fx:<12.6g} evals {row.evals:<6d} "
                  f"{'hit' if row.success else '   '} {row.wall:.1f}s", flush=True)

    results = runner.run_all(jobs, args.workers, progress)
    rows = [r for r, _ in results]
    runner.write_csv(rows, out / "results.csv")
    runner.write_traces(results, out / "traces.json.gz")
    print(write_report(out, rows, runner.read_traces(out / "traces.json.gz"), command))
    print(f"\n{len(jobs)} runs in {time.perf_counter() - t0:.0f} s; wrote {out}/results.csv, table.md, "
          f"best_so_far.png, traces.json.gz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
