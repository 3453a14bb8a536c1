#!/usr/bin/env bash
# Run the whole test suite. Extra arguments go to pytest: options (-k manager, -x) filter the whole
# suite; test paths (tests/test_cli.py, tests/mpi) run only those.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/venv.sh"
cd "$root"
# Open MPI refuses root without these; harmless otherwise (CI runs as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
targets=(tests)
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;;
    esac
done
exec python -m pytest "${targets[@]}" "$@"
