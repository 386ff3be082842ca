// Shared helpers of the benchmarks: the rig's servers, databases, the agent.
import { readFileSync, mkdtempSync } from 'node:fs';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { XMLParser } from 'fast-xml-parser';

export const REPO = resolve(new URL('..', import.meta.url).pathname);
export const AGENT = `${REPO}/dist/pgtwin-migrate`;
export const rig = () => JSON.parse(readFileSync(`${process.env.PGTWIN_RIG_DIR ?? '/var/tmp/pgtwin-rig'}/rig.json`, 'utf8'));

export async function admin(server, database = 'postgres') {
  const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database });
  c.on('error', () => {});
  await c.connect();
  return c;
}

export async function sql(server, database, text, values = []) {
  const c = await admin(server, database);
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

const ident = (n) => `"${n.replace(/"/g, '""')}"`;

export async function recreateDatabases(server, names) {
  const c = await admin(server);
  try {
    for (const n of names) {
      await c.query(`DROP DATABASE IF EXISTS ${ident(n)} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${ident(n)}`);
    }
  } finally {
    await c.end();
  }
}

export async function dropDatabases(server, names) {
  const c = await admin(server);
  try {
    for (const n of names) await c.query(`DROP DATABASE IF EXISTS ${ident(n)} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

/** Agent parameters for a migration of `databases` between the rig's 17 and 18. */
export function migration(instance, databases, extra = {}) {
  const r = rig();
  const home = mkdtempSync(join(tmpdir(), `pgtwin-bench-${instance}-`));
  const rscTmp = mkdtempSync(join(tmpdir(), `pgtwin-bench-rsc-${instance}-`));
  const params = {
    databases: databases.join(','),
    source_cluster: 'postgres-clone',
    target_cluster: 'postgres-clone-18',
    source_replication_vip: '127.0.0.1',
    target_replication_vip: '127.0.0.1',
    source_pgport: String(r.servers.pg17.port),
    target_pgport: String(r.servers.pg18.port),
    source_pgpassfile: r.agentPgpass,
    target_pgpassfile: r.agentPgpass,
    source_pghome: home,
    target_pghome: home,
    ...extra,
  };
  // As Pacemaker's controller runs an action: it names the node the action runs on.
  const onNode = execFileSync('crm_node', ['--name'], { encoding: 'utf8' }).trim();
  const env = { ...process.env, OCF_ROOT: '/usr/lib/ocf', OCF_RESOURCE_INSTANCE: instance, HA_RSCTMP: rscTmp, OCF_RESKEY_CRM_meta_timeout: '600000', OCF_RESKEY_CRM_meta_on_node: onNode };
  for (const [k, v] of Object.entries(params)) env[`OCF_RESKEY_${k}`] = v;
  return { instance, databases, params, env, home };
}

const xmlAttr = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');

/**
 * Registers the migration as a Pacemaker resource (stopped: the bench drives
 * the agent itself), so the agent finds its resource as in production, where
 * the cutover's live record is kept.
 */
export function registerResource(m) {
  const id = xmlAttr(m.instance);
  const params = Object.entries(m.params)
    .map(([k, v]) => `<nvpair id="${id}-p-${xmlAttr(k)}" name="${xmlAttr(k)}" value="${xmlAttr(v)}"/>`)
    .join('');
  const xml =
    `<primitive id="${id}" class="ocf" provider="heartbeat" type="pgtwin-migrate">` +
    `<instance_attributes id="${id}-params">${params}</instance_attributes>` +
    `<meta_attributes id="${id}-meta"><nvpair id="${id}-meta-target-role" name="target-role" value="Stopped"/></meta_attributes></primitive>`;
  execFileSync('cibadmin', ['--create', '--scope', 'resources', '--xml-text', xml]);
}

export function unregisterResource(m) {
  try {
    execFileSync('cibadmin', ['--delete', '--xml-text', `<primitive id="${xmlAttr(m.instance)}"/>`]);
    execFileSync('crm_resource', ['--cleanup', '--resource', m.instance], { stdio: 'ignore' });
  } catch {
    // not registered
  }
}

/** Runs the agent like Pacemaker does; resolves with code, output and wall time (spawn to exit). */
export function runAgent(m, args, extraEnv = {}) {
  const t0 = process.hrtime.bigint();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(AGENT, args, { env: { ...m.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
  });
}

/** Waits until every table of every subscription is synchronised ('r'); pg_subscription_rel is per database. */
export async function waitSynchronised(server, databases, timeoutMs = 3_600_000) {
  const until = Date.now() + timeoutMs;
  const pending = new Set(databases);
  while (pending.size > 0) {
    for (const db of [...pending]) {
      const rows = await sql(
        server,
        db,
        `SELECT count(*) FILTER (WHERE r.srsubstate <> 'r')::int AS waiting, count(*)::int AS total
           FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
          WHERE s.subname LIKE 'pgtwin_migrate_forward_sub%' AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      if (rows[0].total > 0 && rows[0].waiting === 0) pending.delete(db);
    }
    if (pending.size === 0) return;
    if (Date.now() > until) throw new Error(`tables not synchronised in time: ${[...pending].join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function teardown(m) {
  await runAgent(m, ['teardown', '--yes', '--force']);
  await runAgent(m, ['stop']);
}

/** The migration's record: its crm_config property set and the live meta attribute set on its resource. */
export function cibRecord(instance) {
  const xml = execFileSync('cibadmin', ['--query', '--scope', 'configuration'], { encoding: 'utf8' });
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => ['cluster_property_set', 'nvpair', 'primitive', 'meta_attributes'].includes(name) });
  const conf = parser.parse(xml).configuration;
  const property = (conf?.crm_config?.cluster_property_set ?? []).find((s) => s.id === `pgtwin-migrate-${instance}`);
  const live = (conf?.resources?.primitive ?? []).flatMap((p) => p.meta_attributes ?? []).find((s) => s.id === `pgtwin-migrate-${instance}-live`);
  return Object.fromEntries([...(property?.nvpair ?? []), ...(live?.nvpair ?? [])].map((n) => [n.name, n.value]));
}

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p10: q(0.1), p90: q(0.9), n: s.length };
}

export const fmt = (ms) => `${(ms / 1000).toFixed(3)} s`;

/**
 * `node bench/<name>.mjs --cluster`: the same benchmark on the cluster rig
 * (bench/cluster.ts, a vitest project that brings that rig up and down);
 * returns its exit status.
 */
export function onClusterRig(name) {
  const r = spawnSync('npx', ['vitest', 'run', '--project', 'bench-cluster'], {
    cwd: REPO,
    stdio: 'inherit',
    env: { ...process.env, BENCH: name, PGTWIN_TEST_REPORT: `${REPO}/dist/bench-cluster.json` },
  });
  return r.status ?? 1;
}
