/**
 * Where everything is, resolved once per action: the nodes Pacemaker runs
 * the clusters' roles on (or the configured overrides), the endpoints the
 * agent connects to, the password files, and this node's state directory.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../ocf/config';
import type { ActionContext } from '../ocf/run-action';
import { OCF, OcfError } from '../ocf/exit-codes';
import { baseInstance } from '../ocf/env';
import type { Logger } from '../ocf/log';
import type { Deadline } from '../ocf/deadline';
import { readStatus, cloneNodes, type CloneNodes } from '../cluster/crm-mon';
import { readResourcesSection, findAttribute } from '../cluster/resources';
import type { ClusterState } from '../cluster/attributes';
import { migrationRecord } from './cib-state';
import { findFirst, type XmlElement } from '../cluster/xml';
import { subscriptionConninfo, type Endpoint, type ConnectOptions, type SslMode } from '../pg/connection';
import type { DatabaseObjects } from './names';
import type { SessionPool } from '../pg/session-pool';

export interface Plan {
  readonly cfg: Config;
  readonly instance: string;
  readonly log: Logger;
  readonly deadline: Deadline;
  readonly state: ClusterState;
  /** The source primary: publications, fence, sequences, reverse subscriptions. */
  readonly sourcePrimary: Endpoint;
  /** Where the forward slots live: the primary, or the standby behind the replication VIP. */
  readonly slotHost: Endpoint;
  readonly targetPrimary: Endpoint;
  readonly sourceNodes: CloneNodes;
  readonly targetNodes: CloneNodes;
  /** This node's directory for state files, baseline and cutover logs. */
  readonly stateDir: string;
  readonly rscTmp: string;
  /** Sessions an action shares between its steps (the monitor's fence checks and observation); none: each step opens its own. */
  readonly sessions?: SessionPool;
}

/** Parent of the `pgdata` instance attribute of the clone's primitive, if it has one. */
function pghomeFromPrimitive(resources: XmlElement, cloneId: string): string | undefined {
  const clone = findFirst(resources, (e) => (e.tag === 'clone' || e.tag === 'master') && e.attrs.id === cloneId);
  const primitive = clone && findFirst(clone, (e) => e.tag === 'primitive');
  if (!primitive?.attrs.id) return undefined;
  const ref = findAttribute(resources, primitive.attrs.id, 'pgdata');
  return ref && ref !== 'no-resource' && ref.value.startsWith('/') ? dirname(ref.value) : undefined;
}

function postgresHome(): string | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
    return line?.split(':')[5] || undefined;
  } catch {
    return undefined;
  }
}

export function resolvePghome(explicit: string, resources: XmlElement | undefined, cloneId: string): string {
  return explicit || (resources && pghomeFromPrimitive(resources, cloneId)) || postgresHome() || '/var/lib/pgsql';
}

/** The state directory: source_pghome where it exists on this node, else a directory of the agent's own. */
export function resolveStateDir(sourcePghome: string, log?: Logger): string {
  if (existsSync(sourcePghome)) return sourcePghome;
  const own = '/var/lib/pgtwin-migrate';
  mkdirSync(own, { recursive: true, mode: 0o750 });
  log?.debug(`${sourcePghome} does not exist on this node; state files go to ${own}`);
  return own;
}

function pickNode(nodes: CloneNodes, role: 'Promoted' | 'Unpromoted', clone: string, param: string): string {
  const list = role === 'Promoted' ? nodes.promoted : nodes.unpromoted;
  const node = list[0];
  if (!node) {
    throw new OcfError(OCF.ERR_GENERIC, `no ${role} instance of ${clone} is running; start the cluster or set ${param}`);
  }
  return node;
}

export interface ResolveOptions {
  /** Skip node discovery failures (teardown and status still work with overrides or partial clusters). */
  readonly lenient?: boolean;
}

export async function resolvePlan(ctx: Pick<ActionContext, 'cfg' | 'env' | 'log' | 'deadline'>, opts: ResolveOptions = {}): Promise<Plan> {
  const { cfg, log, deadline } = ctx;
  const step = () => deadline.stepMs(10_000);
  // The resources are read only to discover a home directory the parameters leave open.
  const needResources = !cfg.source_pghome || !cfg.target_pghome;
  const [status, resources] = await Promise.all([
    readStatus(step()),
    needResources ? readResourcesSection(step()).catch(() => undefined) : Promise.resolve(undefined),
  ]);
  const sourceNodes = cloneNodes(status, cfg.source_cluster);
  const targetNodes = cloneNodes(status, cfg.target_cluster);
  if (!sourceNodes && !cfg.source_host) {
    throw new OcfError(OCF.ERR_CONFIGURED, `source_cluster ${cfg.source_cluster} is not a clone in this cluster; check the name (crm_mon -1)`);
  }
  if (!targetNodes && !cfg.target_host) {
    throw new OcfError(OCF.ERR_CONFIGURED, `target_cluster ${cfg.target_cluster} is not a clone in this cluster; check the name (crm_mon -1)`);
  }
  const safePick = (nodes: CloneNodes | undefined, role: 'Promoted' | 'Unpromoted', clone: string, param: string) => {
    try {
      return pickNode(nodes ?? { promoted: [], unpromoted: [] }, role, clone, param);
    } catch (err) {
      if (opts.lenient) return undefined;
      throw err;
    }
  };
  const sourceHost = cfg.source_host || safePick(sourceNodes, 'Promoted', cfg.source_cluster, 'source_host');
  const targetHost = cfg.target_host || safePick(targetNodes, 'Promoted', cfg.target_cluster, 'target_host');
  if (cfg.source_node_role === 'Unpromoted' && !opts.lenient) {
    pickNode(sourceNodes ?? { promoted: [], unpromoted: [] }, 'Unpromoted', cfg.source_cluster, 'source_node_role=Promoted');
  }
  const sourceHome = resolvePghome(cfg.source_pghome, resources, cfg.source_cluster);
  const targetHome = resolvePghome(cfg.target_pghome, resources, cfg.target_cluster);
  const base = { user: cfg.migration_dbuser, sslmode: cfg.sslmode as Endpoint['sslmode'], ...(cfg.sslrootcert ? { sslrootcert: cfg.sslrootcert } : {}) };
  const sourcePrimary: Endpoint = {
    ...base,
    side: 'source',
    role: 'source primary',
    host: sourceHost ?? cfg.source_replication_vip,
    port: cfg.sourcePort,
    passfile: cfg.source_pgpassfile || `${sourceHome}/.pgpass`,
    home: sourceHome,
  };
  const slotHost: Endpoint =
    cfg.source_node_role === 'Unpromoted'
      ? { ...sourcePrimary, role: 'source standby', host: cfg.source_replication_vip }
      : sourcePrimary;
  const targetPrimary: Endpoint = {
    ...base,
    side: 'target',
    role: 'target primary',
    host: targetHost ?? cfg.target_replication_vip,
    port: cfg.targetPort,
    passfile: cfg.target_pgpassfile || `${targetHome}/.pgpass`,
    home: targetHome,
  };
  const instance = baseInstance(ctx.env);
  return {
    cfg,
    instance,
    log,
    deadline,
    state: migrationRecord(instance, step),
    sourcePrimary,
    slotHost,
    targetPrimary,
    sourceNodes: sourceNodes ?? { promoted: [], unpromoted: [] },
    targetNodes: targetNodes ?? { promoted: [], unpromoted: [] },
    stateDir: resolveStateDir(sourceHome, log),
    rscTmp: ctx.env.rscTmp,
  };
}

/** Connection options for one step of an action: bounded by what is left of its time. */
export function connectOptions(plan: Pick<Plan, 'deadline'>, preferredMs = 10_000): ConnectOptions {
  const ms = plan.deadline.stepMs(preferredMs);
  return { timeoutMs: ms, statementTimeoutMs: ms };
}


/**
 * The connection string a subscription of one direction stores: forward
 * subscriptions (on the target) reach the source through
 * source_replication_vip, reverse ones (on the source) the target through
 * target_replication_vip. Never a password.
 */
export function replicationConninfo(plan: Pick<Plan, 'cfg'>, o: DatabaseObjects, direction: 'forward' | 'reverse', subscriberMajor?: number): string {
  const { cfg } = plan;
  const forward = direction === 'forward';
  return subscriptionConninfo({
    host: forward ? cfg.source_replication_vip : cfg.target_replication_vip,
    port: forward ? cfg.sourcePort : cfg.targetPort,
    database: o.database,
    user: cfg.migration_dbuser,
    sslmode: cfg.sslmode as SslMode,
    ...(cfg.sslrootcert ? { sslrootcert: cfg.sslrootcert } : {}),
    applicationName: forward ? o.forwardSub : o.reverseSub,
    ...(subscriberMajor === undefined ? {} : { subscriberMajor }),
  });
}
