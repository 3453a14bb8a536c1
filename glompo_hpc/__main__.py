"""``python -m glompo_hpc``: the command line (see :mod:`glompo_hpc.cli`)."""

import signal

from .cli import main

# Under mpirun a USR2 forwarded after the run ended (worker ranks end early, rank 0 after its
# outputs) must not kill the interpreter on its way out: main() restores this when it returns.
if hasattr(signal, "SIGUSR2"):
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
raise SystemExit(main())
