#!/usr/bin/env bash
# The cluster rig: a production-shaped Pacemaker cluster on one machine.
# N nodes (default 4, see below), each a set of namespaces of its own
# (network, mount, UTS, SysV IPC) kept alive by a holder process, joined by a
# bridge that lives in a namespace of its own; a client namespace beside
# them. Addresses come from 192.0.2.0/24 (TEST-NET-1) and exist only inside
# these namespaces: nothing is added to the namespace the rig runs in.
#
# On it: corosync (knet) + Pacemaker with fencing (stonith-enabled=true; a
# test fence agent that powers a namespace node off), the source cluster
# (PostgreSQL 17) and the target cluster (PostgreSQL 18), each a promotable
# clone of resource-agents' ocf:heartbeat:pgsql with a streaming standby and
# fsync=on, and four ocf:heartbeat:IPaddr2 addresses colocated with their
# cluster's primary: postgres-vip / postgres-vip-18 (production and target)
# and postgres-rep-vip / postgres-rep-vip-18 (replication; also the pgsql
# standbys' master_ip). The built agent is installed in every node's view of
# /usr/lib/ocf/resource.d/heartbeat (an overlay per node).
#
# Why 4 nodes by default: a node holds at most one PostgreSQL server, so every
# server listens on port 5432 of its own node and the production address means
# the same thing wherever it moves; two clusters of primary + standby need four
# nodes. Losing any one of them keeps quorum (3 of 4). More nodes are spares.
#
#   scripts/rig.sh cluster up            (re)build and start everything (leftovers ended first)
#   scripts/rig.sh cluster down          end everything, then check nothing is left
#   scripts/rig.sh cluster status        nodes, daemons, crm_mon
#   scripts/rig.sh cluster node off|on NODE    power a node off (as the fence agent does) / on
#   scripts/rig.sh cluster heal          every node on, every clone with primary + streaming standby
#   scripts/rig.sh cluster exec NODE CMD...    run a command on a node (its namespaces)
#   scripts/rig.sh cluster client CMD...       run a command in the client namespace
#   scripts/rig.sh cluster install-agent       copy dist/pgtwin-migrate to every node again
#
# Every process is recorded by PID (holders, corosync, pacemakerd) and ended
# by PID; a node's other processes are found by its namespaces, never by name.
# Facts for tests go to $CDIR/cluster.json.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG_DIR=${PGTWIN_RIG_DIR:-/var/tmp/pgtwin-rig}
CDIR=${PGTWIN_CLUSTER_DIR:-$RIG_DIR-cluster}
NODE_COUNT=${PGTWIN_CLUSTER_NODES:-4}
NET=192.0.2
CLIENT_ADDR=$NET.50
VIP_PRODUCTION=$NET.100
VIP_TARGET=$NET.101
VIP_REP_SOURCE=$NET.110
VIP_REP_TARGET=$NET.111
PG_PORT=5432
PG_HOME=/var/lib/postgresql
PG15_BIN=/usr/lib/postgresql/15/bin
FENCE_AGENT=$REPO/test/fixtures/fence/fence_pgtwin_rig
# Which nodes each PostgreSQL cluster may run on: primary + standby.
SOURCE_NODES=(n1 n2)
TARGET_NODES=(n3 n4)

say() { printf 'cluster-rig: %s\n' "$*" >&2; }
die() { printf 'cluster-rig: error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (namespaces, mounts, Pacemaker)"; }
now_ms() { date +%s%3N; }
# Progress of a bring-up, with the time since it began, in $CDIR/logs/up.log.
mark() { echo "$(secs "$t0" "$(now_ms)") s: $*" >>"$CDIR/logs/up.log"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

node_names() { local i; for i in $(seq 1 "$NODE_COUNT"); do echo "n$i"; done; }
node_addr() { echo "$NET.$((10 + ${1#n}))"; }
# Recorded node list (what `up` built), for commands other than `up`.
recorded_nodes() { sed -n 's/^node \([a-z0-9]*\) .*/\1/p' "$CDIR/nodes.list" 2>/dev/null; }

# ---------------------------------------------------------------- processes
pidfile() { printf '%s/pids/%s' "$CDIR" "$1"; }

# The PID in a pid file when that process still runs what we started there.
live_pid() {
  local f pid
  f=$(pidfile "$1")
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# A holder's name (its argv[0]) names the rig too, so two rigs on one machine
# (isolated worlds share the kernel) never take each other's holders.
holder_name() { echo "pgtwin-cluster-$1:$CDIR"; }

# The PID in a holder's pid file when that process is the holder by that name.
live_holder() {
  local pid
  pid=$(cat "$(pidfile "$1.holder")" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(head -z -n1 "/proc/$pid/cmdline" 2>/dev/null | tr -d '\0')" = "$(holder_name "$2")" ] || return 1
  echo "$pid"
}

holder() { live_holder "$1" "node-$1"; }
bridge_holder() { live_holder bridge bridge; }
client_holder() { live_holder client client; }

# Runs a command in a node's namespaces.
on_node() {
  local n=$1 h
  shift
  h=$(holder "$n") || die "node $n is off"
  nsenter -t "$h" -n -m -u -i -- "$@"
}

# A node with Pacemaker up, to ask for the cluster's state.
live_node() {
  local n
  for n in $(recorded_nodes); do
    if holder "$n" >/dev/null && live_pid "$n.pacemakerd" pacemakerd >/dev/null; then echo "$n"; return 0; fi
  done
  return 1
}

crm_xml() {
  local n
  n=$(live_node) || return 1
  on_node "$n" crm_mon -1 --output-as=xml --inactive 2>/dev/null
}

# Running (a zombie waiting for its parent to reap it counts as ended).
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st:0:1}" != Z ]
}

# Ends a recorded process (TERM, then KILL after wait_s).
end_recorded() {
  local name=$1 expect=$2 wait_s=${3:-10} pid
  pid=$(live_pid "$name" "$expect") || { rm -f "$(pidfile "$name")"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((wait_s * 10))); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$name")"
}

# Waits until a command succeeds, polling every 0.1 s, for at most $1 seconds.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local until=$(($(now_ms) + limit * 1000))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$until" ] || { say "timed out after ${limit} s waiting for $what"; return 1; }
    sleep 0.1
  done
}

# ---------------------------------------------------------------- PostgreSQL
ensure_binaries() {
  local v src stamp
  for v in 17 18; do
    src="$REPO/node_modules/pg$v/native"
    [ -x "$src/bin/postgres" ] || die "$src/bin/postgres missing; run npm ci first"
    stamp=$(stat -c %Y "$src/bin/postgres")
    if [ "$(cat "$CDIR/pg$v/.stamp" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$CDIR/pg$v"
      cp -a "$src" "$CDIR/pg$v"
      echo "$stamp" >"$CDIR/pg$v/.stamp"
    fi
    chmod -R a+rX "$CDIR/pg$v"
  done
  [ -x "$PG15_BIN/psql" ] && [ -x "$PG15_BIN/pgbench" ] || die "psql/pgbench 15 missing; run scripts/rig.sh deps"
  id postgres >/dev/null 2>&1 || die "user postgres missing (package postgresql-common); run scripts/rig.sh deps"
  [ "$(getent passwd postgres | cut -d: -f6)" = "$PG_HOME" ] || die "user postgres's home is not $PG_HOME"
}

write_secrets() {
  mkdir -p "$CDIR/secrets"
  chmod 0700 "$CDIR/secrets"
  if [ ! -s "$CDIR/secrets/password" ]; then
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CDIR/secrets/password")
  fi
  local pw
  pw=$(cat "$CDIR/secrets/password")
  # The agent's own connections (it runs as root on whichever node runs it).
  (umask 077 && printf '*:*:*:pgmigrate:%s\n' "$pw" >"$CDIR/secrets/agent.pgpass")
}

# The servers' password file (postgres's home on every node): standbys log in
# as repl, subscriptions as pgmigrate, from inside their server.
write_server_pgpass() {
  local home=$1 pw
  pw=$(cat "$CDIR/secrets/password")
  (umask 077 && printf '*:*:*:repl:%s\n*:*:*:pgmigrate:%s\n' "$pw" "$pw" >"$home/.pgpass")
  chown postgres:postgres "$home/.pgpass"
}

pg_conf() {
  local v=$1
  cat <<EOF
# --- cluster rig (scripts/cluster-rig.sh)
listen_addresses = '*'
port = $PG_PORT
unix_socket_directories = '/run/postgresql'
wal_level = logical
hot_standby = on
hot_standby_feedback = on
max_connections = 200
max_wal_senders = 40
max_replication_slots = 60
max_worker_processes = 40
max_logical_replication_workers = 30
max_sync_workers_per_subscription = 2
wal_keep_size = 256MB
max_slot_wal_keep_size = 2GB
shared_buffers = 32MB
fsync = on
synchronous_commit = on
full_page_writes = on
password_encryption = scram-sha-256
# pgsql runs the clusters with rep_mode=sync (a failover loses no acknowledged
# write); a standby that is gone holds commits until its walsender gives up
# and pgsql's monitor switches to asynchronous: 10 s, not the default 60 s.
wal_sender_timeout = 10s
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
# Failover slots (PostgreSQL 17+): the standby keeps copies of logical slots
# created with failover = true (primary_slot_name comes from pgsql's
# replication_slot_name, dbname from its primary_conninfo_opt).
sync_replication_slots = on
EOF
  if [ "$v" -ge 18 ]; then echo 'max_active_replication_origins = 60'; fi
  # Per node (cluster_name names the node in clients' records); the data
  # directory itself is the same on primary and standby.
  echo "include_if_exists = '$PG_HOME/node.conf'"
}

# The data directory of a cluster's first node: initdb and the rig's settings.
init_pg_data() {
  local v=$1 a=$2
  local bin="$CDIR/pg$v/bin" home="$CDIR/nodes/$a/home"
  rm -rf "$home/data"
  runuser -u postgres -- "$bin/initdb" -D "$home/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$CDIR/logs/initdb-pg$v.log" 2>&1 || die "initdb $v failed; see $CDIR/logs/initdb-pg$v.log"
  pg_conf "$v" >>"$home/data/postgresql.conf"
  cat >"$home/data/pg_hba.conf" <<EOF
local all all trust
local replication all trust
host all all $NET.0/24 scram-sha-256
host replication all $NET.0/24 scram-sha-256
EOF
}

# psql as postgres on a node's server, through its socket (seen from here
# through the node holder's root: /proc/PID/root is the node's file system).
node_psql() {
  local n=$1 h
  shift
  h=$(holder "$n") || die "node $n is off"
  # As root: only root may walk another user's /proc/PID/root; the socket's trust does the rest.
  "$PG15_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "/proc/$h/root/run/postgresql" -p "$PG_PORT" -U postgres -d postgres "$@"
}

# A cluster's first server started on its node as the primary, the way
# pgsql's promote leaves one (its tmpdir with recovery.conf and rep_mode.conf,
# which pgsql includes from postgresql.conf, and PGSQL.lock, which stops it
# from coming back as a standby on diverged data); pgsql's probe adopts it as
# Promoted and its monitor then makes the standby synchronous.
# The standby is then made from it by a base backup, as an administrator
# would. This spares the bring-up pgsql's election of a primary among two
# standbys (several monitor rounds).
start_pg_cluster() {
  local v=$1 a=$2 b=$3
  local bin="$CDIR/pg$v/bin" home="$CDIR/nodes/$a/home" pw
  pw=$(cat "$CDIR/secrets/password")
  mkdir -p "$home/tmp"
  : >"$home/tmp/recovery.conf"
  : >"$home/tmp/rep_mode.conf"
  : >"$home/tmp/PGSQL.lock"
  chown -R postgres:postgres "$home/tmp"
  chmod 0700 "$home/tmp"
  printf "cluster_name = 'pg%s-%s'\n" "$v" "$a" >"$home/node.conf"
  printf "cluster_name = 'pg%s-%s'\n" "$v" "$b" >"$CDIR/nodes/$b/home/node.conf"
  chown postgres:postgres "$home/node.conf" "$CDIR/nodes/$b/home/node.conf"
  on_node "$a" runuser -u postgres -- env LD_LIBRARY_PATH="$CDIR/pg$v/lib" "$bin/pg_ctl" -D "$PG_HOME/data" -l "$PG_HOME/postgresql.log" -w -t 60 \
    -o "-c config_file=$PG_HOME/data/postgresql.conf" start >/dev/null || die "PostgreSQL $v did not start on $a; see $home/postgresql.log"
  node_psql "$a" -v pw="$pw" -v standby_slot="pgtwin_rig_$b" >/dev/null <<'EOF'
SELECT format('CREATE ROLE repl LOGIN REPLICATION PASSWORD %L', :'pw') \gexec
SELECT format('CREATE ROLE pgmigrate LOGIN SUPERUSER REPLICATION PASSWORD %L', :'pw') \gexec
SELECT format('CREATE ROLE app LOGIN PASSWORD %L', :'pw') \gexec
-- Clients record which cluster acknowledged each write (system_identifier).
GRANT EXECUTE ON FUNCTION pg_control_system() TO app;
-- pgsql creates a standby's physical slot when it promotes; this primary was started, not promoted.
SELECT pg_create_physical_replication_slot(:'standby_slot');
EOF
  rebuild_standby "$v" "$a" "$b"
}

# Debian 12's resource-agents 4.12 sets promotion scores with
# `crm_attribute -p $@`: Pacemaker 2.1.5 then reads `-p -v -INFINITY` as
# `-I -N FINITY` ("Could not map name=FINITY", exit 105), and pgsql's start in
# replication mode retries that for ever. Upstream passes the resource
# (`crm_attribute -p ${OCF_RESOURCE_INSTANCE} $@`); the nodes' view of
# ocf-shellfuncs gets that one-line fix (an overlay: the machine's file is
# not touched). Nothing is patched when the installed file has the fix.
patch_ocf_shellfuncs() {
  local out=$1 src=/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs
  rm -f "$out"
  # shellcheck disable=SC2016
  if grep -q '^\s*${HA_SBIN_DIR}/crm_attribute -p \$@$' "$src"; then
    sed 's|^\(\s*\)${HA_SBIN_DIR}/crm_attribute -p \$@$|\1${HA_SBIN_DIR}/crm_attribute -p ${OCF_RESOURCE_INSTANCE} $@|' "$src" >"$out"
    chmod 0644 "$out"
  fi
}

# ---------------------------------------------------------------- nodes
# Runs inside a new node's namespaces (see node_on): the node's own /run,
# /dev/shm and state directories, then it becomes the holder.
node_init() {
  local n=$1 nd=$2
  hostname "$n"
  ip link set lo up
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p /run/crm /run/resource-agents /run/postgresql /run/lock
  chown hacluster:haclient /run/crm
  chmod 0750 /run/crm
  chown postgres:postgres /run/postgresql
  chmod 2775 /run/postgresql
  # The agent honours its fault-injection hook (PGTWIN_MIGRATE_TEST_PAUSE_AT)
  # only where this root-owned marker exists: a test rig, never production.
  # The node's /run is its own, so every node gets it at boot.
  install -m 0644 /dev/null /run/pgtwin-migrate-test-rig
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  mount --bind "$nd/corosync-etc" /etc/corosync
  mount --bind "$nd/corosync-lib" /var/lib/corosync
  mount --bind "$nd/corosync-log" /var/log/corosync
  mount --bind "$nd/pacemaker-lib" /var/lib/pacemaker
  mount --bind "$nd/pacemaker-log" /var/log/pacemaker
  mount --bind "$nd/home" "$PG_HOME"
  if [ -d /var/lib/pgtwin-migrate ]; then mount --bind "$nd/pgtwin" /var/lib/pgtwin-migrate; fi
  mount --bind "$CDIR/hosts" /etc/hosts
  mount -t overlay overlay -o "lowerdir=/usr/lib/ocf/resource.d,upperdir=$nd/ocf-upper,workdir=$nd/ocf-work" /usr/lib/ocf/resource.d
  mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$nd/sbin-upper,workdir=$nd/sbin-work" /usr/sbin
  mount -t overlay overlay -o "lowerdir=/usr/lib/ocf/lib,upperdir=$nd/ocflib-upper,workdir=$nd/ocflib-work" /usr/lib/ocf/lib
  exec -a "$(holder_name "node-$n")" sleep infinity
}

client_init() {
  hostname client
  ip link set lo up
  mount --bind "$CDIR/hosts" /etc/hosts
  exec -a "$(holder_name client)" sleep infinity
}

bridge_init() {
  ip link set lo up
  ip link add br0 type bridge
  ip link set br0 up
  exec -a "$(holder_name bridge)" sleep infinity
}

# Starts a holder in new namespaces and waits until it has become the holder.
start_holder() {
  local name=$1 what=$2 log=$3
  shift 3
  unshare "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 1 100); do
    if [ "$(head -z -n1 "/proc/$pid/cmdline" 2>/dev/null | tr -d '\0')" = "$(holder_name "$what")" ]; then
      echo "$pid" >"$(pidfile "$name")"
      return 0
    fi
    alive "$pid" || break
    sleep 0.05
  done
  die "$name did not start; see $log"
}

# Plugs a namespace into the bridge: veth v-NAME there, eth0 with ADDR inside.
plug() {
  local name=$1 pid=$2 addr=$3 br
  br=$(bridge_holder) || die "the bridge is not running"
  nsenter -t "$br" -n ip link add "v-$name" type veth peer name eth0 netns "$pid"
  nsenter -t "$br" -n ip link set "v-$name" master br0 up
  nsenter -t "$pid" -n ip addr add "$addr/24" dev eth0
  nsenter -t "$pid" -n ip link set eth0 up
}

# A node's own directories (few commands: every fork counts on a busy machine).
prepare_node_dirs() {
  local nd="$CDIR/nodes/$1"
  mkdir -p "$nd"/{corosync-etc,corosync-lib,corosync-log,pacemaker-log,home,pgtwin,ocf-upper/heartbeat,ocf-work} \
    "$nd"/{sbin-upper,sbin-work,ocflib-upper/heartbeat,ocflib-work} "$nd"/pacemaker-lib/{cib,pengine,blackbox,cores}
  chown -R hacluster:haclient "$nd/pacemaker-lib" "$nd/pacemaker-log"
  chown postgres:postgres "$nd/home"
  chmod 0750 "$nd/pacemaker-lib/cib" "$nd/pgtwin"
  chmod 0755 "$nd/home"
  install_agents_into "$nd"
}

# The agent (95 MB) is copied once into the rig and hard-linked into every
# node's view.
install_agents_into() {
  local nd=$1
  rm -f "$nd/ocf-upper/heartbeat/pgtwin-migrate" "$nd/sbin-upper/fence_pgtwin_rig" "$nd/ocflib-upper/heartbeat/ocf-shellfuncs"
  ln "$CDIR/bin/fence_pgtwin_rig" "$nd/sbin-upper/fence_pgtwin_rig"
  if [ -f "$CDIR/bin/ocf-shellfuncs" ]; then ln "$CDIR/bin/ocf-shellfuncs" "$nd/ocflib-upper/heartbeat/ocf-shellfuncs"; fi
  if [ -x "$CDIR/bin/pgtwin-migrate" ]; then ln "$CDIR/bin/pgtwin-migrate" "$nd/ocf-upper/heartbeat/pgtwin-migrate"; fi
}

# What every node's view gets, made once and hard-linked into each: the agent
# (95 MB), the fence agent, the fixed ocf-shellfuncs.
copy_agent() {
  mkdir -p "$CDIR/bin"
  rm -f "$CDIR/bin/pgtwin-migrate" "$CDIR/bin/fence_pgtwin_rig"
  if [ -x "$REPO/dist/pgtwin-migrate" ]; then install -m 0755 "$REPO/dist/pgtwin-migrate" "$CDIR/bin/pgtwin-migrate"; fi
  install -m 0755 "$FENCE_AGENT" "$CDIR/bin/fence_pgtwin_rig"
  patch_ocf_shellfuncs "$CDIR/bin/ocf-shellfuncs"
}

node_on() {
  local n=$1 nd="$CDIR/nodes/$1" pid
  holder "$n" >/dev/null && return 0
  prepare_node_dirs "$n"
  # A node boots with a fresh process table, so PostgreSQL's postmaster.pid
  # from before its power-off names no process. Here the nodes share one PID
  # namespace: that PID may now be another node's postgres, and pgsql's
  # `kill -0` would take it for this node's server (a stop that never ends,
  # and Pacemaker fences the node). Booting removes the stale file.
  rm -f "$nd/home/data/postmaster.pid"
  start_holder "$n.holder" "node-$n" "$nd/holder.log" \
    --net --mount --uts --ipc --propagation private -- "$0" __node-init "$n" "$nd"
  pid=$(holder "$n")
  echo "$(readlink "/proc/$pid/ns/mnt") $(readlink "/proc/$pid/ns/net") $(readlink "/proc/$pid/ns/uts") $(readlink "/proc/$pid/ns/ipc")" >"$(pidfile "$n.ns")"
  plug "$n" "$pid" "$(node_addr "$n")"
}

start_corosync() {
  local n=$1 h
  h=$(holder "$n")
  nsenter -t "$h" -n -m -u -i -- corosync -f >>"$CDIR/nodes/$n/corosync.out" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n.corosync")"
}

start_pacemaker() {
  local n=$1 h
  h=$(holder "$n")
  nsenter -t "$h" -n -m -u -i -- env PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none \
    HA_LOGFACILITY=none PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C /usr/sbin/pacemakerd \
    >>"$CDIR/nodes/$n/pacemakerd.out" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n.pacemakerd")"
}

members() { on_node "$1" corosync-quorumtool -s 2>/dev/null | sed -n 's/^Nodes: *\([0-9]*\).*/\1/p'; }
all_members() { [ "$(members "$1")" = "$2" ]; }

pacemaker_ready() {
  local xml
  xml=$(crm_xml) || return 1
  grep -q '<current_dc present="true"' <<<"$xml" || return 1
  [ "$(grep -c '<node name="n[0-9]*"[^>]*online="true"' <<<"$xml")" = "$1" ]
}

# The fence agent's own power-off, so a test's power-off and Pacemaker's are one thing.
node_off() {
  "$FENCE_AGENT" -o off -n "$1" --rig-dir "$CDIR"
}

# ---------------------------------------------------------------- Pacemaker
write_corosync_conf() {
  local nd=$1 n i=0
  {
    cat <<'EOF'
totem {
  version: 2
  cluster_name: pgtwin-cluster-rig
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  # Rig tuning: a lost node is declared gone after ~2.2 s (token + consensus)
  # instead of ~3.6 s with the default 3000 ms token. corosync runs
  # real-time, so a busy 2-core machine does not cause false losses.
  token: 1000
}
nodelist {
EOF
    for n in $(recorded_nodes); do
      i=$((i + 1))
      cat <<EOF
  node {
    name: $n
    nodeid: ${n#n}
    ring0_addr: $(node_addr "$n")
  }
EOF
    done
    cat <<'EOF'
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: no
  to_logfile: yes
  logfile: /var/log/corosync/corosync.log
  to_syslog: no
  timestamp: on
}
EOF
  } >"$nd/corosync-etc/corosync.conf"
}

nv() { printf '<nvpair id="%s-%s" name="%s" value="%s"/>' "$1" "$2" "$2" "$3"; }

pgsql_primitive() {
  local id=$1 v=$2 nodes=$3 master_ip=$4
  local bin="$CDIR/pg$v/bin"
  cat <<EOF
    <primitive id="$id" class="ocf" provider="heartbeat" type="pgsql">
      <instance_attributes id="$id-params">
        $(nv "$id" pgctl "$bin/pg_ctl") $(nv "$id" psql "$PG15_BIN/psql") $(nv "$id" pglibs "$CDIR/pg$v/lib")
        $(nv "$id" pgdata "$PG_HOME/data") $(nv "$id" config "$PG_HOME/data/postgresql.conf") $(nv "$id" pgdba postgres)
        $(nv "$id" pgport "$PG_PORT") $(nv "$id" socketdir /run/postgresql) $(nv "$id" tmpdir "$PG_HOME/tmp")
        $(nv "$id" logfile "$PG_HOME/postgresql.log") $(nv "$id" rep_mode sync) $(nv "$id" node_list "$nodes")
        $(nv "$id" master_ip "$master_ip") $(nv "$id" repuser repl) $(nv "$id" restore_command "")
        $(nv "$id" primary_conninfo_opt "dbname=postgres keepalives_idle=5 keepalives_interval=2 keepalives_count=3")
        $(nv "$id" replication_slot_name pgtwin_rig) $(nv "$id" xlog_check_count 1)
        $(nv "$id" stop_escalate 10) $(nv "$id" stop_escalate_in_slave 10)
      </instance_attributes>
      <operations>
        <op id="$id-start" name="start" interval="0s" timeout="60s"/>
        <op id="$id-stop" name="stop" interval="0s" timeout="60s"/>
        <op id="$id-promote" name="promote" interval="0s" timeout="60s"/>
        <op id="$id-demote" name="demote" interval="0s" timeout="60s"/>
        <op id="$id-notify" name="notify" interval="0s" timeout="60s"/>
        <op id="$id-mon-p" name="monitor" interval="5s" role="Promoted" timeout="60s" on-fail="restart"/>
        <op id="$id-mon-u" name="monitor" interval="7s" role="Unpromoted" timeout="60s" on-fail="restart"/>
      </operations>
    </primitive>
EOF
}

ipaddr2() {
  cat <<EOF
    <primitive id="$1" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="$1-params">$(nv "$1" ip "$2") $(nv "$1" cidr_netmask 24) $(nv "$1" nic eth0)</instance_attributes>
      <operations>
        <op id="$1-start" name="start" interval="0s" timeout="20s"/>
        <op id="$1-stop" name="stop" interval="0s" timeout="20s"/>
        <op id="$1-monitor" name="monitor" interval="10s" timeout="20s"/>
      </operations>
    </primitive>
EOF
}

clone_xml() {
  local id=$1
  shift
  cat <<EOF
    <clone id="$id">
      <meta_attributes id="$id-meta">
        $(nv "$id" promotable true) $(nv "$id" promoted-max 1) $(nv "$id" promoted-node-max 1)
        $(nv "$id" clone-max 2) $(nv "$id" clone-node-max 1) $(nv "$id" notify true)
      </meta_attributes>
$("$@")
    </clone>
EOF
}

# Where a cluster may run, where it prefers its primary, and its addresses
# with its primary, started after the promotion and stopped before a demotion.
cluster_constraints() {
  local clone=$1 vip=$2 repvip=$3
  shift 3
  local allowed=("$@") n r
  for n in $(recorded_nodes); do
    if [[ " ${allowed[*]} " != *" $n "* ]]; then
      echo "<rsc_location id=\"loc-$clone-not-$n\" rsc=\"$clone\" node=\"$n\" score=\"-INFINITY\" resource-discovery=\"never\"/>"
    fi
  done
  echo "<rsc_location id=\"loc-$clone-primary\" rsc=\"$clone\" role=\"Promoted\" node=\"${allowed[0]}\" score=\"10\"/>"
  for r in "$vip" "$repvip"; do
    echo "<rsc_colocation id=\"col-$r-with-$clone\" rsc=\"$r\" with-rsc=\"$clone\" with-rsc-role=\"Promoted\" score=\"INFINITY\"/>"
    echo "<rsc_order id=\"ord-$clone-promote-$r\" first=\"$clone\" first-action=\"promote\" then=\"$r\" then-action=\"start\" kind=\"Mandatory\" symmetrical=\"false\"/>"
    echo "<rsc_order id=\"ord-$clone-demote-$r\" first=\"$clone\" first-action=\"demote\" then=\"$r\" then-action=\"stop\" kind=\"Mandatory\" symmetrical=\"false\"/>"
  done
}

# The whole configuration is seeded on every node before Pacemaker starts:
# nothing starts half-configured, and no CIB update is needed at bring-up.
# Rig tuning (no comments inside the CIB: crmsh 4.4 turns them into
# configuration text and fails on an apostrophe in them):
# - dc-deadtime 2s: the first DC election waits 2 s for the other nodes, not 20 s;
# - load-threshold 2000%: the controller throttles to one action at a time
#   when the machine's load is above it (default 80% of its CPUs); the nodes
#   share a small, busy machine, so that would serialise every action;
# - node-action-limit 8: up to 4 actions at once per node (default 2 on two
#   cores); pgsql's probes take seconds and would queue every other probe.
seed_cib() {
  local nd=$1 nodes
  nodes=$(recorded_nodes | tr '\n' ' ')
  cat >"$nd/pacemaker-lib/cib/cib.xml" <<EOF
<cib crm_feature_set="3.0.0" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        $(nv opt stonith-enabled true)
        $(nv opt stonith-action off)
        $(nv opt stonith-timeout 30s)
        $(nv opt cluster-name pgtwin-cluster-rig)
        $(nv opt dc-deadtime 2s)
        $(nv opt cluster-recheck-interval 1min)
        $(nv opt load-threshold 2000%)
        $(nv opt node-action-limit 8)
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="fence-rig" class="stonith" type="fence_pgtwin_rig">
        <instance_attributes id="fence-rig-params">
          $(nv fence-rig pcmk_host_list "${nodes% }") $(nv fence-rig pcmk_host_check static-list) $(nv fence-rig rig_dir "$CDIR")
        </instance_attributes>
        <operations><op id="fence-rig-monitor" name="monitor" interval="60s" timeout="20s"/></operations>
      </primitive>
$(clone_xml postgres-clone pgsql_primitive pgsql-17 17 "${SOURCE_NODES[*]}" "$VIP_REP_SOURCE")
$(clone_xml postgres-clone-18 pgsql_primitive pgsql-18 18 "${TARGET_NODES[*]}" "$VIP_REP_TARGET")
$(ipaddr2 postgres-vip "$VIP_PRODUCTION")
$(ipaddr2 postgres-vip-18 "$VIP_TARGET")
$(ipaddr2 postgres-rep-vip "$VIP_REP_SOURCE")
$(ipaddr2 postgres-rep-vip-18 "$VIP_REP_TARGET")
    </resources>
    <constraints>
$(cluster_constraints postgres-clone postgres-vip postgres-rep-vip "${SOURCE_NODES[@]}")
$(cluster_constraints postgres-clone-18 postgres-vip-18 postgres-rep-vip-18 "${TARGET_NODES[@]}")
    </constraints>
  </configuration>
  <status/>
</cib>
EOF
  chown hacluster:haclient "$nd/pacemaker-lib/cib/cib.xml"
  chmod 0600 "$nd/pacemaker-lib/cib/cib.xml"
}

# Both clusters promoted with a standby, every address and the fence device started.
resources_ready() {
  local xml
  xml=$(crm_xml) || return 1
  node -e '
    const x = require("fs").readFileSync(0, "utf8");
    const clone = (id) => (x.split(`<clone id="${id}"`)[1] ?? "").split("</clone>")[0];
    const roles = (id) => [...clone(id).matchAll(/role="(\w+)"[^>]*active="true"[^>]*failed="false"/g)].map((m) => m[1]).sort().join(",");
    const started = (id) => new RegExp(`<resource id="${id}"[^>]*role="Started"[^>]*active="true"[^>]*failed="false"`).test(x);
    const ok = ["postgres-clone", "postgres-clone-18"].every((c) => roles(c) === "Promoted,Unpromoted") &&
      ["postgres-vip", "postgres-vip-18", "postgres-rep-vip", "postgres-rep-vip-18", "fence-rig"].every(started);
    process.exit(ok ? 0 : 1);
  ' <<<"$xml"
}

# ---------------------------------------------------------------- facts
write_facts() {
  local nodes="" n
  for n in $(recorded_nodes); do nodes="$nodes${nodes:+, }{ \"name\": \"$n\", \"address\": \"$(node_addr "$n")\" }"; done
  cat >"$CDIR/cluster.json" <<EOF
{
  "dir": "$CDIR",
  "repo": "$REPO",
  "pids": "$CDIR/pids",
  "network": "$NET.0/24",
  "nodes": [$nodes],
  "client": { "address": "$CLIENT_ADDR" },
  "port": $PG_PORT,
  "pgHome": "$PG_HOME",
  "socketDir": "/run/postgresql",
  "psql": "$PG15_BIN/psql",
  "pgbench": "$PG15_BIN/pgbench",
  "agentPgpass": "$CDIR/secrets/agent.pgpass",
  "passwordFile": "$CDIR/secrets/password",
  "appUser": "app",
  "fenceAgent": "$FENCE_AGENT",
  "vips": {
    "production": { "resource": "postgres-vip", "ip": "$VIP_PRODUCTION" },
    "target": { "resource": "postgres-vip-18", "ip": "$VIP_TARGET" },
    "sourceReplication": { "resource": "postgres-rep-vip", "ip": "$VIP_REP_SOURCE" },
    "targetReplication": { "resource": "postgres-rep-vip-18", "ip": "$VIP_REP_TARGET" }
  },
  "clusters": {
    "source": { "clone": "postgres-clone", "primitive": "pgsql-17", "major": 17, "nodes": ["${SOURCE_NODES[0]}", "${SOURCE_NODES[1]}"], "bindir": "$CDIR/pg17/bin" },
    "target": { "clone": "postgres-clone-18", "primitive": "pgsql-18", "major": 18, "nodes": ["${TARGET_NODES[0]}", "${TARGET_NODES[1]}"], "bindir": "$CDIR/pg18/bin" }
  }
}
EOF
}

write_hosts() {
  local n
  {
    echo "127.0.0.1 localhost"
    for n in $(recorded_nodes); do echo "$(node_addr "$n") $n"; done
    echo "$CLIENT_ADDR client"
  } >"$CDIR/hosts"
  chmod 0644 "$CDIR/hosts"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  need_root
  [ "$NODE_COUNT" -ge 4 ] || die "PGTWIN_CLUSTER_NODES must be at least 4 (two clusters of primary + standby, one server per node)"
  local t0 t1 t2 t3 n j pgjobs=() nodejobs=()
  t0=$(now_ms)
  cmd_down quiet
  mkdir -p "$CDIR/pids" "$CDIR/logs" "$CDIR/run" "$CDIR/nodes"
  chmod 0755 "$CDIR"
  : >"$CDIR/logs/up.log"
  ensure_binaries
  copy_agent
  write_secrets
  : >"$CDIR/nodes.list"
  for n in $(node_names); do echo "node $n $(node_addr "$n")" >>"$CDIR/nodes.list"; done
  write_hosts
  for n in $(recorded_nodes); do prepare_node_dirs "$n"; done
  # PostgreSQL data is made while the network comes up.
  init_pg_data 17 "${SOURCE_NODES[0]}" &
  pgjobs+=($!)
  init_pg_data 18 "${TARGET_NODES[0]}" &
  pgjobs+=($!)
  t1=$(now_ms)
  start_holder bridge.holder bridge "$CDIR/logs/bridge.log" --net -- "$0" __bridge-init
  start_holder client.holder client "$CDIR/logs/client.log" --net --mount --uts --propagation private -- "$0" __client-init
  plug client "$(client_holder)" "$CLIENT_ADDR"
  mark "bridge and client namespace"
  for n in $(recorded_nodes); do
    write_corosync_conf "$CDIR/nodes/$n"
    seed_cib "$CDIR/nodes/$n"
    write_server_pgpass "$CDIR/nodes/$n/home"
  done
  # The nodes come up side by side.
  nodejobs=()
  for n in $(recorded_nodes); do
    node_on "$n" &
    nodejobs+=($!)
  done
  for j in "${nodejobs[@]}"; do wait "$j" || die "a node did not come up; see $CDIR/nodes/*/holder.log"; done
  mark "nodes: namespaces"
  for n in $(recorded_nodes); do start_corosync "$n"; done
  for j in "${pgjobs[@]}"; do wait "$j" || die "PostgreSQL initialisation failed; see $CDIR/logs"; done
  pgjobs=()
  start_pg_cluster 17 "${SOURCE_NODES[@]}" &
  pgjobs+=($!)
  start_pg_cluster 18 "${TARGET_NODES[@]}" &
  pgjobs+=($!)
  wait_until 30 "corosync membership of $NODE_COUNT nodes" all_members n1 "$NODE_COUNT" || die "corosync did not form; see $CDIR/nodes/*/corosync-log/corosync.log"
  mark "corosync: $NODE_COUNT members"
  for j in "${pgjobs[@]}"; do wait "$j" || die "PostgreSQL bootstrap failed; see $CDIR/logs"; done
  mark "PostgreSQL: primaries started, standbys copied"
  # Every pacemakerd at once, after the membership is complete: no node is
  # "unseen" at the first election (stonith-enabled would fence it).
  for n in $(recorded_nodes); do start_pacemaker "$n"; done
  wait_until 60 "Pacemaker: $NODE_COUNT nodes online and a DC" pacemaker_ready "$NODE_COUNT" || die "Pacemaker did not come up; see $CDIR/nodes/*/pacemaker-log/pacemaker.log"
  t2=$(now_ms)
  mark "Pacemaker: DC and $NODE_COUNT nodes online"
  wait_until 120 "both clusters promoted with a standby and every address started" resources_ready || die "resources did not come up; see scripts/rig.sh cluster status"
  t3=$(now_ms)
  write_facts
  say "ready in $(secs "$t0" "$t3") s: namespaces, corosync and Pacemaker ($NODE_COUNT nodes online, DC elected) $(secs "$t1" "$t2") s; PostgreSQL 17 and 18 promoted with streaming standbys and the four addresses started $(secs "$t2" "$t3") s more"
}

rig_addresses() {
  local n
  for n in $(recorded_nodes); do node_addr "$n"; done
  printf '%s\n' "$CLIENT_ADDR" "$VIP_PRODUCTION" "$VIP_TARGET" "$VIP_REP_SOURCE" "$VIP_REP_TARGET"
}

# Processes, mounts, interfaces and addresses the rig may have left; one line per finding.
leftovers() {
  local recorded=$1 p ns pattern
  for p in $(grep -lasF ":$CDIR" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    head -z -n1 "/proc/$p/cmdline" 2>/dev/null | tr -d '\0' | grep -q "^pgtwin-cluster-[a-z0-9-]*:$CDIR\$" || continue
    echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
  done
  while read -r ns; do
    [ -n "$ns" ] || continue
    pattern=${ns//[/\\[}
    pattern=${pattern//]/\\]}
    for p in $(find /proc -mindepth 3 -maxdepth 3 -path "/proc/[0-9]*/ns/${ns%%:*}" -lname "$pattern" 2>/dev/null | cut -d/ -f3); do
      echo "process $p in the rig's namespace $ns: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-80)"
    done
  done <"$recorded"
  grep -F -- "$CDIR/" /proc/self/mountinfo | sed 's/^/mount: /' || true
  ip -o link show 2>/dev/null | grep -E ': (v-[a-z0-9]+|br0)[@:]' | sed 's/^/interface: /' || true
  # The rig's own addresses only: the machine itself may have one in 192.0.2.0/24 (some VMs do).
  ip -o addr show 2>/dev/null | grep -E " inet ($(rig_addresses | sed 's/\./\\./g' | paste -sd'|'))/" | sed 's/^/address: /' || true
}

cmd_down() {
  need_root
  local quiet=${1:-} n recorded found segs
  [ -d "$CDIR/pids" ] || { [ -n "$quiet" ] || say "nothing to stop"; return 0; }
  recorded=$(mktemp)
  for f in "$CDIR"/pids/*.ns; do [ -f "$f" ] && tr ' ' '\n' <"$f" >>"$recorded"; done
  for n in $(recorded_nodes); do node_off "$n" || true; done
  for n in client bridge; do
    end_recorded "$n.holder" "^pgtwin-cluster-$n:$CDIR " 5
  done
  for v in 17 18; do
    if live_pid "init-pg$v" postgres >/dev/null; then
      runuser -u postgres -- "$CDIR/pg$v/bin/pg_ctl" -D "$CDIR/nodes/${SOURCE_NODES[0]}/home/data" -m immediate stop >/dev/null 2>&1 || true
      runuser -u postgres -- "$CDIR/pg$v/bin/pg_ctl" -D "$CDIR/nodes/${TARGET_NODES[0]}/home/data" -m immediate stop >/dev/null 2>&1 || true
      end_recorded "init-pg$v" postgres 5
    fi
  done
  found=$(leftovers "$recorded")
  rm -f "$recorded"
  if [ -n "$found" ]; then
    # The records stay, so that `down` can be run again.
    say "down: LEFT BEHIND:"
    printf '%s\n' "$found" >&2
    return 1
  fi
  rm -rf "$CDIR/nodes" "$CDIR/run" "$CDIR/cluster.json" "$CDIR/nodes.list" "$CDIR/pids"
  segs=$(ipcs -m 2>/dev/null | awk '$3 == "postgres"' | wc -l)
  [ -n "$quiet" ] || say "down: clean: no process, mount, interface, address or namespace of the rig left; SysV shared memory segments of postgres in this IPC namespace: $segs"
}

cmd_status() {
  local n h state
  [ -f "$CDIR/nodes.list" ] || { echo "cluster rig: not up"; return 0; }
  for n in $(recorded_nodes); do
    if h=$(holder "$n"); then
      state="on (holder $h"
      state="$state, corosync $(live_pid "$n.corosync" corosync || echo -)"
      state="$state, pacemakerd $(live_pid "$n.pacemakerd" pacemakerd || echo -))"
    else
      state=off
    fi
    echo "$n $(node_addr "$n"): $state"
  done
  echo "client $CLIENT_ADDR: $(client_holder >/dev/null && echo on || echo off); bridge: $(bridge_holder >/dev/null && echo on || echo off)"
  if n=$(live_node); then on_node "$n" crm_mon -1 -r; fi
}

cmd_node() {
  need_root
  local what=${1:-} n=${2:-}
  recorded_nodes | grep -qx -- "$n" || die "usage: scripts/rig.sh cluster node off|on NODE (nodes: $(recorded_nodes | tr '\n' ' '))"
  case $what in
    off) node_off "$n" ;;
    on)
      if holder "$n" >/dev/null; then say "$n is on"; return 0; fi
      # Pacemaker first sees the node gone and fences it: a node powered on
      # before that would be powered off again by the pending fencing.
      wait_until 120 "Pacemaker to see $n off and fenced" node_off_and_clean "$n" || die "$n is still online or unclean to Pacemaker"
      node_on "$n"
      start_corosync "$n"
      wait_until 20 "$n in the corosync membership" all_members "$n" "$NODE_COUNT_RECORDED" || die "$n did not join corosync"
      start_pacemaker "$n"
      wait_until 60 "$n online in Pacemaker" node_online "$n" || die "$n did not come online"
      say "$n powered on and online"
      ;;
    *) die "usage: scripts/rig.sh cluster node off|on NODE" ;;
  esac
}

node_online() { crm_xml | grep -q "<node name=\"$1\"[^>]*online=\"true\""; }
node_off_and_clean() { crm_xml | grep -q "<node name=\"$1\"[^>]*online=\"false\"[^>]*unclean=\"false\""; }

# --------------------------------------------------------------- heal
primary_of() { crm_xml | node -e '
  const x = require("fs").readFileSync(0, "utf8");
  const c = (x.split(`<clone id="${process.argv[1]}"`)[1] ?? "").split("</clone>")[0];
  const m = /role="Promoted"[^>]*active="true"[^>]*>\s*<node name="([^"]+)"/.exec(c);
  if (!m) process.exit(1);
  console.log(m[1]);' "$1"; }

running_unpromoted_on() { crm_xml | node -e '
  const x = require("fs").readFileSync(0, "utf8");
  const c = (x.split(`<clone id="${process.argv[1]}"`)[1] ?? "").split("</clone>")[0];
  process.exit(new RegExp(`role="Unpromoted"[^>]*active="true"[^>]*failed="false"[^>]*>\\s*<node name="${process.argv[2]}"`).test(c) ? 0 : 1);' "$1" "$2"; }

streaming_from() {
  local p=$1 s=$2
  [ "$(on_node "$p" runuser -u postgres -- "$PG15_BIN/psql" -X -At -h /run/postgresql -p "$PG_PORT" -d postgres \
    -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$s' AND state = 'streaming'" 2>/dev/null)" = 1 ]
}

# A standby made again from the primary: the old primary after a failover
# (its timeline diverged, and pgsql's PGSQL.lock says so) or a broken one.
rebuild_standby() {
  local v=$1 p=$2 s=$3 sd label
  sd="$CDIR/nodes/$s/home/data"
  rm -rf "$sd"
  mkdir -p "$sd"
  chmod 0700 "$sd"
  label="$CDIR/nodes/$s/backup_label.new"
  # A non-exclusive base backup by the low-level API: the copy runs inside
  # the session that holds the backup open (psql's \!).
  node_psql "$p" -At >/dev/null <<EOF
SELECT pg_backup_start('pgtwin-cluster-rig', true);
\! tar -C '$CDIR/nodes/$p/home/data' --exclude=./postmaster.pid --exclude=./postmaster.opts --exclude='./pg_wal/*' --exclude='./pg_replslot/*' --exclude=./postgresql.auto.conf --exclude=./standby.signal -cf - . | tar -C '$sd' -xf -
\o $label
SELECT labelfile FROM pg_backup_stop(false);
\o
EOF
  cp "$label" "$sd/backup_label"
  rm -f "$label" "$CDIR/nodes/$s/home/tmp/PGSQL.lock"
  chown -R postgres:postgres "$sd"
}

heal_cluster() {
  local v=$1 clone=$2 primitive=$3
  shift 3
  local p s
  wait_until 90 "a primary of $clone" primary_of "$clone" || die "$clone has no primary"
  p=$(primary_of "$clone")
  for s in "$@"; do
    [ "$s" = "$p" ] && continue
    if [ ! -f "$CDIR/nodes/$s/home/tmp/PGSQL.lock" ]; then
      on_node "$p" crm_resource --cleanup --resource "$primitive" --node "$s" >/dev/null 2>&1 || true
      if wait_until 30 "$primitive streaming on $s" running_unpromoted_and_streaming "$clone" "$p" "$s"; then continue; fi
    fi
    say "rebuilding pgsql-$v on $s as a standby of $p"
    # Nothing of pgsql may run or act on that node while its data is made again.
    on_node "$p" crm_resource --ban --resource "$clone" --node "$s" >/dev/null 2>&1 || true
    on_node "$p" crm_resource --wait --timeout 180 >/dev/null 2>&1 || true
    wait_until 60 "$primitive stopped on $s" not_running_on "$clone" "$s" || die "$primitive did not stop on $s"
    rebuild_standby "$v" "$p" "$s"
    on_node "$p" crm_resource --clear --resource "$clone" --node "$s" >/dev/null 2>&1 || true
    on_node "$p" crm_resource --cleanup --resource "$primitive" --node "$s" >/dev/null 2>&1 || true
    wait_until 240 "$primitive streaming on $s" running_unpromoted_and_streaming "$clone" "$p" "$s" || die "$primitive on $s did not come back as a streaming standby"
  done
}

running_unpromoted_and_streaming() { running_unpromoted_on "$1" "$3" && streaming_from "$2" "$3"; }
not_running_on() { ! crm_xml | grep -A1 -E "<resource id=\"pgsql-[0-9]+\"[^>]*active=\"true\"" | grep -q "<node name=\"$2\""; }

# What tests may leave: migration primitives (pgtwin-migrate) and
# constraints that are not the rig's, the VIP addresses swapped by a
# cutover, a source left read-only by a fence.
restore_configuration() {
  local n ids id prod tgt
  n=$(live_node)
  # Constraints first: a resource that a constraint names cannot be deleted.
  ids=$(on_node "$n" cibadmin --query --scope constraints | grep -o ' id="[^"]*"' | cut -d'"' -f2 | grep -v -E '^(loc|col|ord)-postgres-' || true)
  for id in $ids; do
    case $id in pgtwin-migrate-*-vip-order) continue ;; esac
    on_node "$n" cibadmin --delete --xpath "//constraints/*[@id='$id']" >/dev/null 2>&1 || true
  done
  for id in $(on_node "$n" cibadmin --query --scope resources | grep -o '<primitive id="[^"]*" class="ocf" provider="heartbeat" type="pgtwin-migrate"' | cut -d'"' -f2); do
    say "removing migration resource $id (and what it made: pgtwin-migrate teardown)"
    on_node "$n" crm_resource --resource "$id" --meta --set-parameter target-role --parameter-value Stopped >/dev/null 2>&1 || true
    wait_until 120 "$id stopped" resource_stopped "$id" || true
    on_node "$n" timeout 300 /usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate teardown --resource "$id" --yes >/dev/null 2>&1 || true
    on_node "$n" cibadmin --delete --xml-text "<primitive id=\"$id\"/>" >/dev/null 2>&1 || true
  done
  prod=$(on_node "$n" crm_resource --resource postgres-vip --get-parameter ip 2>/dev/null || true)
  tgt=$(on_node "$n" crm_resource --resource postgres-vip-18 --get-parameter ip 2>/dev/null || true)
  if [ "$prod" != "$VIP_PRODUCTION" ] || [ "$tgt" != "$VIP_TARGET" ]; then
    say "giving postgres-vip $VIP_PRODUCTION and postgres-vip-18 $VIP_TARGET again"
    # One update; the order makes every stop finish before any start.
    on_node "$n" cibadmin --modify --allow-create --scope configuration --xml-text "<configuration><resources>\
<primitive id=\"postgres-vip\"><instance_attributes id=\"postgres-vip-params\"><nvpair id=\"postgres-vip-ip\" name=\"ip\" value=\"$VIP_PRODUCTION\"/></instance_attributes></primitive>\
<primitive id=\"postgres-vip-18\"><instance_attributes id=\"postgres-vip-18-params\"><nvpair id=\"postgres-vip-18-ip\" name=\"ip\" value=\"$VIP_TARGET\"/></instance_attributes></primitive>\
</resources><constraints><rsc_order id=\"rig-heal-vip-order\" first=\"postgres-vip\" first-action=\"stop\" then=\"postgres-vip-18\" then-action=\"start\" kind=\"Optional\" symmetrical=\"true\"/></constraints></configuration>" >/dev/null
    wait_until 60 "both VIPs restarted" resources_ready || true
  fi
  # The VIP order constraints (the agent's and this one) once the addresses are where they belong.
  for id in $(on_node "$n" cibadmin --query --scope constraints | grep -o ' id="[^"]*"' | cut -d'"' -f2 | grep -E '^(pgtwin-migrate-.*-vip-order|rig-heal-vip-order)$' || true); do
    on_node "$n" cibadmin --delete --xpath "//constraints/*[@id='$id']" >/dev/null 2>&1 || true
  done
  # Managed again, whatever a test left unmanaged.
  for id in postgres-vip postgres-vip-18 postgres-rep-vip postgres-rep-vip-18; do
    on_node "$n" crm_resource --resource "$id" --meta --delete-parameter is-managed >/dev/null 2>&1 || true
  done
}

# Faults a test may have left in a node: a cut path (blackhole routes), an
# ip that refuses addresses (test/fixtures/faults/ip-refusing).
restore_nodes() {
  local n route
  for n in $(recorded_nodes); do
    holder "$n" >/dev/null || continue
    on_node "$n" ip route show type blackhole | while read -r route; do
      [ -n "$route" ] && on_node "$n" ip route del $route >/dev/null 2>&1 || true
    done
    if ! on_node "$n" test -L /usr/sbin/ip; then
      say "$n: putting back /usr/sbin/ip"
      on_node "$n" rm -f /usr/sbin/ip /run/pgtwin-faults/refuse-address
      on_node "$n" ln -s /bin/ip /usr/sbin/ip
    fi
  done
}

resource_stopped() { ! crm_xml | grep -q "<resource id=\"$1\"[^>]*active=\"true\""; }

writable_again() {
  local clone=$1 p
  p=$(primary_of "$clone") || return 0
  node_psql "$p" -At -c "SELECT current_setting('default_transaction_read_only')" | grep -qx on || return 0
  say "$clone on $p was left read-only; making it writable"
  node_psql "$p" -c "ALTER SYSTEM RESET default_transaction_read_only" -c "SELECT pg_reload_conf()" >/dev/null
}

cmd_heal() {
  need_root
  local n
  [ -f "$CDIR/cluster.json" ] || die "the cluster rig is not up"
  NODE_COUNT_RECORDED=$(recorded_nodes | wc -l)
  for n in $(recorded_nodes); do holder "$n" >/dev/null || cmd_node on "$n"; done
  wait_until 60 "every node online" pacemaker_ready "$NODE_COUNT_RECORDED" || die "not every node came online"
  restore_nodes
  restore_configuration
  heal_cluster 17 postgres-clone pgsql-17 "${SOURCE_NODES[@]}"
  heal_cluster 18 postgres-clone-18 pgsql-18 "${TARGET_NODES[@]}"
  on_node "$(live_node)" crm_resource --cleanup >/dev/null 2>&1 || true
  wait_until 90 "both clusters promoted with a standby and every address started" resources_ready || die "resources did not come back"
  writable_again postgres-clone
  writable_again postgres-clone-18
  say "healed: every node on, both clusters with a primary and a streaming standby, the rig's addresses and constraints only"
}

case ${1:-} in
  __node-init) node_init "$2" "$3" ;;
  __client-init) client_init ;;
  __bridge-init) bridge_init ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  node)
    NODE_COUNT_RECORDED=$(recorded_nodes | wc -l)
    cmd_node "${2:-}" "${3:-}"
    ;;
  heal) cmd_heal ;;
  exec)
    shift
    n=${1:-}
    shift || true
    [ $# -gt 0 ] || die "usage: scripts/rig.sh cluster exec NODE COMMAND..."
    h=$(holder "$n") || die "node $n is off"
    exec nsenter -t "$h" -n -m -u -i -- "$@"
    ;;
  client)
    shift
    [ $# -gt 0 ] || die "usage: scripts/rig.sh cluster client COMMAND..."
    h=$(client_holder) || die "the client namespace is not running"
    exec nsenter -t "$h" -n -m -u -- "$@"
    ;;
  install-agent)
    # A new file in each node's view (the running agents keep the old one).
    copy_agent
    for n in $(recorded_nodes); do
      h=$(holder "$n") || continue
      nsenter -t "$h" -m -- rm -f /usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate
      nsenter -t "$h" -m -- cp "$CDIR/bin/pgtwin-migrate" /usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate
    done
    ;;
  *) die "usage: scripts/rig.sh cluster up|down|status|heal|node off|on NODE|exec NODE CMD...|client CMD...|install-agent" ;;
esac
