#!/usr/bin/env bash
# The test rig: real PostgreSQL 15 (Debian), 17 and 18 (npm) servers run by an
# unprivileged user, and a real single-node Pacemaker with the stand-ins the
# agent expects. Every process it starts is recorded by PID and ended by PID.
#
#   scripts/rig.sh deps            install the Debian packages the rig needs
#   scripts/rig.sh up              (re)start everything; leftovers are ended first
#   scripts/rig.sh down            end everything this rig started
#   scripts/rig.sh status          what is running
#   scripts/rig.sh standby up|down [17|18]  a streaming standby of the PG17 source (or the PG18 target)
#   scripts/rig.sh cluster ...     the multi-node cluster rig (scripts/cluster-rig.sh)
#
# Facts for tests go to $RIG_DIR/rig.json.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG_DIR=${PGTWIN_RIG_DIR:-/var/tmp/pgtwin-rig}
RIG_USER=${PGTWIN_RIG_USER:-pgtwinrig}
PORT_BASE=${PGTWIN_RIG_PORT_BASE:-54300}
NODE=$(uname -n)
OCF_DIR=/usr/lib/ocf/resource.d
FIXTURE_PROVIDER=pgtwin-test
# rpm and cpio: rpmbuild for the RPM packaging test, cpio to unpack what it built.
APT_PACKAGES=(pacemaker pacemaker-cli-utils corosync crmsh resource-agents libxml2-utils
  postgresql-15 postgresql-client-15 man-db hyperfine rpm cpio)

say() { printf 'rig: %s\n' "$*" >&2; }
die() { printf 'rig: error: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (the rig creates a user and starts Pacemaker)"; }

# ---------------------------------------------------------------- packages
cmd_deps() {
  need_root
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

# ---------------------------------------------------------------- processes
pidfile() { printf '%s/pids/%s.pid' "$RIG_DIR" "$1"; }

# Ends a recorded process only when the PID still runs the program we started.
end_pid() {
  local name=$1 expect=$2 wait_s=${3:-30} f pid
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$expect"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((wait_s * 10))); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then say "$name ($pid) did not stop; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# ---------------------------------------------------------------- PostgreSQL
pg_bindir() {
  case $1 in
    15) echo /usr/lib/postgresql/15/bin ;;
    17 | 18) echo "$RIG_DIR/pg$1/bin" ;;
  esac
}

ensure_user() {
  id "$RIG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$RIG_DIR/home" --shell /usr/sbin/nologin "$RIG_USER"
  mkdir -p "$RIG_DIR/home" "$RIG_DIR/pids" "$RIG_DIR/run" "$RIG_DIR/data" "$RIG_DIR/logs"
  chmod 0755 "$RIG_DIR"
  chown "$RIG_USER:" "$RIG_DIR/home" "$RIG_DIR/run" "$RIG_DIR/data" "$RIG_DIR/logs"
  chmod 0700 "$RIG_DIR/home"
}

# The npm builds live under node_modules, which may sit in a 0700 home: copy
# them where the unprivileged server user can read them.
ensure_binaries() {
  local v src stamp
  for v in 17 18; do
    src="$REPO/node_modules/pg$v/native"
    [ -x "$src/bin/postgres" ] || die "$src/bin/postgres missing; run npm ci first"
    stamp=$(stat -c %Y "$src/bin/postgres")
    if [ "$(cat "$RIG_DIR/pg$v/.stamp" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$RIG_DIR/pg$v"
      cp -a "$src" "$RIG_DIR/pg$v"
      echo "$stamp" >"$RIG_DIR/pg$v/.stamp"
    fi
    chmod -R a+rX "$RIG_DIR/pg$v"
  done
  [ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 missing; run scripts/rig.sh deps"
}

as_user() { runuser -u "$RIG_USER" -- env HOME="$RIG_DIR/home" "$@"; }

write_password_files() {
  local pw
  if [ ! -s "$RIG_DIR/migration.password" ]; then
    pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && printf '%s' "$pw" >"$RIG_DIR/migration.password")
  fi
  pw=$(cat "$RIG_DIR/migration.password")
  # The agent's own connections (runs as root).
  (umask 077 && printf '*:*:*:pgmigrate:%s\n' "$pw" >"$RIG_DIR/agent.pgpass")
  # The servers' file: subscriptions log in to their publisher from inside the server.
  (umask 077 && printf '*:*:*:pgmigrate:%s\n' "$pw" >"$RIG_DIR/home/.pgpass")
  chown "$RIG_USER:" "$RIG_DIR/home/.pgpass"
}

init_cluster() {
  local v=$1 port=$2 listen=$3 data="$RIG_DIR/data/pg$1" bin
  bin=$(pg_bindir "$v")
  rm -rf "$data"
  as_user "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  # A socket lock file left by an earlier rig's server (killed, or in another
  # PID namespace) would stop the new one if its PID happens to be taken.
  rm -rf "$RIG_DIR/run/pg$v"
  mkdir -p "$RIG_DIR/run/pg$v"
  chown "$RIG_USER:" "$RIG_DIR/run/pg$v"
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$RIG_DIR/run/pg$v'
wal_level = logical
max_connections = 400
max_replication_slots = 450
max_wal_senders = 250
max_worker_processes = 260
max_logical_replication_workers = 240
max_sync_workers_per_subscription = 2
wal_keep_size = 256MB
shared_buffers = 32MB
fsync = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
password_encryption = scram-sha-256
EOF
  # PostgreSQL 18 limits active replication origins (one per apply or sync worker) separately.
  if [ "$v" -ge 18 ]; then echo 'max_active_replication_origins = 450' >>"$data/postgresql.conf"; fi
}

start_cluster() {
  local v=$1 data="$RIG_DIR/data/pg$1" bin
  bin=$(pg_bindir "$v")
  as_user env PGPASSFILE="$RIG_DIR/home/.pgpass" "$bin/pg_ctl" -D "$data" -l "$RIG_DIR/logs/pg$v.log" -w -t 60 start >/dev/null
  head -1 "$data/postmaster.pid" >"$(pidfile "pg$v")"
}

stop_cluster() {
  local v=$1 data="$RIG_DIR/data/pg$1" bin
  bin=$(pg_bindir "$v")
  if [ -f "$data/postmaster.pid" ] && [ -x "$bin/pg_ctl" ]; then
    as_user "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  end_pid "pg$v" postgres 10
}

psql_as_admin() {
  local v=$1
  shift
  as_user psql -X -q -v ON_ERROR_STOP=1 -h "$RIG_DIR/run/pg$v" -p "$(port_of "$v")" -U postgres -d postgres "$@"
}

port_of() {
  case $1 in
    standby) echo $((PORT_BASE + 17)) ;;
    *) echo $((PORT_BASE + $1)) ;;
  esac
}

create_migration_user() {
  local v=$1 pw
  pw=$(cat "$RIG_DIR/migration.password")
  psql_as_admin "$v" -v pw="$pw" >/dev/null <<'EOF'
SELECT format('CREATE ROLE pgmigrate LOGIN SUPERUSER REPLICATION PASSWORD %L', :'pw') \gexec
EOF
}

# ---------------------------------------------------------------- Pacemaker
write_corosync_conf() {
  mkdir -p "$RIG_DIR/corosync"
  cat >"$RIG_DIR/corosync/corosync.conf" <<EOF
totem {
  version: 2
  cluster_name: pgtwin-rig
  transport: knet
  crypto_cipher: none
  crypto_hash: none
}
nodelist {
  node {
    name: $NODE
    nodeid: 1
    ring0_addr: 127.0.0.1
  }
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: no
  to_logfile: yes
  logfile: $RIG_DIR/logs/corosync.log
  to_syslog: no
}
EOF
}

# load-threshold 2000%: under the benchmarks' load (writers, both servers and
# Pacemaker on two cores) the controller would throttle to one action at a
# time, and the VIP swap's stops and starts would run one after the other.
seed_cib() {
  local cibdir=/var/lib/pacemaker/cib
  mkdir -p "$cibdir"
  rm -f "$cibdir"/cib*
  cat >"$cibdir/cib.xml" <<'EOF'
<cib crm_feature_set="3.0.0" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-cluster-recheck" name="cluster-recheck-interval" value="1min"/>
        <nvpair id="opt-load-threshold" name="load-threshold" value="2000%"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
EOF
  chown hacluster:haclient "$cibdir" "$cibdir/cib.xml"
  chmod 0600 "$cibdir/cib.xml"
}

start_pacemaker() {
  if pgrep -x pacemakerd >/dev/null || pgrep -x corosync >/dev/null; then
    die "a Pacemaker or corosync not started by this rig is running; stop it first"
  fi
  write_corosync_conf
  seed_cib
  corosync -f -c "$RIG_DIR/corosync/corosync.conf" >>"$RIG_DIR/logs/corosync.out" 2>&1 &
  echo $! >"$(pidfile corosync)"
  for _ in $(seq 1 100); do corosync-quorumtool -s >/dev/null 2>&1 && break; sleep 0.1; done
  corosync-quorumtool -s >/dev/null 2>&1 || die "corosync did not reach quorum; see $RIG_DIR/logs/corosync.log"
  PCMK_logfile="$RIG_DIR/logs/pacemaker.log" PCMK_logfacility=none HA_LOGFACILITY=none \
    PATH="$PATH" /usr/sbin/pacemakerd >>"$RIG_DIR/logs/pacemakerd.out" 2>&1 &
  echo $! >"$(pidfile pacemakerd)"
  for _ in $(seq 1 300); do
    crm_mon -1 --output-as=xml 2>/dev/null | grep -q "<node name=\"$NODE\"[^>]*online=\"true\"" && break
    sleep 0.1
  done
  crm_mon -1 --output-as=xml 2>/dev/null | grep -q "online=\"true\"" || die "Pacemaker node $NODE did not come online; see $RIG_DIR/logs/pacemaker.log"
  # Wait for the DC, so that configuration changes are acted on at once.
  for _ in $(seq 1 300); do
    crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<current_dc present="true"' && break
    sleep 0.1
  done
}

stop_pacemaker() {
  local pid children=""
  pid=$(cat "$(pidfile pacemakerd)" 2>/dev/null || true)
  [ -n "$pid" ] && children=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)
  end_pid pacemakerd pacemakerd 60
  # Subdaemons of our pacemakerd, in case it died without taking them down.
  for c in $children; do [ -d "/proc/$c" ] && kill -KILL "$c" 2>/dev/null || true; done
  end_pid corosync corosync 30
  rm -f /var/lib/pacemaker/cib/cib* 2>/dev/null || true
}

# The agent honours its fault-injection hook (PGTWIN_MIGRATE_TEST_PAUSE_AT)
# only where this root-owned marker exists: on a test rig, never in production.
TEST_RIG_MARKER=/run/pgtwin-migrate-test-rig

install_agents() {
  install -m 0644 /dev/null "$TEST_RIG_MARKER"
  mkdir -p "$OCF_DIR/$FIXTURE_PROVIDER"
  install -m 0755 "$REPO/test/fixtures/ocf/VipDummy" "$OCF_DIR/$FIXTURE_PROVIDER/VipDummy"
  if [ -x "$REPO/dist/pgtwin-migrate" ]; then
    install -D -m 0755 "$REPO/dist/pgtwin-migrate" "$OCF_DIR/heartbeat/pgtwin-migrate"
    touch "$RIG_DIR/installed-agent"
  fi
}

remove_agents() {
  rm -f "$TEST_RIG_MARKER"
  rm -rf "${OCF_DIR:?}/$FIXTURE_PROVIDER"
  if [ -f "$RIG_DIR/installed-agent" ]; then
    rm -f "$OCF_DIR/heartbeat/pgtwin-migrate" "$RIG_DIR/installed-agent"
  fi
}

configure_resources() {
  cibadmin --modify --scope resources --xml-text "$(cat <<EOF
<resources>
  <clone id="postgres-clone">
    <meta_attributes id="postgres-clone-meta">
      <nvpair id="postgres-clone-promotable" name="promotable" value="true"/>
      <nvpair id="postgres-clone-promoted-max" name="promoted-max" value="1"/>
      <nvpair id="postgres-clone-clone-max" name="clone-max" value="2"/>
      <nvpair id="postgres-clone-clone-node-max" name="clone-node-max" value="2"/>
      <nvpair id="postgres-clone-globally-unique" name="globally-unique" value="true"/>
    </meta_attributes>
    <primitive id="pg17" class="ocf" provider="pacemaker" type="Stateful">
      <operations>
        <op id="pg17-mon-p" name="monitor" interval="10s" role="Promoted" timeout="20s"/>
        <op id="pg17-mon-u" name="monitor" interval="11s" role="Unpromoted" timeout="20s"/>
      </operations>
    </primitive>
  </clone>
  <clone id="postgres-clone-18">
    <meta_attributes id="postgres-clone-18-meta">
      <nvpair id="postgres-clone-18-promotable" name="promotable" value="true"/>
      <nvpair id="postgres-clone-18-promoted-max" name="promoted-max" value="1"/>
      <nvpair id="postgres-clone-18-clone-max" name="clone-max" value="1"/>
    </meta_attributes>
    <primitive id="pg18" class="ocf" provider="pacemaker" type="Stateful">
      <operations>
        <op id="pg18-mon-p" name="monitor" interval="10s" role="Promoted" timeout="20s"/>
        <op id="pg18-mon-u" name="monitor" interval="11s" role="Unpromoted" timeout="20s"/>
      </operations>
    </primitive>
  </clone>
  <primitive id="postgres-vip" class="ocf" provider="$FIXTURE_PROVIDER" type="VipDummy">
    <instance_attributes id="postgres-vip-params">
      <nvpair id="postgres-vip-ip" name="ip" value="127.0.2.17"/>
      <nvpair id="postgres-vip-journal" name="journal" value="$RIG_DIR/logs/vip-journal.log"/>
    </instance_attributes>
    <operations>
      <op id="postgres-vip-mon" name="monitor" interval="10s" timeout="20s"/>
    </operations>
  </primitive>
  <primitive id="postgres-vip-18" class="ocf" provider="$FIXTURE_PROVIDER" type="VipDummy">
    <instance_attributes id="postgres-vip-18-params">
      <nvpair id="postgres-vip-18-ip" name="ip" value="127.0.2.18"/>
      <nvpair id="postgres-vip-18-journal" name="journal" value="$RIG_DIR/logs/vip-journal.log"/>
    </instance_attributes>
    <operations>
      <op id="postgres-vip-18-mon" name="monitor" interval="10s" timeout="20s"/>
    </operations>
  </primitive>
</resources>
EOF
)" >/dev/null
  cibadmin --modify --scope constraints --xml-text "$(cat <<'EOF'
<constraints>
  <rsc_colocation id="col-vip-with-source-primary" rsc="postgres-vip" with-rsc="postgres-clone" with-rsc-role="Promoted" score="INFINITY"/>
  <rsc_colocation id="col-vip18-with-target-primary" rsc="postgres-vip-18" with-rsc="postgres-clone-18" with-rsc-role="Promoted" score="INFINITY"/>
</constraints>
EOF
)" >/dev/null
  # One node cannot hold two instances of an anonymous clone, so the source
  # clone is globally unique: one Promoted and one Unpromoted instance, as a
  # two-node cluster would show them.
  # Both clones promoted and both VIPs started before the rig counts as ready.
  local xml
  for _ in $(seq 1 300); do
    xml=$(crm_mon -1 --output-as=xml 2>/dev/null || true)
    if [ "$(grep -c 'role="Promoted"' <<<"$xml")" -ge 2 ] &&
      grep -q 'id="postgres-vip"[^>]*role="Started"' <<<"$xml" &&
      grep -q 'id="postgres-vip-18"[^>]*role="Started"' <<<"$xml" &&
      grep -q 'role="Unpromoted"' <<<"$xml"; then
      return 0
    fi
    sleep 0.1
  done
  die "stand-in resources did not come up; see crm_mon -1"
}

write_facts() {
  local pw_file="$RIG_DIR/agent.pgpass"
  cat >"$RIG_DIR/rig.json" <<EOF
{
  "dir": "$RIG_DIR",
  "node": "$NODE",
  "user": "$RIG_USER",
  "agentPgpass": "$pw_file",
  "serverPgpass": "$RIG_DIR/home/.pgpass",
  "passwordFile": "$RIG_DIR/migration.password",
  "vipJournal": "$RIG_DIR/logs/vip-journal.log",
  "servers": {
    "pg15": { "major": 15, "host": "127.0.0.1", "port": $(port_of 15), "socket": "$RIG_DIR/run/pg15", "bindir": "$(pg_bindir 15)", "data": "$RIG_DIR/data/pg15", "log": "$RIG_DIR/logs/pg15.log" },
    "pg17": { "major": 17, "host": "127.0.0.1", "port": $(port_of 17), "socket": "$RIG_DIR/run/pg17", "bindir": "$(pg_bindir 17)", "data": "$RIG_DIR/data/pg17", "log": "$RIG_DIR/logs/pg17.log" },
    "pg18": { "major": 18, "host": "127.0.0.1", "port": $(port_of 18), "socket": "$RIG_DIR/run/pg18", "bindir": "$(pg_bindir 18)", "data": "$RIG_DIR/data/pg18", "log": "$RIG_DIR/logs/pg18.log" }
  }
}
EOF
}

# ---------------------------------------------------------------- standby
# A streaming standby of the PG17 source (127.0.0.2, application_name
# rig_standby) or of the PG18 target (127.0.0.3, rig_standby18), on its
# primary's port.
standby_address() { if [ "$1" = 18 ]; then echo 127.0.0.3; else echo 127.0.0.2; fi; }
standby_name() { if [ "$1" = 18 ]; then echo rig_standby18; else echo rig_standby; fi; }

cmd_standby_up() {
  local v=${1:-17} data bin port label
  data="$RIG_DIR/data/pg$v-standby"
  bin=$(pg_bindir "$v")
  port=$(port_of "$v")
  cmd_standby_down "$v"
  mkdir -p "$RIG_DIR/run/pg$v-standby" "$data"
  chown "$RIG_USER:" "$RIG_DIR/run/pg$v-standby" "$data"
  chmod 0700 "$data"
  # A non-exclusive base backup by the low-level API: the copy runs inside
  # the session that holds the backup open (psql's \!).
  label="$RIG_DIR/run/pg$v-standby.label"
  psql_as_admin "$v" -At >/dev/null <<EOF
SELECT pg_backup_start('pgtwin-rig-standby', true);
\! tar -C '$RIG_DIR/data/pg$v' --exclude=./postmaster.pid --exclude=./postmaster.opts --exclude='./pg_wal/*' --exclude='./pg_replslot/*' --exclude=./postgresql.auto.conf -cf - . | tar -C '$data' -xf -
\o $label
SELECT labelfile FROM pg_backup_stop(false);
\o
EOF
  as_user cp "$label" "$data/backup_label"
  rm -f "$label"
  mkdir -p "$data/pg_wal"
  chown -R "$RIG_USER:" "$data"
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '$(standby_address "$v")'
unix_socket_directories = '$RIG_DIR/run/pg$v-standby'
hot_standby = on
hot_standby_feedback = on
primary_conninfo = 'host=$RIG_DIR/run/pg$v port=$port user=postgres application_name=$(standby_name "$v")'
EOF
  as_user touch "$data/standby.signal"
  as_user env PGPASSFILE="$RIG_DIR/home/.pgpass" "$bin/pg_ctl" -D "$data" -l "$RIG_DIR/logs/pg$v-standby.log" -w -t 60 start >/dev/null
  head -1 "$data/postmaster.pid" >"$(pidfile "pg$v-standby")"
}

cmd_standby_down() {
  local v=${1:-17} data bin
  data="$RIG_DIR/data/pg$v-standby"
  bin=$(pg_bindir "$v")
  if [ -f "$data/postmaster.pid" ]; then
    as_user "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  end_pid "pg$v-standby" postgres 10
  rm -rf "$data"
}

# ---------------------------------------------------------------- commands
cmd_down() {
  need_root
  [ -d "$RIG_DIR" ] || return 0
  stop_pacemaker
  cmd_standby_down 17 2>/dev/null || true
  cmd_standby_down 18 2>/dev/null || true
  for v in 15 17 18; do stop_cluster "$v" 2>/dev/null || true; done
  remove_agents
  rm -f "$RIG_DIR/rig.json"
}

cmd_up() {
  need_root
  local t0=$SECONDS
  cmd_down
  ensure_user
  ensure_binaries
  write_password_files
  for v in 15 17 18; do init_cluster "$v" "$(port_of "$v")" 127.0.0.1 & done
  wait
  for v in 15 17 18; do start_cluster "$v"; create_migration_user "$v"; done
  install_agents
  start_pacemaker
  configure_resources
  write_facts
  say "ready in $((SECONDS - t0)) s: PostgreSQL 15/17/18 on ports $(port_of 15)/$(port_of 17)/$(port_of 18), Pacemaker node $NODE"
}

cmd_status() {
  local n f
  for f in "$RIG_DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    if [ -d "/proc/$(cat "$f")" ]; then echo "$n: running ($(cat "$f"))"; else echo "$n: gone"; fi
  done
}

case ${1:-} in
  deps) cmd_deps ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  cluster)
    shift
    exec "$REPO/scripts/cluster-rig.sh" "$@"
    ;;
  standby)
    case ${2:-} in
      up) cmd_standby_up "${3:-17}" ;;
      down) cmd_standby_down "${3:-17}" ;;
      *) die "usage: $0 standby up|down [17|18]" ;;
    esac
    ;;
  *) die "usage: $0 deps|up|down|status|standby up|down|cluster up|down|status|..." ;;
esac
