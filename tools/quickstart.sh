#!/usr/bin/env bash
# Run the quick example (examples/quickstart.yaml) on this machine and print the minimum found.
# Extra arguments go to `python -m glompo_hpc run`, e.g. --backend threads.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/venv.sh"
cd "$root"
exec python -m glompo_hpc run examples/quickstart.yaml --working-dir "${GLOMPO_HPC_RUN_DIR:-runs/quickstart}" --overwrite "$@"
