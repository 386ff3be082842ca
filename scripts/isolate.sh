#!/usr/bin/env bash
# Runs a command in a world of its own: private network (loopback only),
# mounts, hostname, process IDs and SysV IPC, with private Pacemaker and
# corosync state directories, a private /run and /dev/shm, an overlay over
# the OCF agent directory and a rig directory of its own. Several rigs (and
# whole test runs) can then run on one machine at once without seeing each
# other. When the command ends, every process it left is ended by the kernel
# (the namespace's first process exits) and every mount goes with it.
#
#   scripts/isolate.sh NAME -- COMMAND [ARG...]
#   scripts/isolate.sh NAME --enter COMMAND  run COMMAND inside NAME's running world
#   scripts/isolate.sh NAME --stop           end NAME's world (every process in it)
#   scripts/isolate.sh NAME --clean          remove NAME's directories
#
# Inside: PGTWIN_RIG_DIR=/var/tmp/pgtwin-iso/NAME/rig, hostname NAME.
set -euo pipefail

die() { printf 'isolate: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (namespaces and mounts)"
NAME=${1:-}
[[ $NAME =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "usage: $0 NAME -- COMMAND... (NAME: lower-case letters, digits, -)"
shift
BASE=/var/tmp/pgtwin-iso/$NAME

if [ "${1:-}" = --clean ]; then
  rm -rf "$BASE"
  exit 0
fi
inner_pid() {
  local outer
  outer=$(cat "$BASE/unshare.pid" 2>/dev/null) || return 1
  pgrep -P "$outer" | head -1
}

if [ "${1:-}" = --stop ]; then
  inner=$(inner_pid) || exit 0
  [ -n "$inner" ] || exit 0
  # The first process ends its command; when it exits the kernel ends the rest.
  kill -TERM "$inner" 2>/dev/null || true
  for _ in $(seq 1 300); do [ -d "/proc/$inner" ] || exit 0; sleep 0.1; done
  kill -KILL "$inner" 2>/dev/null || true
  exit 0
fi

if [ "${1:-}" = --enter ]; then
  shift
  [ $# -gt 0 ] || die "no command given"
  inner=$(inner_pid) || die "$NAME is not running"
  [ -n "$inner" ] || die "$NAME is not running"
  exec nsenter -t "$inner" --net --mount --uts --ipc --pid -- env PGTWIN_RIG_DIR="$BASE/rig" "$@"
fi
[ "${1:-}" = -- ] || die "usage: $0 NAME -- COMMAND..."
shift
[ $# -gt 0 ] || die "no command given"

# The inner half runs as the namespace's first process (see below).
if [ "${PGTWIN_ISOLATE_INNER:-}" = 1 ]; then
  unset PGTWIN_ISOLATE_INNER
  ip link set lo up
  hostname "$NAME"
  # The node name (the hostname) must resolve, as a cluster node's does.
  { cat /etc/hosts; printf '127.0.0.1\t%s\n' "$NAME"; } >"$BASE/hosts"
  mount --bind "$BASE/hosts" /etc/hosts
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p /run/lock /run/resource-agents /run/crm /run/user
  chown hacluster:haclient /run/crm 2>/dev/null || true
  chmod 0750 /run/crm
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  for d in lib/pacemaker log/pacemaker lib/corosync log/corosync lib/pgtwin-migrate; do
    mkdir -p "$BASE/var/$d" "/var/$d"
    mount --bind "$BASE/var/$d" "/var/$d"
  done
  mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
  chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker 2>/dev/null || true
  mkdir -p "$BASE/ocf-upper" "$BASE/ocf-work"
  mount -t overlay overlay -o "lowerdir=/usr/lib/ocf/resource.d,upperdir=$BASE/ocf-upper,workdir=$BASE/ocf-work" /usr/lib/ocf/resource.d
  export PGTWIN_RIG_DIR=$BASE/rig
  # Not exec: this shell stays the first process and reaps orphans
  # (detached cutover workers, daemons) until the command ends.
  "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
  status=0
  wait "$child" || status=$?
  # A signal interrupts the first wait; wait for the command itself to end.
  while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
  exit "$status"
fi

mkdir -p "$BASE"
echo $$ >"$BASE/unshare.pid"
rm -rf "$BASE/ocf-upper" "$BASE/ocf-work"
exec env PGTWIN_ISOLATE_INNER=1 unshare --net --mount --uts --ipc --pid --fork --kill-child \
  --mount-proc --propagation private "$0" "$NAME" -- "$@"
