/**
 * Clients of the cluster rig (and of benchmarks): the writer load
 * (writer.mjs) and pgbench (pgbench-loop.mjs) started as their own processes,
 * optionally inside another network namespace (the rig's client namespace),
 * ended by PID; and the checks over what they recorded:
 *
 * - writerProblems: every acknowledged write present exactly once on a server
 *   (inserts, the last update, deletes, transactions all-or-nothing, counters),
 *   writes refused never there, writes in doubt there at most once;
 * - twoWritableClusters: acknowledged writes of two clusters that overlap in
 *   time (one cluster acknowledged a write sent after the other had already
 *   acknowledged one): a split brain as the clients saw it;
 * - outages: per database, the longest time from a failed attempt to the next
 *   acknowledged write;
 * - pgbenchProblems: the TPC-B balance invariant and pgbench_history against
 *   the transactions pgbench reported committed.
 *
 * Plain JavaScript so that bench/*.mjs can use it as well; types in clients.d.mts.
 */
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The writer's tables, created in every database on both clusters (the target gets no rows). */
export const WRITER_SCHEMA = `
  CREATE TABLE w_items (id bigserial PRIMARY KEY, token uuid NOT NULL, worker int NOT NULL, payload text NOT NULL);
  CREATE INDEX w_items_token ON w_items (token);
  CREATE TABLE w_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, token uuid NOT NULL, counter int NOT NULL);
  CREATE INDEX w_events_token ON w_events (token);
  CREATE TABLE w_log (id bigserial PRIMARY KEY, token uuid NOT NULL, note text NOT NULL);
  CREATE INDEX w_log_token ON w_log (token);
  CREATE TABLE w_counters (key int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);`;

/** Rows the writer's transactions count on (source only: they are copied). */
export const WRITER_SEED = 'INSERT INTO w_counters (key) SELECT g FROM generate_series(0, 15) g';

/** pgbench_history has no primary key, and the agent's pre-flight refuses such a table (publishing it would break UPDATE/DELETE on production): give it one. */
export const PGBENCH_HISTORY_KEY = 'ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY';

function startProcess(script, cfg, opts) {
  rmSync(cfg.out, { force: true });
  const argv = [process.execPath, join(HERE, script), JSON.stringify(cfg)];
  const [cmd, ...args] = opts.namespacePid ? ['nsenter', '-t', String(opts.namespacePid), '-n', '-m', '-u', '--', ...argv] : argv;
  const child = spawn(cmd, args, {
    env: { ...process.env, PGPASSWORD: opts.password ?? process.env.PGPASSWORD ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return {
    pid: child.pid,
    /** The records so far (the file is appended to line by line). */
    records: () => readJsonl(cfg.out),
    async stop(timeoutMs = 60_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(timer);
      if (r.code !== 0) throw new Error(`${script} ended with ${r.code ?? r.signal}: ${stderr}`);
      return readJsonl(cfg.out);
    },
  };
}

export function readJsonl(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

/** Starts the writer; opts.namespacePid: a process whose network namespace it runs in. */
export function startWriter(cfg, opts = {}) {
  return startProcess('writer.mjs', { workers: 1, ratePerWorker: 20, ...cfg }, opts);
}

export function startPgbench(cfg, opts = {}) {
  return startProcess('pgbench-loop.mjs', { clients: 2, segmentSeconds: 2, ...cfg }, opts);
}

const isWrite = (r) => r.op !== 'connect';

/** The rows the checks compare against, read with `query(sql)` from one database of one server. */
export async function readWriterRows(query) {
  const [items, events, log, counters] = await Promise.all([
    query('SELECT token::text AS token, payload FROM w_items'),
    query('SELECT token::text AS token FROM w_events'),
    query('SELECT token::text AS token FROM w_log'),
    query('SELECT key, n::text AS n FROM w_counters'),
  ]);
  return { items, events, log, counters };
}

function tally(rows) {
  const m = new Map();
  for (const r of rows) m.set(r.token, (m.get(r.token) ?? 0) + 1);
  return m;
}

/**
 * Problems found comparing the writer's records for one database with the
 * rows of one server (an empty list: every acknowledged write is there
 * exactly once, nothing refused is there, nothing in doubt is there twice).
 */
export function writerProblems(records, db, rows) {
  const problems = [];
  const mine = records.filter((r) => r.db === db && isWrite(r)).sort((a, b) => a.worker - b.worker || a.seq - b.seq);
  const items = tally(rows.items);
  const payloadOf = new Map(rows.items.map((r) => [r.token, r.payload]));
  const events = tally(rows.events);
  const log = tally(rows.log);
  const say = (p) => problems.length < 50 && problems.push(`${db}: ${p}`);
  for (const [t, n] of [...items, ...events, ...log]) if (n > 1) say(`token ${t} is there ${n} times`);
  /** Per item: present (true/false/undefined = in doubt), and the payloads it may have now. */
  const state = new Map();
  for (const r of mine) {
    if (r.op === 'insert') {
      if (r.ok) state.set(r.token, { present: true, payloads: [r.payload] });
      else if (r.ambiguous) state.set(r.token, { present: undefined, payloads: [r.payload] });
      else if (items.has(r.token)) say(`insert ${r.token} was refused (${r.sqlstate}) but is there`);
    } else if (r.op === 'update') {
      const s = state.get(r.token);
      if (r.ok && r.rowCount !== 1) say(`update of acknowledged item ${r.token} found ${r.rowCount} rows on ${r.server?.name}`);
      if (!s) continue;
      if (r.ok) s.payloads = [r.payload];
      else if (r.ambiguous) s.payloads = [...s.payloads, r.payload];
    } else if (r.op === 'delete') {
      const s = state.get(r.token);
      if (r.ok && r.rowCount !== 1) say(`delete of acknowledged item ${r.token} found ${r.rowCount} rows on ${r.server?.name}`);
      if (!s) continue;
      if (r.ok) s.present = false;
      else if (r.ambiguous) s.present = s.present === false ? false : undefined;
    } else if (r.op === 'tx') {
      const e = events.get(r.token) ?? 0;
      const l = log.get(r.token) ?? 0;
      if (r.ok && (e !== 1 || l !== 1)) say(`acknowledged transaction ${r.token}: ${e} event and ${l} log rows, not 1 and 1`);
      if (!r.ok && !r.ambiguous && (e !== 0 || l !== 0)) say(`refused transaction ${r.token} (${r.sqlstate}) left ${e} event and ${l} log rows`);
      if (r.ambiguous && e !== l) say(`transaction in doubt ${r.token} is half there: ${e} event, ${l} log rows`);
    }
  }
  for (const [token, s] of state) {
    const n = items.get(token) ?? 0;
    if (s.present === true && n !== 1) say(`acknowledged item ${token} is there ${n} times`);
    if (s.present === false && n !== 0) say(`deleted item ${token} is still there`);
    if (n === 1 && !s.payloads.includes(payloadOf.get(token))) say(`item ${token} reads ${payloadOf.get(token)}, not its last acknowledged ${s.payloads[0]}`);
  }
  const acked = new Map();
  const doubt = new Map();
  for (const r of mine.filter((x) => x.op === 'tx')) {
    if (r.ok) acked.set(r.key, (acked.get(r.key) ?? 0) + 1);
    else if (r.ambiguous) doubt.set(r.key, (doubt.get(r.key) ?? 0) + 1);
  }
  for (const c of rows.counters) {
    const n = Number(c.n);
    const lo = acked.get(c.key) ?? 0;
    const hi = lo + (doubt.get(c.key) ?? 0);
    if (n < lo || n > hi) say(`counter ${c.key} is ${n}, acknowledged transactions say ${lo}..${hi}`);
  }
  return problems;
}

/** How many writes of each kind: acknowledged, refused, in doubt, per cluster (system_identifier). */
export function writerSummary(records) {
  const s = { attempts: 0, acknowledged: 0, refused: 0, inDoubt: 0, connectFailures: 0, byCluster: {} };
  for (const r of records) {
    if (!isWrite(r)) {
      s.connectFailures++;
      continue;
    }
    s.attempts++;
    if (r.ok) {
      s.acknowledged++;
      const k = r.server?.sysid ?? '?';
      s.byCluster[k] = (s.byCluster[k] ?? 0) + 1;
    } else if (r.ambiguous) s.inDoubt++;
    else s.refused++;
  }
  return s;
}

/**
 * Writes acknowledged by two clusters at overlapping times. Clusters are taken
 * in the order of their first acknowledged write; a write acknowledged by an
 * earlier cluster that was sent after a later cluster had acknowledged one
 * proves both took writes at once. (One hand-over per run; a failback would be
 * a second one.)
 */
export function twoWritableClusters(records) {
  const acked = records.filter((r) => r.ok && isWrite(r));
  const byCluster = new Map();
  for (const r of acked) {
    const k = r.server.sysid;
    if (!byCluster.has(k)) byCluster.set(k, []);
    byCluster.get(k).push(r);
  }
  const order = [...byCluster.entries()].sort((a, b) => Math.min(...a[1].map((r) => r.doneAt)) - Math.min(...b[1].map((r) => r.doneAt)));
  const problems = [];
  for (let i = 0; i + 1 < order.length; i++) {
    const [earlier, early] = order[i];
    for (const [later, late] of order.slice(i + 1)) {
      const firstLater = late.reduce((m, r) => (r.doneAt < m.doneAt ? r : m));
      const overlap = early.filter((r) => r.sentAt > firstLater.doneAt);
      if (overlap.length > 0) {
        const w = overlap[0];
        problems.push(`${overlap.length} write(s) acknowledged by cluster ${earlier} (${w.server.name}, ${w.db}, sent ${new Date(w.sentAt).toISOString()}) after cluster ${later} (${firstLater.server.name}) had acknowledged one at ${new Date(firstLater.doneAt).toISOString()}`);
      }
    }
  }
  return problems;
}

/**
 * Per database, the longest outage the writer saw: from the first failed
 * attempt (refused, lost, no connection) after an acknowledged write to the
 * next acknowledged write.
 */
export function outages(records) {
  const out = [];
  for (const db of [...new Set(records.map((r) => r.db))].sort()) {
    const rs = records.filter((r) => r.db === db).sort((a, b) => a.sentAt - b.sentAt);
    let failedSince;
    let worst = { db, ms: 0, from: undefined, to: undefined };
    for (const r of rs) {
      if (!r.ok) {
        failedSince ??= r.sentAt;
      } else if (failedSince !== undefined) {
        if (r.doneAt - failedSince > worst.ms) worst = { db, ms: r.doneAt - failedSince, from: failedSince, to: r.doneAt };
        failedSince = undefined;
      }
    }
    if (failedSince !== undefined) worst = { db, ms: Infinity, from: failedSince, to: undefined };
    out.push(worst);
  }
  return out;
}

/** pgbench's committed transactions, transactions in doubt and the longest gap between two commits. */
export function pgbenchSummary(lines) {
  const tx = lines.filter((l) => l.kind === 'tx').sort((a, b) => a.doneAt - b.doneAt);
  const segments = lines.filter((l) => l.kind === 'segment');
  let gap = { ms: 0, from: undefined, to: undefined };
  for (let i = 1; i < tx.length; i++) {
    const d = tx[i].doneAt - tx[i - 1].doneAt;
    if (d > gap.ms) gap = { ms: d, from: tx[i - 1].doneAt, to: tx[i].doneAt };
  }
  const killed = segments.filter((s) => s.killed).length;
  return { committed: tx.length, inDoubt: segments.reduce((n, s) => n + s.aborted, 0), segments: segments.length, killed, longestGap: gap };
}

export const PGBENCH_STATE_SQL = `SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts)::text AS accounts,
  (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches)::text AS branches,
  (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers)::text AS tellers,
  (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS history,
  (SELECT count(*) FROM pgbench_history)::text AS transactions`;

/**
 * TPC-B's invariant on one server (the balances of accounts, tellers and
 * branches and the sum of history all agree) and pgbench_history against
 * what pgbench reported: at least every committed transaction, at most those
 * plus the ones in doubt. `before`: history rows before the run.
 */
export function pgbenchProblems(lines, state, before = 0) {
  const s = pgbenchSummary(lines);
  const problems = [];
  const sums = [state.accounts, state.branches, state.tellers, state.history];
  if (new Set(sums).size !== 1) problems.push(`TPC-B balances disagree: accounts ${state.accounts}, branches ${state.branches}, tellers ${state.tellers}, history ${state.history}`);
  const n = Number(state.transactions) - before;
  if (n < s.committed) problems.push(`pgbench_history has ${n} transactions of the run, pgbench reported ${s.committed} committed`);
  // A killed segment's log is lost: what it committed is unknown, so there is no upper bound then.
  if (s.killed === 0 && n > s.committed + s.inDoubt) problems.push(`pgbench_history has ${n} transactions of the run, more than ${s.committed} committed + ${s.inDoubt} in doubt`);
  return problems;
}
