#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, with accounting (slurmdbd + MariaDB), as
# sites run it: what jobs/slurm-local.toml and tests/test_slurm_local.py submit to.
#
#   scripts/slurm_local.sh up       # install what is missing, configure, start, wait for an idle node
#   scripts/slurm_local.sh status   # daemons, sinfo, the accounting cluster
#   scripts/slurm_local.sh down     # stop the daemons this script started (by their pid files)
#
# Needs root (or passwordless sudo): it installs Debian's munge, slurm-wlm, slurmdbd and
# mariadb-server with apt-get when they are missing, writes /etc/slurm/{slurm,slurmdbd}.conf
# and starts munged, mariadb, slurmdbd, slurmctld and slurmd as daemons (no systemd needed:
# a container is fine). `up` is idempotent: running daemons are left alone unless the
# configuration it writes changed. The node has this machine's CPUs (nproc) and memory (free).
#
# MPI under srun: MpiDefault=pmi2. Slurm's pmi2 plugin serves both the PMI-2 and the PMI-1
# wire protocol; the venv's MPICH 4.x (`mpich` wheel) speaks PMI-1 by default, so its ranks
# find each other under `srun --mpi=pmi2` (the test checks COMM_WORLD.size).
set -euo pipefail

CLUSTER=${SLURM_LOCAL_CLUSTER:-autophase}
NODE=localhost
ETC=/etc/slurm
LOG=/var/log/slurm
SPOOL=/var/spool
DB=slurm_acct_db
DBUSER=slurm
PKGS=(munge slurm-wlm slurmdbd mariadb-server)

die() { echo "slurm_local.sh: $*" >&2; exit 1; }
say() { echo "slurm_local.sh: $*"; }

SUDO=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    die "needs root or passwordless sudo (installs packages, writes /etc/slurm, starts daemons)"
  fi
fi
as_root() { $SUDO "$@"; }

# --------------------------------------------------------------------------- helpers

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD every 0.5 s
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out after ${t} s waiting for ${what}"
    sleep 0.5
  done
}

pid_alive() {  # pid_alive PIDFILE
  [ -s "$1" ] && as_root kill -0 "$(as_root cat "$1")" 2>/dev/null
}

have_all() {
  command -v munged && command -v slurmctld && command -v slurmd && command -v slurmdbd \
    && command -v sbatch && command -v sacct && { command -v mariadbd || command -v mysqld; }
} >/dev/null 2>&1

install_packages() {
  have_all && return 0
  say "installing ${PKGS[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # No service may start from a package's postinst (there may be no init system): we start
  # them ourselves below. policy-rc.d exit 101 = "action forbidden" to invoke-rc.d.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee $policy >/dev/null; as_root chmod 755 $policy; made_policy=1
  fi
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
  [ $made_policy = 1 ] && as_root rm -f $policy
  have_all || die "apt-get installed ${PKGS[*]} but a daemon or client is still missing"
}

write_if_changed() {  # write_if_changed PATH MODE OWNER < content; prints "changed" if it did
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if as_root test -f "$path" && as_root cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 0; fi
  as_root install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
  rm -f "$tmp"
  echo changed
}

# --------------------------------------------------------------------------- munge

start_munge() {
  if ! as_root test -s /etc/munge/munge.key; then
    if command -v mungekey >/dev/null; then as_root mungekey --create --keyfile=/etc/munge/munge.key
    else as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    as_root chown munge:munge /etc/munge/munge.key; as_root chmod 400 /etc/munge/munge.key
  fi
  as_root install -d -o munge -g munge -m 0755 /run/munge
  if ! pid_alive /run/munge/munged.pid; then
    say "starting munged"
    as_root runuser -u munge -- /usr/sbin/munged
  fi
  wait_for 20 "munged" sh -c 'munge -n | unmunge'
}

# --------------------------------------------------------------------------- MariaDB

mysql_up() { as_root mysqladmin --protocol=socket ping; }

start_mariadb() {
  if ! mysql_up >/dev/null 2>&1; then
    say "starting mariadb"
    as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
    if [ -x /etc/init.d/mariadb ]; then as_root /etc/init.d/mariadb start >/dev/null
    else (cd / && as_root setsid mysqld_safe --user=mysql </dev/null >/dev/null 2>&1 &); fi
  fi
  wait_for 60 "mariadb" mysql_up
  local pw_file=$ETC/.slurmdbd.pass pw
  if ! as_root test -s $pw_file; then
    as_root install -d -m 0755 $ETC
    head -c 18 /dev/urandom | base64 | tr -d '/+=' | as_root tee $pw_file >/dev/null
    as_root chmod 600 $pw_file
  fi
  pw=$(as_root cat $pw_file)
  as_root mysql --protocol=socket -e "
    CREATE DATABASE IF NOT EXISTS ${DB};
    CREATE USER IF NOT EXISTS '${DBUSER}'@'localhost' IDENTIFIED BY '${pw}';
    ALTER USER '${DBUSER}'@'localhost' IDENTIFIED BY '${pw}';
    GRANT ALL ON ${DB}.* TO '${DBUSER}'@'localhost';
    FLUSH PRIVILEGES;"
}

# --------------------------------------------------------------------------- config

write_configs() {
  local cpus mem pw changed=""
  cpus=$(nproc)
  # RealMemory in MiB, a little under the total so that slurmd's own count is never below it.
  mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.95)}')
  pw=$(as_root cat $ETC/.slurmdbd.pass)
  as_root install -d -m 0755 $ETC
  as_root install -d -o slurm -g slurm -m 0755 $LOG $SPOOL/slurmctld
  as_root install -d -m 0755 $SPOOL/slurmd

  changed+=$(write_if_changed $ETC/slurmdbd.conf 600 slurm:slurm <<EOF
# written by scripts/slurm_local.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DBUSER
StoragePass=$pw
StorageLoc=$DB
EOF
)
  [ -n "$changed" ] && DBD_CHANGED=1

  # One node with this machine's CPUs. OverSubscribe=FORCE:2 lets two jobs share a CPU: the
  # Parsl driver keeps a worker block (htex) and an MPI block queued side by side, which on
  # a multi-node site sit on different nodes; here there is only this one.
  local conf
  conf=$(write_if_changed $ETC/slurm.conf 644 root:root <<EOF
# written by scripts/slurm_local.sh: a one-node cluster on this machine
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmi2
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=300
KillWait=30
InactiveLimit=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
EOF
)
  [ -n "$conf" ] && CONF_CHANGED=1
  return 0
}

# --------------------------------------------------------------------------- slurm daemons

stop_pidfile() {  # stop_pidfile NAME PIDFILE
  local pid
  pid_alive "$2" || return 0
  pid=$(as_root cat "$2")
  say "stopping $1 (pid $pid)"
  as_root kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do as_root kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  as_root kill -KILL "$pid" 2>/dev/null || true
}

start_slurmdbd() {
  [ "${DBD_CHANGED:-0}" = 1 ] && stop_pidfile slurmdbd /run/slurmdbd.pid
  if ! pid_alive /run/slurmdbd.pid; then say "starting slurmdbd"; as_root slurmdbd; fi
  wait_for 60 "slurmdbd" as_root sacctmgr -n -P show cluster
  if [ -z "$(as_root sacctmgr -n -P show cluster format=cluster | grep -x "$CLUSTER")" ]; then
    say "registering cluster $CLUSTER"
    as_root sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

node_state() { sinfo -h -N -n $NODE -o %T 2>/dev/null | head -n 1; }

start_slurm() {
  if [ "${CONF_CHANGED:-0}" = 1 ]; then
    stop_pidfile slurmd /run/slurmd.pid; stop_pidfile slurmctld /run/slurmctld.pid
  fi
  if ! pid_alive /run/slurmctld.pid; then say "starting slurmctld"; as_root slurmctld; fi
  wait_for 60 "slurmctld" scontrol ping
  if ! pid_alive /run/slurmd.pid; then say "starting slurmd"; as_root slurmd -N $NODE; fi
  local end=$((SECONDS + 90)) st
  while :; do
    st=$(node_state)
    case "$st" in
      idle|mixed|allocated*|completing) break ;;
      down*|drain*|fail*) as_root scontrol update nodename=$NODE state=resume >/dev/null 2>&1 || true ;;
    esac
    [ $SECONDS -lt $end ] || die "node $NODE is '$st', not idle, after 90 s (see $LOG/slurmd.log, $LOG/slurmctld.log)"
    sleep 0.5
  done
  say "up: cluster $CLUSTER, node $NODE $(nproc) CPUs, state $st"
}

up() {
  install_packages
  start_munge
  start_mariadb
  write_configs
  start_slurmdbd
  start_slurm
}

down() {
  stop_pidfile slurmd /run/slurmd.pid
  stop_pidfile slurmctld /run/slurmctld.pid
  stop_pidfile slurmdbd /run/slurmdbd.pid
  if mysql_up >/dev/null 2>&1; then
    say "stopping mariadb"
    if [ -x /etc/init.d/mariadb ]; then as_root /etc/init.d/mariadb stop >/dev/null
    else as_root mysqladmin --protocol=socket shutdown; fi
  fi
  stop_pidfile munged /run/munge/munged.pid
  say "down"
}

status() {
  local rc=0
  for d in munged:/run/munge/munged.pid slurmdbd:/run/slurmdbd.pid slurmctld:/run/slurmctld.pid slurmd:/run/slurmd.pid; do
    if pid_alive "${d#*:}"; then echo "${d%%:*}: running (pid $(as_root cat "${d#*:}"))"
    else echo "${d%%:*}: stopped"; rc=1; fi
  done
  if mysql_up >/dev/null 2>&1; then echo "mariadb: running"; else echo "mariadb: stopped"; rc=1; fi
  if [ $rc = 0 ]; then
    sinfo -N -o "%N %P %T %c %m"
    as_root sacctmgr -n -P show cluster format=cluster,controlhost | sed 's/^/accounting cluster: /'
  fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/slurm_local.sh up|down|status" ;;
esac
