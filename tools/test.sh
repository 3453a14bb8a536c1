#!/usr/bin/env bash
# Run the whole test suite. Extra arguments go to pytest, e.g. -k manager.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/venv.sh"
cd "$root"
# Open MPI refuses root without these; harmless otherwise (CI runs as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec python -m pytest tests "$@"
