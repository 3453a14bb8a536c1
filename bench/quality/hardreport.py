"""The hard mode's view of the runs: mean log precision, solved counts, runtime to targets, ECDF.

* **log precision** of a run: ``log10(max(best fx - f*, 1e-8))`` (the hard mode runs to 1e-8);
  its mean over the problems and seeds of a group, or of the whole suite.
* **solved**: runs that reached ``f* + 1e-2`` (``problems.SOLVED``).
* **ERT to 1e-2**: evaluations of all runs (a failed one counts its whole budget) per solved run.
* **pairs against a reference** (BIPOP): problem-seed pairs where a contender's precision is more
  than 0.1 decade better (win), worse (loss) or neither (tie).
* **ECDF**: the fraction of (run, target) pairs, over 51 targets ``10^2 ... 10^-8`` (0.2 decade
  apart, BBOB's ladder), reached within a number of evaluations per parameter; one panel per
  function group and dimension. Runtimes come from the best-so-far traces, sampled at 60
  log-spaced evaluation counts, so they are rounded up to the next sample (at most 1/8 more).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .problems import HARD_TOL, SOLVED
from .runner import Row

__all__ = ("TARGETS", "group_of", "precision", "summary_table", "pairs_table", "plot_ecdf")

#: BBOB's target ladder: 10^2 down to 10^-8, 0.2 decade apart.
TARGETS = 10.0 ** np.linspace(2, -8, 51)

#: Precision difference (decades) under which two runs tie.
TIE_DECADES = 0.1

ORDER = ("glompo", "unmanaged", "bipop", "ipop", "ngopt", "de", "da")


def group_of(problem: str) -> str:
    """``lunacek-10-i2`` -> ``lunacek-10``."""
    return problem.rsplit("-i", 1)[0]


def precision(row: Row) -> float:
    return math.log10(max(row.best_fx - row.f_star, HARD_TOL))


def _contenders(rows: Sequence[Row]) -> list[str]:
    seen = list(dict.fromkeys(r.contender for r in rows))
    return [c for c in ORDER if c in seen] + [c for c in seen if c not in ORDER]


def runtimes(rows: Sequence[Row], traces: dict[str, dict[str, Any]]) -> dict[tuple[str, str, int], np.ndarray]:
    """(problem, contender, seed) -> evaluations to each of TARGETS (inf if not reached), from the traces
    (each contender's traces are in the order of its seeds)."""
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in rows:
        seeds[(r.problem, r.contender)].append(r.seed)
    out = {}
    for (p, c), ss in seeds.items():
        entry = traces[p]
        grid = np.asarray(entry["grid"], dtype=float)
        for seed, trace in zip(sorted(ss), entry[c]):
            out[(p, c, seed)] = _runtimes(trace, grid, entry["f_star"])
    return out


SOLVED_INDEX = int(np.argmin(abs(np.log10(TARGETS) - math.log10(SOLVED))))


def summary_table(rows: Sequence[Row], traces: dict[str, dict[str, Any]]) -> str:
    """Per group and overall: mean log precision, solved runs, ERT to 1e-2 (evaluations)."""
    hits = runtimes(rows, traces)
    contenders = _contenders(rows)
    groups = list(dict.fromkeys(group_of(r.problem) for r in rows)) + ["all"]
    by: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by[(group_of(r.problem), r.contender)].append(r)
        by[("all", r.contender)].append(r)
    lines = ["| group | " + " | ".join(contenders) + " |", "|---|" + "---:|" * len(contenders)]
    for g in groups:
        cells = []
        for c in contenders:
            rs = by.get((g, c), [])
            if not rs:
                cells.append("")
                continue
            solved = [r for r in rs if r.best_fx - r.f_star <= SOLVED]
            spent = sum(min(hits[(r.problem, r.contender, r.seed)][SOLVED_INDEX], r.budget) for r in rs)
            ert = f"{spent / len(solved):,.0f}" if solved else "-"
            text = f"{np.mean([precision(r) for r in rs]):.2f}, {len(solved)}/{len(rs)}, {ert}"
            cells.append(f"**{text}**" if g == "all" else text)
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pairs_table(rows: Sequence[Row], reference: str = "bipop") -> str:
    """Every contender against ``reference``, problem-seed pair by pair."""
    prec = {(r.problem, r.seed, r.contender): precision(r) for r in rows}
    lines = [f"| vs {reference} | wins | ties | losses | mean difference, decades |", "|---|---:|---:|---:|---:|"]
    for c in _contenders(rows):
        if c == reference:
            continue
        diffs = [prec[(p, s, reference)] - v for (p, s, k), v in prec.items() if k == c and (p, s, reference) in prec]
        if not diffs:
            continue
        d = np.array(diffs)
        lines.append(f"| {c} | {int((d > TIE_DECADES).sum())} | {int((abs(d) <= TIE_DECADES).sum())} | "
                     f"{int((d < -TIE_DECADES).sum())} | {d.mean():+.2f} |")
    return "\n".join(lines)


def _runtimes(trace: Sequence[Any], grid: np.ndarray, f_star: float) -> np.ndarray:
    """Evaluations at which each of TARGETS was first reached (inf if never), from one trace."""
    gap = np.array([np.inf if v is None else v - f_star for v in trace], dtype=float)
    out = np.full(len(TARGETS), np.inf)
    for i, t in enumerate(TARGETS):
        hit = np.nonzero(gap <= t)[0]
        if len(hit):
            out[i] = grid[hit[0]]
    return out


def plot_ecdf(traces: dict[str, dict[str, Any]], dims: dict[str, int], path: Path, title: str = "") -> None:
    """Runtime ECDF per function group (pooled over instances and seeds), evaluations / dimension on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    budget: dict[str, float] = {}
    for problem, entry in traces.items():
        g = group_of(problem)
        grid = np.asarray(entry["grid"], dtype=float)
        budget[g] = grid[-1] / dims[problem]
        for c, runs in entry.items():
            if c in ("grid", "f_star", "tol"):
                continue
            for t in runs:
                pooled[g][c].append(_runtimes(t, grid, entry["f_star"]) / dims[problem])
    groups = list(pooled)
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        for i, c in enumerate(_contenders_of(pooled[g])):
            times = np.concatenate(pooled[g][c])
            x = np.geomspace(1, budget[g], 200)
            y = [(times <= v).mean() for v in x]
            ax.step(x, y, where="post", label=c, lw=2 if c == "glompo" else 1.2, color=f"C{ORDER.index(c) if c in ORDER else 7 + i % 3}")
        ax.set(xscale="log", ylim=(0, 1), title=g, xlabel="evaluations / dimension", ylabel="fraction of (run, target)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97 if title else 1))
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _contenders_of(entry: dict[str, Any]) -> list[str]:
    return [c for c in ORDER if c in entry] + [c for c in entry if c not in ORDER]
