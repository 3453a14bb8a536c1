"""``python -m glompo_hpc``: the command line (see :mod:`glompo_hpc.cli`)."""

import signal

# A scheduler's USR2 (or a TERM) can come while the command line is still importing: remember it
# instead of dying, and let main() act on it as soon as its own handlers are in place. After
# main() returns this no-op is back, so a USR2 that mpirun forwards after the run ended does not
# kill the interpreter on its way out (a Python handler, unlike SIG_IGN, is not inherited by
# programs started later).
_early_signals = []


def _remember(signum, frame):
    _early_signals.append(signum)


for _name in ("SIGUSR2", "SIGTERM"):
    if hasattr(signal, _name):
        signal.signal(getattr(signal, _name), _remember)

from .cli import main  # noqa: E402  (after the handlers: importing takes a while)

raise SystemExit(main(early_signals=_early_signals))
