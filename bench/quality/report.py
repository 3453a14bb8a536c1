"""Summaries of the runs: per (problem, contender) statistics, Markdown tables and the PNG.

Statistics over the seeds of one problem and contender:

* ``median``, ``q1``, ``q3``: quartiles of the best value found, as the gap ``best fx - f*``;
* ``success``: runs that reached ``f* + tol``;
* ``evals``: median evaluations to reach it, over the successful runs;
* ``ert``: expected running time, the evaluations of all runs (a failed run counts its whole
  budget, a successful one its evaluations to target) divided by the successes (inf if none);
* ``time``: median wall-clock seconds to reach the target, over the successful runs;
* ``slot use`` (with a delay): the fraction of the slots kept evaluating, ``evaluations x delay /
  (elapsed x slots)``; ``da`` is sequential and counted on one slot. What is missing to 100 % is
  the optimizer's and manager's own time and slots left idle.

The comparison table scores ``glompo`` against each other contender, problem by problem: a win
when its success rate is at least as high and its median gap no larger, one of them strictly
(medians within the success tolerance or 0.1 % of each other are equal); a tie when both are equal; a split when each is
better on one; a loss otherwise. When both are equal on both and solved the problem, the one whose
ERT is more than 10 % lower wins (otherwise a tie).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .contenders import SEQUENTIAL
from .runner import Row

__all__ = ("Stats", "summarize", "markdown_tables", "headline", "comparison", "plot")


@dataclass
class Stats:
    problem: str
    contender: str
    runs: int
    median: float
    q1: float
    q3: float
    successes: int
    evals: float
    ert: float
    time: float
    wall: float
    budget: int
    slot_use: float = math.nan


def summarize(rows: Sequence[Row]) -> dict[tuple[str, str], Stats]:
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.problem, r.contender)].append(r)
    out = {}
    for key, rs in groups.items():
        gaps = np.array([r.best_fx - r.f_star for r in rs], dtype=float)
        hits = [r for r in rs if r.success]
        spent = sum(r.evals_to_target if r.success else r.budget for r in rs)
        q1, med, q3 = np.percentile(gaps, [25, 50, 75]) if np.isfinite(gaps).all() else (math.inf,) * 3
        out[key] = Stats(key[0], key[1], len(rs), float(med), float(q1), float(q3), len(hits),
                         float(np.median([r.evals_to_target for r in hits])) if hits else math.nan,
                         spent / len(hits) if hits else math.inf,
                         float(np.median([r.time_to_target for r in hits])) if hits else math.nan,
                         float(np.median([r.wall for r in rs])), rs[0].budget, _slot_use(rs))
    return out


def _slot_use(rs: Sequence[Row]) -> float:
    """Median fraction of the slots kept busy evaluating: evaluations x delay / (elapsed x slots used)."""
    if not rs or rs[0].delay <= 0:
        return math.nan
    uses = [r.evals * r.delay / (r.t_last * (1 if r.contender in SEQUENTIAL else r.slots)) for r in rs if r.t_last > 0]
    return float(np.median(uses)) if uses else math.nan


def _order(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]


CONTENDER_ORDER = ("glompo", "unmanaged", "ipop", "bipop", "de", "da")


def _g(x: float) -> str:
    if not math.isfinite(x):
        return "inf" if x > 0 else "-"
    if x == 0:
        return "0"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _n(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:,.0f}"


def _problems(stats: dict[tuple[str, str], Stats]) -> list[str]:
    return list(dict.fromkeys(p for p, _ in stats))


def _contenders(stats: dict[tuple[str, str], Stats]) -> list[str]:
    return _order([c for _, c in stats], CONTENDER_ORDER)


def markdown_tables(rows: Sequence[Row], timing: bool = False) -> str:
    """One table per problem: every contender's quartiles, successes, evaluations (and times)."""
    stats = summarize(rows)
    f_star = {r.problem: (r.f_star, r.tol, r.budget) for r in rows}
    lines = []
    for p in _problems(stats):
        fs, tol, budget = f_star[p]
        lines += [f"#### {p}: f* = {fs:.10g}, tol = {tol:.3g}, budget = {budget:,}", ""]
        head = "| contender | median gap | q1 | q3 | success | evals to target (median) | ERT |"
        sep = "|---|---:|---:|---:|---:|---:|---:|"
        if timing:
            head += " time to target, s (median) | slot use | wall per run, s |"
            sep += "---:|---:|---:|"
        lines += [head, sep]
        for c in _contenders(stats):
            s = stats.get((p, c))
            if s is None:
                continue
            line = (f"| {c} | {_g(s.median)} | {_g(s.q1)} | {_g(s.q3)} | {s.successes}/{s.runs} | "
                    f"{_n(s.evals)} | {_n(s.ert)} |")
            if timing:
                line += f" {_g(s.time)} | {s.slot_use:.0%} | {_g(s.wall)} |"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


#: Relative ERT difference under which two equally successful contenders tie.
ERT_MARGIN = 0.1

#: Relative difference under which two median gaps are equal (the same local minimum).
MEDIAN_REL = 1e-3


def _versus(a: Stats, b: Stats, tol: float) -> str:
    """'win' if a beats b (success rate and median gap, neither worse, one better), 'loss' if b beats
    a, 'split' if each is better on one. Medians within ``tol`` or ``MEDIAN_REL`` of each other are
    equal; when rate and median are both equal and both solved the problem, an ERT more than
    ``ERT_MARGIN`` lower wins."""
    ra, rb = a.successes / a.runs, b.successes / b.runs
    rate = (ra > rb) - (ra < rb)
    same = a.median == b.median or abs(a.median - b.median) <= max(tol, MEDIAN_REL * max(abs(a.median), abs(b.median)))
    gap = 0 if same else (1 if a.median < b.median else -1)
    if rate == gap == 0:
        # Equal quality: a solved problem is won by the one needing clearly fewer evaluations.
        if a.successes and b.successes and not math.isclose(a.ert, b.ert, rel_tol=ERT_MARGIN):
            return "win" if a.ert < b.ert else "loss"
        return "tie"
    if rate >= 0 and gap >= 0:
        return "win"
    if rate <= 0 and gap <= 0:
        return "loss"
    return "split"


def headline(rows: Sequence[Row]) -> str:
    """Problems x contenders: median gap with success count; the best median per problem in bold."""
    stats = summarize(rows)
    tol = {r.problem: r.tol for r in rows}
    contenders = _contenders(stats)
    lines = ["| problem | " + " | ".join(contenders) + " |", "|---|" + "---:|" * len(contenders)]
    for p in _problems(stats):
        cells = []
        present = [stats[(p, c)] for c in contenders if (p, c) in stats]
        best_rate = max(s.successes / s.runs for s in present)
        best_med = min(s.median for s in present if s.successes / s.runs == best_rate)
        for c in contenders:
            s = stats.get((p, c))
            if s is None:
                cells.append("")
                continue
            text = f"{_g(s.median)} ({s.successes}/{s.runs})"
            top = s.successes / s.runs == best_rate and s.median <= best_med + tol[p]
            cells.append(f"**{text}**" if top else text)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison(rows: Sequence[Row], ours: str = "glompo") -> str:
    """How ``ours`` fares against each other contender: wins / ties / losses over the problems."""
    stats = summarize(rows)
    tol = {r.problem: r.tol for r in rows}
    multimodal = {r.problem for r in rows if r.multimodal}
    lines = [f"| {ours} vs | wins | ties | splits | losses | lost on (split on) |", "|---|---:|---:|---:|---:|---|"]
    for c in _contenders(stats):
        if c == ours:
            continue
        outcome: dict[str, list[str]] = defaultdict(list)
        for p in _problems(stats):
            if (p, ours) in stats and (p, c) in stats:
                name = p if p in multimodal else f"{p} (unimodal)"
                outcome[_versus(stats[(p, ours)], stats[(p, c)], tol[p])].append(name)
        lost = ", ".join(outcome["loss"]) or "-"
        if outcome["split"]:
            lost += f" ({', '.join(outcome['split'])})"
        lines.append(f"| {c} | {len(outcome['win'])} | {len(outcome['tie'])} | {len(outcome['split'])} | "
                     f"{len(outcome['loss'])} | {lost} |")
    return "\n".join(lines)


def plot(traces: dict[str, dict[str, Any]], path: Path, title: str = "") -> None:
    """Best-so-far gap (median and quartile band over the seeds) against evaluations, one panel per problem.

    Gaps are drawn down to a tenth of the success tolerance (the dotted line).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(traces)
    ncols = min(3, len(problems))
    nrows = math.ceil(len(problems) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False)
    colours = dict(zip(CONTENDER_ORDER, ("C3", "C0", "C2", "C1", "C4", "C5")))
    for ax, p in zip(axes.flat, problems):
        entry = traces[p]
        g = np.asarray(entry["grid"], dtype=float)
        floor = entry["tol"] / 10
        names = _order([k for k in entry if k not in ("grid", "f_star", "tol")], CONTENDER_ORDER)
        for i, c in enumerate(names):
            runs = np.array([[np.nan if v is None else v for v in t] for t in entry[c]], dtype=float)
            gap = np.maximum(runs - entry["f_star"], floor)
            q1, med, q3 = np.nanpercentile(gap, [25, 50, 75], axis=0)
            colour = colours.get(c, f"C{6 + i % 4}")
            top = 3 if c == "glompo" else 2  # glompo drawn over the others
            ax.plot(g, med, label=c, color=colour, lw=2 if c == "glompo" else 1.2, zorder=top)
            ax.fill_between(g, q1, q3, color=colour, alpha=0.15, lw=0, zorder=top - 2)
        ax.axhline(entry["tol"], color="k", ls=":", lw=0.8)
        ax.set(xscale="log", yscale="log", title=p, xlabel="evaluations", ylabel="best fx - f*")
    for ax in axes.flat[len(problems):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985 if title else 1))
    fig.savefig(path, dpi=72)
    plt.close(fig)
