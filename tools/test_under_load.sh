#!/usr/bin/env bash
# Run the test suite while CPU-bound processes run beside it, as on a busy 2-core CI machine: a test
# that passes here does not depend on timing. Stops the load at the end, however the run ends.
#
#   bash tools/test_under_load.sh                  # the whole suite (what tools/test.sh runs)
#   bash tools/test_under_load.sh tests/test_x.py  # these pytest arguments instead of 'tests'
#
# GLOMPO_LOAD_PROCS: CPU-bound processes beside the tests (default 2).
# GLOMPO_LOAD_RUNS:  how many times to run the tests (default 1); each run's time and result is printed
#                    and the script fails if any run failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/venv.sh"
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

procs="${GLOMPO_LOAD_PROCS:-2}"
runs="${GLOMPO_LOAD_RUNS:-1}"
load_pids=()
test_pid=""

stop_load() {
    local pid
    if [ -n "$test_pid" ]; then  # interrupted: the tests go too
        kill -TERM "$test_pid" 2>/dev/null || true
        wait "$test_pid" 2>/dev/null || true
    fi
    for pid in "${load_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${load_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    load_pids=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT
trap 'stop_load; exit 143' TERM

for _ in $(seq "$procs"); do
    # a pure busy loop: one full core each, no I/O, nothing to clean up
    python -c 'while True: pass' &
    load_pids+=("$!")
done
echo "test_under_load: $procs CPU-bound load processes (PIDs ${load_pids[*]})" >&2

if [ "$#" -eq 0 ]; then
    set -- tests
fi
failed=0
for run in $(seq "$runs"); do
    start=$(date +%s)
    status=0
    # in the background and waited for, so a TERM to this script runs its trap at once
    python -m pytest "$@" &
    test_pid=$!
    wait "$test_pid" || status=$?
    test_pid=""
    echo "test_under_load: run $run of $runs: exit status $status after $(( $(date +%s) - start )) s" >&2
    [ "$status" -eq 0 ] || failed=$((failed + 1))
done
echo "test_under_load: $failed of $runs run(s) failed" >&2
[ "$failed" -eq 0 ]
