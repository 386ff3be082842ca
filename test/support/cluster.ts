/**
 * The cluster rig (scripts/cluster-rig.sh writes cluster.json) as tests use
 * it: commands on a node (its namespaces, through its holder process), SQL on
 * a node's server (its socket, seen through /proc/<holder>/root), Pacemaker's
 * view, power off and on, the replication path cut, and the migration
 * resource configured as a DBA would (crm on a node).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseXml, findAll, findFirst, byTagId, type XmlElement } from '../../src/cluster/xml';
import { RIG_DIR, REPO } from './rig';
import { waitFor } from './migration';

const exec = promisify(execFile);

export const CLUSTER_DIR = process.env.PGTWIN_CLUSTER_DIR ?? `${RIG_DIR}-cluster`;
export const CLUSTER_JSON = `${CLUSTER_DIR}/cluster.json`;
export const RIG_SCRIPT = `${REPO}/scripts/rig.sh`;
/** The agent as every node sees it. */
export const NODE_AGENT = '/usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate';

export type Side = 'source' | 'target';

export interface ClusterFacts {
  dir: string;
  pids: string;
  nodes: Array<{ name: string; address: string }>;
  client: { address: string };
  port: number;
  pgHome: string;
  socketDir: string;
  psql: string;
  pgbench: string;
  agentPgpass: string;
  passwordFile: string;
  appUser: string;
  fenceAgent: string;
  vips: Record<'production' | 'target' | 'sourceReplication' | 'targetReplication', { resource: string; ip: string }>;
  clusters: Record<Side, { clone: string; primitive: string; major: number; nodes: [string, string]; bindir: string }>;
}

let facts: ClusterFacts | undefined;
export function clusterRig(): ClusterFacts {
  facts ??= JSON.parse(readFileSync(CLUSTER_JSON, 'utf8')) as ClusterFacts;
  return facts;
}

export function password(): string {
  return readFileSync(clusterRig().passwordFile, 'utf8').trim();
}

function liveHolder(file: string, expect: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${clusterRig().pids}/${file}`, 'utf8').trim());
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    // A holder is named after the rig too (pgtwin-cluster-node-n1:<rig dir>).
    return argv0 === `${expect}:${clusterRig().dir}` ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The holder of a node's namespaces while the node is on. */
export function holderOf(node: string): number | undefined {
  return liveHolder(`${node}.holder`, `pgtwin-cluster-node-${node}`);
}

export function clientHolder(): number {
  const pid = liveHolder('client.holder', 'pgtwin-cluster-client');
  if (!pid) throw new Error('the cluster rig has no client namespace: is it up?');
  return pid;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in a node's namespaces (never throws on exit status). */
export async function onNode(node: string, argv: string[], timeoutMs = 120_000): Promise<Run> {
  const h = holderOf(node);
  if (!h) throw new Error(`node ${node} is off`);
  try {
    const r = await exec('nsenter', ['-t', String(h), '-n', '-m', '-u', '-i', '--', ...argv], { env: { ...process.env, LC_ALL: 'C' }, timeout: timeoutMs, maxBuffer: 32 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}${e.killed ? `\n(killed after ${timeoutMs} ms)` : ''}` };
  }
}

/** Like onNode, but a failure throws with the command's output. */
export async function onNodeOk(node: string, argv: string[], timeoutMs?: number): Promise<string> {
  const r = await onNode(node, argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${node}: ${argv.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Nodes that are on (their holder runs). */
export function nodesOn(): string[] {
  return clusterRig().nodes.map((n) => n.name).filter((n) => holderOf(n) !== undefined);
}

/** A node that is on and whose Pacemaker answers. */
export async function anyNode(except: readonly string[] = []): Promise<string> {
  for (const n of nodesOn().filter((x) => !except.includes(x))) {
    if ((await onNode(n, ['crm_mon', '-1', '--output-as=xml'], 15_000)).code === 0) return n;
  }
  throw new Error('no node of the cluster rig answers crm_mon');
}

export async function crmMon(): Promise<XmlElement> {
  const node = await anyNode();
  return parseXml(await onNodeOk(node, ['crm_mon', '-1', '--output-as=xml', '--inactive'], 30_000));
}

/** Where a (primitive) resource runs now, by crm_mon; undefined when it runs nowhere. */
export function runningOn(status: XmlElement, id: string): string | undefined {
  const rsc = findAll(status, (e) => e.tag === 'resource' && e.attrs.id === id && e.attrs.active === 'true' && e.attrs.failed !== 'true');
  return rsc[0]?.children.find((c) => c.tag === 'node')?.attrs.name;
}

export interface Roles {
  primary: string | undefined;
  standby: string | undefined;
}

/** Which node holds each role of a cluster's promotable clone. */
export function rolesOf(status: XmlElement, side: Side): Roles {
  const clone = findFirst(status, byTagId('clone', clusterRig().clusters[side].clone));
  const nodeWith = (role: string) =>
    clone && findAll(clone, (e) => e.tag === 'resource' && e.attrs.role === role && e.attrs.active === 'true' && e.attrs.failed !== 'true')[0]?.children.find((c) => c.tag === 'node')?.attrs.name;
  return { primary: nodeWith('Promoted'), standby: nodeWith('Unpromoted') };
}

export async function roles(): Promise<Record<Side, Roles>> {
  const s = await crmMon();
  return { source: rolesOf(s, 'source'), target: rolesOf(s, 'target') };
}

/** Waits until a cluster has a primary (after a failover, say) and returns its node. */
export async function primaryOf(side: Side, timeoutMs = 60_000): Promise<string> {
  return waitFor(`a ${side} primary`, async () => (await roles())[side].primary, timeoutMs, 500);
}

// ------------------------------------------------------------------ SQL

/** A superuser session on a node's server through its socket (trust), for arranging and checking. */
export async function nodeClient(node: string, database = 'postgres', user = 'postgres'): Promise<pg.Client> {
  const h = holderOf(node);
  if (!h) throw new Error(`node ${node} is off`);
  // read-write even while a fence makes read-only the default: checks must not fail on it.
  const c = new pg.Client({ host: `/proc/${h}/root${clusterRig().socketDir}`, port: clusterRig().port, user, database, options: '-c default_transaction_read_only=off' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export async function sqlOn<T extends pg.QueryResultRow = Record<string, unknown>>(node: string, database: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = await nodeClient(node, database);
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

export async function sqlOnPrimary<T extends pg.QueryResultRow = Record<string, unknown>>(side: Side, database: string, text: string, values: unknown[] = []): Promise<T[]> {
  return sqlOn<T>(await primaryOf(side), database, text, values);
}

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Databases owned by the rig's application role, on both clusters, with `schema` in each (as that role). */
export async function createDatabases(names: readonly string[], schema: string): Promise<void> {
  for (const side of ['source', 'target'] as const) {
    const node = await primaryOf(side);
    for (const db of names) {
      await sqlOn(node, 'postgres', `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`);
      await sqlOn(node, 'postgres', `CREATE DATABASE ${ident(db)} OWNER ${clusterRig().appUser}`);
      const c = await nodeClient(node, db, clusterRig().appUser);
      try {
        await c.query(schema);
      } finally {
        await c.end();
      }
    }
  }
}

export async function dropDatabases(names: readonly string[]): Promise<void> {
  for (const side of ['source', 'target'] as const) {
    const node = await primaryOf(side).catch(() => undefined);
    if (!node) continue;
    for (const db of names) await sqlOn(node, 'postgres', `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE)`).catch(() => undefined);
  }
}

/** Runs a command as root here with a node's server socket as PGHOST (pgbench -i, psql). */
export async function withSocket(node: string, argv: string[]): Promise<string> {
  const h = holderOf(node);
  if (!h) throw new Error(`node ${node} is off`);
  const r = await exec(argv[0]!, argv.slice(1), { env: { ...process.env, LC_ALL: 'C', PGHOST: `/proc/${h}/root${clusterRig().socketDir}`, PGPORT: String(clusterRig().port) }, maxBuffer: 16 << 20 });
  return r.stdout;
}

// ------------------------------------------------------------------ power

async function rig(args: string[], timeoutMs = 300_000): Promise<string> {
  try {
    const r = await exec(RIG_SCRIPT, ['cluster', ...args], { env: { ...process.env, LC_ALL: 'C' }, timeout: timeoutMs, maxBuffer: 16 << 20 });
    return r.stdout + r.stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; killed?: boolean };
    throw new Error(`scripts/rig.sh cluster ${args.join(' ')} failed${e.killed ? ` (killed after ${timeoutMs} ms)` : ''}:\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

/** Pulls the node's cable and kills everything in it, as its fence device does. */
export async function powerOff(node: string): Promise<void> {
  await rig(['node', 'off', node], 60_000);
}

export async function powerOn(node: string): Promise<void> {
  await rig(['node', 'on', node], 180_000);
}

/**
 * Back to the rig's shape: every node on, both clusters with a primary and a
 * streaming standby (a failed-over old primary rebuilt), the rig's addresses
 * on their resources, no constraint or migration resource of a test left.
 */
export async function heal(): Promise<void> {
  await rig(['heal'], 600_000);
}

/** Powers off the node where `resource` runs and returns its name. */
export async function powerOffNodeRunning(resource: string): Promise<string> {
  const node = runningOn(await crmMon(), resource);
  if (!node) throw new Error(`${resource} runs nowhere`);
  await powerOff(node);
  return node;
}

/** Waits until `resource` runs (started, not failed) on a node other than `notOn`, and returns it. */
export async function waitRunningElsewhere(resource: string, notOn: string, timeoutMs = 120_000): Promise<string> {
  return waitFor(`${resource} running elsewhere than ${notOn}`, async () => {
    const n = runningOn(await crmMon(), resource);
    return n && n !== notOn ? n : undefined;
  }, timeoutMs, 500);
}

/** Whether Pacemaker has fenced `node` since `since` (stonith_admin's history). */
export async function fencedSince(node: string, since: number): Promise<boolean> {
  // --verbose: every event. Without it stonith_admin 2.1.5 prints one successful event per target,
  // not always the latest (after a second fencing of a node it still showed the first).
  const r = await onNode(await anyNode([node]), ['stonith_admin', '--history', node, '--verbose', '--output-as=xml']);
  const doc = parseXml(r.stdout);
  return findAll(doc, (e) => e.tag === 'fence_event' && e.attrs.target === node && e.attrs.status === 'success').some((e) => {
    const t = Date.parse(e.attrs.completed ?? '');
    return Number.isFinite(t) && t >= since - 1000;
  });
}

// ------------------------------------------------------------------ network

/**
 * Cuts (or restores) the path from `node` to `address`: a blackhole route in
 * the node's network namespace. Packets to the address are dropped there, so
 * a TCP stream with it stalls (nothing is reset) while everything else of the
 * node, corosync included, keeps working.
 */
export async function cutPath(node: string, address: string): Promise<void> {
  await onNodeOk(node, ['ip', 'route', 'replace', 'blackhole', `${address}/32`]);
}

export async function restorePath(node: string, address: string): Promise<void> {
  await onNode(node, ['ip', 'route', 'del', 'blackhole', `${address}/32`]);
}

// ------------------------------------------------------------------ migration

/** The migration's parameters on this rig: discovery by Pacemaker, replication through the replication VIPs. */
export function migrationParams(databases: readonly string[], extra: Record<string, string> = {}): Record<string, string> {
  const r = clusterRig();
  return {
    databases: databases.join(','),
    source_cluster: r.clusters.source.clone,
    target_cluster: r.clusters.target.clone,
    source_replication_vip: r.vips.sourceReplication.ip,
    target_replication_vip: r.vips.targetReplication.ip,
    production_vip_resource: r.vips.production.resource,
    target_vip_resource: r.vips.target.resource,
    pgport: String(r.port),
    source_pgpassfile: r.agentPgpass,
    target_pgpassfile: r.agentPgpass,
    ...extra,
  };
}

/**
 * `crm configure primitive … ocf:heartbeat:pgtwin-migrate` on a node, as a DBA
 * would type it, with a preference (location score 100) for `preferNode` and
 * stickiness, so the resource does not move back when a lost node returns.
 */
export async function configureMigration(id: string, params: Record<string, string>, preferNode?: string): Promise<void> {
  const node = await anyNode();
  const words = [
    'crm', 'configure', 'primitive', id, 'ocf:heartbeat:pgtwin-migrate',
    'params', ...Object.entries(params).map(([k, v]) => `${k}=${v}`),
    'op', 'start', 'timeout=600s', 'interval=0s',
    'op', 'stop', 'timeout=120s', 'interval=0s',
    'op', 'monitor', 'timeout=60s', 'interval=10s',
    'meta', 'target-role=Stopped', 'resource-stickiness=1000',
  ];
  await onNodeOk(node, words);
  if (preferNode) {
    await onNodeOk(node, ['cibadmin', '--create', '--scope', 'constraints', '--xml-text', `<rsc_location id="test-${id}-prefers" rsc="${id}" node="${preferNode}" score="100"/>`]);
  }
  await onNodeOk(node, ['crm_resource', '--resource', id, '--meta', '--set-parameter', 'target-role', '--parameter-value', 'Started']);
}

/** Stops and removes a migration primitive and the test's constraints for it, then tears the migration down. */
export async function removeMigration(id: string): Promise<void> {
  const node = await anyNode();
  await onNode(node, ['crm_resource', '--resource', id, '--meta', '--set-parameter', 'target-role', '--parameter-value', 'Stopped']);
  await waitFor(`${id} stopped`, async () => !runningOn(await crmMon(), id), 120_000, 500).catch(() => undefined);
  await onNode(node, [NODE_AGENT, 'teardown', '--resource', id, '--yes', '--force'], 300_000);
  await onNode(node, ['cibadmin', '--delete', '--xpath', `//constraints/*[@id='test-${id}-prefers']`]);
  await onNode(node, ['cibadmin', '--delete', '--xml-text', `<primitive id="${id}"/>`]);
  await onNode(node, ['cibadmin', '--delete', '--xml-text', `<cluster_property_set id="pgtwin-migrate-${id}"/>`]);
}

/** A pgtwin-migrate command (status, cutover, …) on a node, as an administrator runs it there. */
export async function agentCommand(args: string[], timeoutMs = 600_000, node?: string): Promise<Run> {
  return onNode(node ?? (await anyNode()), [NODE_AGENT, ...args], timeoutMs);
}

export interface StatusJson {
  phase: string;
  databases: Array<{ database: string; state: string; problem?: string | null; tablesReady?: number; tablesTotal?: number; lagBytes?: number | null }>;
  [k: string]: unknown;
}

export async function migrationStatus(id: string): Promise<StatusJson | undefined> {
  const r = await agentCommand(['status', '--resource', id, '--json'], 60_000);
  try {
    return JSON.parse(r.stdout) as StatusJson;
  } catch {
    return undefined;
  }
}

/** Until the resource runs and its status shows every database streaming. */
export async function waitStreaming(id: string, databases: readonly string[], timeoutMs = 180_000): Promise<StatusJson> {
  return waitFor(`${id}: ${databases.length} databases streaming`, async () => {
    if (!runningOn(await crmMon(), id)) return undefined;
    const s = await migrationStatus(id);
    return s && s.databases.length === databases.length && s.databases.every((d) => d.state === 'streaming') ? s : undefined;
  }, timeoutMs, 1000);
}

/** The migration's record in the CIB (crm_config set and the live meta set). */
export async function migrationRecord(id: string): Promise<Record<string, string>> {
  const cib = parseXml(await onNodeOk(await anyNode(), ['cibadmin', '--query']));
  const sets = [findFirst(cib, byTagId('cluster_property_set', `pgtwin-migrate-${id}`)), findFirst(cib, byTagId('meta_attributes', `pgtwin-migrate-${id}-live`))];
  return Object.fromEntries(sets.flatMap((set) => (set?.children ?? []).map((n) => [n.attrs.name ?? '', n.attrs.value ?? ''])));
}

/** The `ip` of a VIP resource in the CIB. */
export async function vipIp(resource: string): Promise<string> {
  return (await onNodeOk(await anyNode(), ['crm_resource', '--resource', resource, '--get-parameter', 'ip'])).trim();
}

/** Which cluster answers on an address now, asked from the client namespace. */
export async function whoAnswers(address: string): Promise<string | undefined> {
  try {
    const r = await exec('nsenter', ['-t', String(clientHolder()), '-n', '--', clusterRig().psql, '-X', '-At', '-h', address, '-U', clusterRig().appUser, '-d', 'postgres', '-c', "SELECT current_setting('cluster_name')"], {
      env: { ...process.env, PGPASSWORD: password(), PGCONNECT_TIMEOUT: '2' },
      timeout: 10_000,
    });
    return r.stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ faults

const IP_REFUSING = `${REPO}/test/fixtures/faults/ip-refusing`;

/**
 * From now on `node` refuses to bring `address` up (IPaddr2's start fails
 * there): /usr/sbin/ip in the node's own view becomes a wrapper that refuses
 * to add it. The machine's ip is never touched: the node's link to it is
 * removed first, and the wrapper lands in the node's overlay.
 */
export async function refuseAddressOn(node: string, address: string): Promise<void> {
  const list = `${clusterRig().dir}/run/refuse-${node}`;
  mkdirSync(`${clusterRig().dir}/run`, { recursive: true });
  writeFileSync(list, `${address}\n`);
  await onNodeOk(node, ['mkdir', '-p', '/run/pgtwin-faults']);
  await onNodeOk(node, ['install', '-m', '0644', list, '/run/pgtwin-faults/refuse-address']);
  await onNodeOk(node, ['rm', '-f', '/usr/sbin/ip']);
  await onNodeOk(node, ['install', '-m', '0755', IP_REFUSING, '/usr/sbin/ip']);
}

export async function acceptAddressesOn(node: string): Promise<void> {
  if (!holderOf(node)) return;
  await onNode(node, ['rm', '-f', '/run/pgtwin-faults/refuse-address']);
  await onNode(node, ['rm', '-f', '/usr/sbin/ip']);
  await onNode(node, ['ln', '-s', '/bin/ip', '/usr/sbin/ip']);
}

/** Pacemaker stops managing (or manages again) a resource: it is left as it is, whatever the CIB says. */
export async function setManaged(resource: string, managed: boolean): Promise<void> {
  await onNodeOk(await anyNode(), ['crm_resource', '--resource', resource, '--meta', '--set-parameter', 'is-managed', '--parameter-value', String(managed)]);
}

/** Failed actions Pacemaker shows for a resource (their exit reasons). */
export async function failuresOf(resource: string): Promise<string[]> {
  return findAll(await crmMon(), (e) => e.tag === 'failure' && (e.attrs.op_key ?? '').startsWith(`${resource}_`)).map((f) => f.attrs.exitreason ?? f.attrs.exitstatus ?? '');
}

// ------------------------------------------------------------------ writes and fences

/** A node's own address (a client that bypasses the production address connects there). */
export function nodeAddress(node: string): string {
  const n = clusterRig().nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node} in the cluster rig`);
  return n.address;
}

/**
 * Does the application role get a write into `table` on this node's server
 * (true), or is it refused as read-only, SQLSTATE 25006 (false)? Through the
 * node's socket, in a transaction that is rolled back: nothing stays.
 */
export async function takesWrites(node: string, database: string, table = 'w_log'): Promise<boolean> {
  const c = await nodeClient(node, database, clusterRig().appUser);
  try {
    await c.query('BEGIN READ WRITE');
    await c.query(`INSERT INTO ${ident(table)} (token, note) VALUES (gen_random_uuid(), 'probe')`);
    await c.query('ROLLBACK');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '25006') return false;
    throw err;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Until the migration's record satisfies `pred`; returns it. */
export async function waitRecord(id: string, what: string, pred: (r: Record<string, string>) => boolean, timeoutMs: number): Promise<Record<string, string>> {
  return waitFor(`${id}: ${what}`, async () => {
    const r = await migrationRecord(id).catch(() => undefined);
    return r && pred(r) ? r : undefined;
  }, timeoutMs, 1000);
}

// ------------------------------------------------------------------ fault injection in a switch

/** The cutover log on a node (the agent's state directory is the source's pghome there). */
export async function cutoverLog(node: string): Promise<string> {
  return (await onNode(node, ['cat', `${clusterRig().pgHome}/.pgtwin_migrate_cutover.log`], 15_000)).stdout;
}

/**
 * The environment Pacemaker's executor gives the agent for one action of
 * resource `id` (its parameters from the CIB, with `extra` over them), for
 * running an action by hand on a node: `env -i …env agent action`.
 */
export async function agentEnv(id: string, extra: Record<string, string> = {}, meta: { interval: number; timeoutMs?: number } = { interval: 0 }, more: string[] = []): Promise<string[]> {
  const params = { ...(await resourceParams(id)), ...extra };
  return [
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'LC_ALL=C',
    'OCF_ROOT=/usr/lib/ocf',
    'OCF_RA_VERSION_MAJOR=1',
    'OCF_RA_VERSION_MINOR=1',
    `OCF_RESOURCE_INSTANCE=${id}`,
    'OCF_RESOURCE_TYPE=pgtwin-migrate',
    'OCF_RESOURCE_PROVIDER=heartbeat',
    `OCF_RESKEY_CRM_meta_timeout=${meta.timeoutMs ?? 60_000}`,
    `OCF_RESKEY_CRM_meta_interval=${meta.interval}`,
    'HA_RSCTMP=/run/resource-agents',
    ...more,
    ...Object.entries(params).map(([k, v]) => `OCF_RESKEY_${k}=${v}`),
  ];
}

/** The resource's instance attributes as the CIB holds them. */
async function resourceParams(id: string): Promise<Record<string, string>> {
  const xml = await onNodeOk(await anyNode(), ['cibadmin', '--query', '--xpath', `//primitive[@id='${id}']`]);
  const rsc = parseXml(xml);
  const attrs = findAll(rsc, (e) => e.tag === 'nvpair' && e.parent?.tag === 'instance_attributes');
  return Object.fromEntries(attrs.map((n) => [n.attrs.name ?? '', n.attrs.value ?? '']));
}

/**
 * Starts a switch on the node that runs the migration resource, with the
 * worker told to hold after `step` (PGTWIN_MIGRATE_TEST_PAUSE_AT; the agent
 * honours it only where the rig's marker /run/pgtwin-migrate-test-rig
 * exists). Pacemaker gives its agents no per-operation environment, so the
 * reload-agent that launches the worker is run on that node by hand, with
 * the resource's parameters from the CIB and cutover_ready=true, the way
 * Pacemaker's executor would; then cutover_ready=true is set in the CIB too
 * (Pacemaker's own reload sees the switch running and starts nothing). Only
 * this worker has the variable: a worker that takes over on another node
 * does not pause. Returns the node once the worker holds there.
 */
export async function startSwitchPausedAfter(id: string, step: string, kind: 'cutover' | 'failback' = 'cutover'): Promise<string> {
  const node = runningOn(await crmMon(), id);
  if (!node) throw new Error(`${id} runs nowhere`);
  const t0 = Date.now();
  const env = await agentEnv(id, { cutover_ready: 'true' }, { interval: 0 }, [`PGTWIN_MIGRATE_TEST_PAUSE_AT=${step}`]);
  const r = await onNode(node, ['env', '-i', ...env, NODE_AGENT, 'reload-agent'], 120_000);
  if (r.code !== 0) throw new Error(`reload-agent on ${node} exited ${r.code}: ${r.stderr}`);
  await onNodeOk(node, ['crm_resource', '--resource', id, '--set-parameter', 'cutover_ready', '--parameter-value', 'true']);
  const until = Date.now() + 300_000;
  for (;;) {
    // One log per switch, each line stamped: this switch's pause, not an earlier one's.
    const log = (await cutoverLog(node)).split('\n');
    if (log.some((l) => l.includes(`${kind}: paused after step ${step} `) && Date.parse(l.slice(0, 24)) >= t0 - 1000)) break;
    const rec = await migrationRecord(id).catch(() => undefined);
    if (rec?.['cutover-state'] === 'failed' || rec?.['cutover-state'] === 'complete') {
      throw new Error(`the ${kind} ended (${rec['cutover-state']}) before it reached ${step}: ${rec['cutover-error'] ?? ''}\n${log.slice(-30).join('\n')}`);
    }
    if (Date.now() > until) throw new Error(`the ${kind} worker on ${node} did not hold after ${step} within 300 s:\n${log.slice(-30).join('\n')}`);
    await new Promise((res) => setTimeout(res, 500));
  }
  return node;
}
