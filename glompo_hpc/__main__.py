"""``python -m glompo_hpc``: the command line (see :mod:`glompo_hpc.cli`)."""

from .cli import main

raise SystemExit(main())
