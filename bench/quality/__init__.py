"""Search quality of glompo_hpc against the optimizers users would pick instead.

``python -m bench.quality --help``. Modules: :mod:`.problems` (test functions, budgets,
tolerance), :mod:`.contenders` (the optimizers and the evaluation recorder), :mod:`.runner`
(jobs, worker processes, CSV and traces) and :mod:`.report` (statistics, Markdown, PNG).
Results and their analysis: docs/benchmarks.md.
"""
