#!/usr/bin/env bash
# A real one-node SLURM (Debian's slurm-wlm 22.05 + munge) for the tests, in a scratch directory.
#
#   tests/slurm/local_cluster.sh start    # install if missing, start munged/slurmctld/slurmd, wait until usable
#   tests/slurm/local_cluster.sh status   # exit 0 if the cluster answers, 1 otherwise
#   tests/slurm/local_cluster.sh stop     # stop the daemons this script started
#   eval "$(tests/slurm/local_cluster.sh start)"   # also sets SLURM_CONF in the calling shell
#
# `start` and `status` print `export SLURM_CONF=...` on stdout (all other output goes to stderr),
# so the clients (sbatch, squeue, scontrol, srun) find the configuration. Every command is
# idempotent: `start` on a running cluster only prints the export line; `stop` on a stopped one
# does nothing. The directory is $GLOMPO_SLURM_DIR (default /tmp/glompo_slurm): slurm.conf, state,
# spool, pid and log files live there, nothing else on the machine is configured.
#
# Installing needs root and the Debian package archive (`apt-get install slurm-wlm munge libpmix2
# libpmix-dev`); the daemons run as root (SlurmUser=root).
set -euo pipefail

dir="${GLOMPO_SLURM_DIR:-/tmp/glompo_slurm}"
conf="$dir/slurm.conf"
munge_socket=/run/munge/munge.socket.2
packages="slurm-wlm munge libpmix2 libpmix-dev"

say() { echo "local_cluster: $*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
    local missing=0
    for tool in munged slurmctld slurmd sbatch; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing=1
    done
    # `srun --mpi=pmix`: SLURM's plugin dlopens pmix2/lib/libpmix.so, the unversioned name that
    # only libpmix-dev provides (libpmix2 alone fails with "can not load PMIx library")
    ls /usr/lib/*/pmix2/lib/libpmix.so >/dev/null 2>&1 || missing=1
    [ "$missing" = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "$packages: some are missing and installing them needs root"
    command -v apt-get >/dev/null || die "$packages: some are missing and there is no apt-get to install them"
    say "installing $packages (apt-get)"
    local log; log="$(mktemp)"
    # shellcheck disable=SC2086  # the package list is meant to split
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        die "apt-get install $packages failed (log above)"
    fi
    rm -f "$log"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

cluster_answers() {
    # the node must be usable, not just the controller up: idle/mixed/allocated
    [ -f "$conf" ] || return 1
    # sinfo retries a dead controller for ~10 s: ask only when ours runs
    pid_alive "$dir/slurmctld.pid" && pid_alive "$dir/slurmd.pid" || return 1
    local state
    state="$(SLURM_CONF="$conf" timeout 10 sinfo -h -o %T 2>/dev/null | head -n1)" || return 1
    case "$state" in idle*|mix*|alloc*|completing*) return 0 ;; *) return 1 ;; esac
}

write_conf() {
    local host cpus mem_mb
    host="$(hostname -s)"  # the names must match the machine's; the addresses need no DNS
    # at least 4 CPUs, whatever the machine has (config_overrides below makes slurmd believe the
    # file): MPI tests start 3-4 ranks, and small CI machines have 2 cores
    cpus="$(nproc)"
    [ "$cpus" -ge 4 ] || cpus=4
    # a little under the real memory: a node reporting less than its RealMemory is drained
    mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p "$dir/state" "$dir/spool"
    cat >"$conf.tmp" <<EOF
# written by tests/slurm/local_cluster.sh: a one-node cluster for the glompo_hpc tests
ClusterName=glompo
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
SlurmdParameters=config_overrides
# tests wait on the scheduler: look at the queue often, kill quickly after the limit
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=10
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
    mv "$conf.tmp" "$conf"
}

start_munge() {
    if [ -S "$munge_socket" ] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already serving (ours from an earlier start, or the system's)
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    # munged refuses keys and directories owned by another user: run it as `munge` when that user exists
    local user=root
    id munge >/dev/null 2>&1 && user=munge
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chmod 400 /etc/munge/munge.key
    fi
    chown "$user" /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key
    if [ "$user" = root ]; then
        /usr/sbin/munged --force
    else
        runuser -u munge -- /usr/sbin/munged
    fi
    # marks munged as ours, so `stop` stops it and leaves a system munged alone
    cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || true
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

start() {
    local t0; t0=$(date +%s.%N)
    if cluster_answers; then
        echo "export SLURM_CONF=$conf"
        return 0
    fi
    install_packages
    mkdir -p "$dir"
    write_conf
    start_munge
    if ! pid_alive "$dir/slurmctld.pid"; then
        # a fresh state: old jobs are of no use here, and a saved node state delays the start ~10 s
        rm -rf "$dir/state" && mkdir -p "$dir/state"
        /usr/sbin/slurmctld -f "$conf"
    fi
    pid_alive "$dir/slurmd.pid" || /usr/sbin/slurmd -f "$conf"
    for _ in $(seq 300); do
        if cluster_answers; then
            say "SLURM is up in $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t0}") s (conf $conf)"
            echo "export SLURM_CONF=$conf"
            return 0
        fi
        sleep 0.1
    done
    say "SLURM did not become usable within 30 s; last lines of the logs:"
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 2>/dev/null || true
    exit 1
}

stop_pidfile() {
    local name="$1" file="$2"
    pid_alive "$file" || { rm -f "$file"; return 0; }
    local pid; pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) ignored SIGTERM for 10 s: killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    if [ -f "$conf" ]; then
        # running jobs would otherwise survive as orphans of slurmstepd
        SLURM_CONF="$conf" timeout 10 scancel --user=root >/dev/null 2>&1 || true
    fi
    stop_pidfile slurmd "$dir/slurmd.pid"
    stop_pidfile slurmctld "$dir/slurmctld.pid"
    stop_pidfile munged "$dir/munged.pid"
    say "stopped"
}

status() {
    if cluster_answers; then
        say "running (conf $conf)"
        echo "export SLURM_CONF=$conf"
        return 0
    fi
    say "not running"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
