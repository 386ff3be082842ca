#!/usr/bin/env bash
# make demo: a whole migration on this machine. Local PostgreSQL 17 (source)
# and 18 (target) and a single-node Pacemaker (scripts/rig.sh), three
# databases with sample data, the agent configured with `crm configure`,
# status while the copy runs, the cutover under a small write load, and what
# happened. `make demo-down` (scripts/demo.sh down) removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RIG_DIR=${PGTWIN_RIG_DIR:-/var/tmp/pgtwin-rig}
ID=migration-forward
DBS=(shop analytics "crm-eu")
AGENT=/usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate
HOME_DIR=$RIG_DIR/demo-home

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -h "$RIG_DIR/run/pg$1" -p "$(port "$1")" -U postgres -d "$2" "${@:3}"; }
port() { node -e "console.log(require('$RIG_DIR/rig.json').servers.pg$1.port)"; }

down() {
  if [ -f "$RIG_DIR/rig.json" ]; then
    "$AGENT" teardown --resource "$ID" --yes >/dev/null 2>&1 || true
    crm_resource --resource "$ID" --meta --set-parameter target-role --parameter-value Stopped >/dev/null 2>&1 || true
    sleep 2
    cibadmin --delete --xml-text "<primitive id=\"$ID\"/>" >/dev/null 2>&1 || true
  fi
  scripts/rig.sh down
  rm -rf "$HOME_DIR"
  echo "demo removed: servers and Pacemaker stopped, databases and cluster configuration gone"
}

if [ "${1:-}" = down ]; then
  down
  exit 0
fi

say "Starting PostgreSQL 17 (source) and 18 (target) and a single-node Pacemaker"
scripts/rig.sh up
mkdir -p "$HOME_DIR"
SRC=$(port 17)
TGT=$(port 18)

say "Loading sample data into ${#DBS[@]} databases on PostgreSQL 17 (${DBS[*]})"
for db in "${DBS[@]}"; do
  for v in 17 18; do
    sql "$v" postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" 2>/dev/null
    sql "$v" "$db" <<'SQL'
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer bigint NOT NULL REFERENCES customers,
                     amount numeric(12,2) NOT NULL, note text, created timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_customer ON orders (customer);
SQL
  done
  sql 17 "$db" <<'SQL'
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 50000) g;
INSERT INTO orders (customer, amount, note) SELECT 1 + g % 50000, (g % 997) / 10.0, md5(g::text) FROM generate_series(1, 400000) g;
SQL
done

say "Configuring the migration as a Pacemaker primitive"
databases=$(IFS=,; echo "${DBS[*]}")
cat <<EOF
crm configure primitive $ID ocf:heartbeat:pgtwin-migrate params \\
    databases="$databases" source_cluster=postgres-clone target_cluster=postgres-clone-18 \\
    source_replication_vip=127.0.0.1 target_replication_vip=127.0.0.1 \\
    production_vip_resource=postgres-vip target_vip_resource=postgres-vip-18 \\
    source_pgport=$SRC target_pgport=$TGT source_pghome=$HOME_DIR target_pghome=$HOME_DIR \\
    source_pgpassfile=$RIG_DIR/agent.pgpass target_pgpassfile=$RIG_DIR/agent.pgpass \\
    op start timeout=600s interval=0s op stop timeout=60s interval=0s op monitor timeout=30s interval=10s
EOF
crm configure primitive "$ID" ocf:heartbeat:pgtwin-migrate params \
  databases="$databases" source_cluster=postgres-clone target_cluster=postgres-clone-18 \
  source_replication_vip=127.0.0.1 target_replication_vip=127.0.0.1 \
  production_vip_resource=postgres-vip target_vip_resource=postgres-vip-18 \
  source_pgport="$SRC" target_pgport="$TGT" source_pghome="$HOME_DIR" target_pghome="$HOME_DIR" \
  source_pgpassfile="$RIG_DIR/agent.pgpass" target_pgpassfile="$RIG_DIR/agent.pgpass" \
  op start timeout=600s interval=0s op stop timeout=60s interval=0s op monitor timeout=30s interval=10s \
  2>&1 | grep -v 'Blind faith' || true

say "Initial copy: pgtwin-migrate status while it runs"
for _ in $(seq 1 150); do
  json=$("$AGENT" status --resource "$ID" --json 2>/dev/null || true)
  state=$(node -e 'try{const r=JSON.parse(process.argv[1]);console.log(r.phase==="not started"?"starting":r.databases.every(d=>d.state==="streaming")?"ready":"copying")}catch{console.log("starting")}' "$json")
  if [ "$state" != starting ]; then "$AGENT" status --resource "$ID" 2>/dev/null || true; fi
  [ "$state" = ready ] && break
  sleep 2
done

say "Pacemaker's view (crm_mon -A1): the migration's node attributes"
sleep 11
crm_mon -A1 | sed -n '/Node Attributes/,$p'

say "Cutover under a write load of about 20 writes/s per database (the writers follow the production address)"
node scripts/demo-writer.mjs "$RIG_DIR" "${DBS[@]}" > "$HOME_DIR/writer.json" &
writer=$!
sleep 3
"$AGENT" cutover --resource "$ID" --wait --wait-seconds 300

say "Phase reverse: production on PostgreSQL 18, the way back watched (the resource keeps running)"
"$AGENT" status --resource "$ID" 2>/dev/null || true
echo
echo "DDL on the target reaches the source by reverse replication:"
sql 18 "${DBS[0]}" -c "ALTER TABLE customers ADD COLUMN segment text"
for _ in $(seq 1 100); do
  [ "$(sql 17 "${DBS[0]}" -At -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'segment'")" = 1 ] && break
  sleep 0.2
done
sql 17 "${DBS[0]}" -At -c "SELECT '  source: customers.segment exists: ' || (count(*) = 1) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'segment'"
echo "A client that bypasses the production address and writes to the old source is refused:"
sql 17 "${DBS[0]}" -c "INSERT INTO customers (name) VALUES ('bypass')" 2>&1 | sed 's/^/  /' || true

say "Failback: the same atomic operation back to PostgreSQL 17 (forward replication again, no copy)"
"$AGENT" failback --resource "$ID" --wait --wait-seconds 300

say "Cutover again"
"$AGENT" cutover --resource "$ID" --wait --wait-seconds 300
sleep 2
kill -INT "$writer"
wait "$writer" || true

say "What happened"
node - "$HOME_DIR/writer.json" <<'EOF'
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
console.log(`writes acknowledged: ${r.ok} (on PostgreSQL 17: ${r.okSource}, on 18: ${r.okTarget}); refused while the address moved: ${r.refused}`);
console.log(`the writers saw writes unavailable ${r.gapsMs.length} time(s), for ${r.gapsMs.map((g) => `${g} ms`).join(', ')} (first refused write to the next accepted one)`);
EOF
for db in "${DBS[@]}"; do
  s=$(sql 17 "$db" -At -c "SELECT count(*) FROM orders")
  t=$(sql 18 "$db" -At -c "SELECT count(*) FROM orders")
  printf '  %-10s orders on the source: %s, on the target: %s %s\n' "$db" "$s" "$t" "$([ "$s" = "$t" ] && echo '(equal)' || echo '(DIFFERENT)')"
done
echo
echo "The proof of each switch (pgtwin-migrate status --proof; --json for the whole record):"
"$AGENT" status --resource "$ID" --proof 2>/dev/null || true

say "Finish: the way back removed from both clusters, the resource stops"
"$AGENT" finish --resource "$ID" --yes | tail -3
sleep 3
crm_mon -1 | grep -E "$ID|postgres-vip" || true
echo
"$AGENT" status --resource "$ID" 2>/dev/null | sed -n '/^history:/,/^DATABASE/p' | grep -v '^DATABASE' || true
echo
echo "Logs: cutover logs $HOME_DIR/.pgtwin_migrate_cutover-*.log"
echo "      Pacemaker log $RIG_DIR/logs/pacemaker.log (grep pgtwin-migrate)"
echo
echo "Tear everything down with: make demo-down"
