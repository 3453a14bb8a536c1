"""The protocol layer: what the manager, the transports, the components and the outputs share.

The message vocabulary between manager and children (``messages``), a local optimizer's result
(``result``), the columnar log of evaluations and its sink interface (``optlog``, ``log_sink``),
the child-side task wrapper (``observed_task``), the run's file names (``paths``) and atomic
writes (``atomic``). It imports nothing of glompo_hpc above it (only ``errors`` and the GloMPO
spelling table ``compat``); docs/architecture.md shows the layers.

These modules lived in ``glompo_hpc.core`` before; :data:`MOVED_MODULES` maps each old path to
its new one. Checkpoints written before the move name classes by the old paths (a pickle stores
``glompo_hpc.core.optlog.OptimizerLog``), so the old modules stay as aliases of the new ones and
the checkpoint loader also maps the names itself.
"""

MOVED_MODULES: dict[str, str] = {
    **{f"glompo_hpc.core.{name}": f"glompo_hpc.protocol.{name}"
       for name in ("messages", "result", "optlog", "log_sink", "observed_task", "paths", "atomic")},
    "glompo_hpc.backends.base": "glompo_hpc.core.backend",
}
