/**
 * What Pacemaker says a primitive is doing: where it runs and in which role
 * (crm_mon), and with which parameters it was last started there (the CIB's
 * operation history: the `op-digest` of its last start against the digest
 * of its configured parameters, `crm_resource --digests`). Together they
 * prove that a resource runs with the configuration it has now — e.g. that
 * a VIP resource carries the address it was given.
 */
import { run, firstLine } from '../ocf/exec';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseXml, findAll, findFirst, type XmlElement } from './xml';

export interface RunState {
  /** Nodes where crm_mon shows it active. */
  readonly nodes: readonly string[];
  readonly role: string | undefined;
  readonly managed: boolean;
  readonly failed: boolean;
  readonly blocked: boolean;
  /** A failure Pacemaker was told to ignore (on-fail=ignore): shown inactive, though it may still be running. */
  readonly failureIgnored: boolean;
}

/** A primitive's state in a crm_mon document (undefined: no such resource in it). */
export function runState(status: XmlElement, id: string): RunState | undefined {
  const rsc = findFirst(status, (e) => e.tag === 'resource' && e.attrs.id === id && e.parent?.tag !== 'node_history');
  if (!rsc) return undefined;
  const nodes = rsc.attrs.active === 'true' ? rsc.children.filter((c) => c.tag === 'node').map((n) => n.attrs.name ?? '').filter(Boolean) : [];
  return {
    nodes,
    role: rsc.attrs.role,
    managed: rsc.attrs.managed !== 'false',
    failed: rsc.attrs.failed === 'true',
    blocked: rsc.attrs.blocked === 'true',
    failureIgnored: rsc.attrs.failure_ignored === 'true',
  };
}

/** Nodes Pacemaker reports offline and clean: shut down or fenced, nothing runs there. */
export function deadNodes(status: XmlElement): Set<string> {
  const out = new Set<string>();
  for (const n of findAll(status, (e) => e.tag === 'node' && e.parent?.tag === 'nodes')) {
    if (n.attrs.online === 'false' && n.attrs.unclean !== 'true' && n.attrs.name) out.add(n.attrs.name);
  }
  return out;
}

export interface LastOperation {
  readonly operation: string;
  readonly rc: number;
  readonly opStatus: number;
  readonly digest: string | undefined;
  readonly callId: number;
}

/** The last non-recurring operation of `rsc` on `node` in the CIB status section. */
export function lastOperation(cibStatus: XmlElement, rsc: string, node: string): LastOperation | undefined {
  const state = findFirst(cibStatus, (e) => e.tag === 'node_state' && e.attrs.uname === node);
  const lrm = state && findFirst(state, (e) => e.tag === 'lrm_resource' && e.attrs.id === rsc);
  const op = lrm?.children.find((c) => c.tag === 'lrm_rsc_op' && c.attrs.id === `${rsc}_last_0`);
  if (!op) return undefined;
  return {
    operation: op.attrs.operation ?? '',
    rc: Number(op.attrs['rc-code']),
    opStatus: Number(op.attrs['op-status']),
    digest: op.attrs['op-digest'],
    callId: Number(op.attrs['call-id']),
  };
}

/** Node names with a state in the CIB status section. */
export function nodesIn(cibStatus: XmlElement): string[] {
  return findAll(cibStatus, (e) => e.tag === 'node_state').map((n) => n.attrs.uname ?? '').filter(Boolean);
}

export async function readCibStatus(timeoutMs: number): Promise<XmlElement> {
  const r = await run('cibadmin', ['--query', '--scope', 'status'], { timeoutMs });
  if (r.code !== 0) throw new OcfError(OCF.ERR_GENERIC, `cannot read the CIB status (cibadmin exit ${r.code}: ${firstLine(r)}); is Pacemaker running?`);
  return parseXml(r.stdout);
}

/** The whole CIB (configuration and status) in one read: what a proof compares is then of one moment. */
export async function readCib(timeoutMs: number): Promise<XmlElement> {
  const r = await run('cibadmin', ['--query'], { timeoutMs });
  if (r.code !== 0) throw new OcfError(OCF.ERR_GENERIC, `cannot read the CIB (cibadmin exit ${r.code}: ${firstLine(r)}); is Pacemaker running?`);
  return parseXml(r.stdout);
}

export interface ConfiguredDigest {
  readonly hash: string;
  /** The parameters digested, where crm_resource shows them. */
  readonly params: Readonly<Record<string, string>> | undefined;
  /** The operation digested, where crm_resource names it (a start's digest is what a restart must show). */
  readonly task: string | undefined;
}

/**
 * The digest Pacemaker computes for `rsc`'s configured parameters on `node`
 * (what its last start must show); with `overrides`, the digest those
 * parameters would have with the named ones changed (crm_resource computes it
 * the way the scheduler does, for a change not made yet).
 */
export async function configuredDigest(rsc: string, node: string, timeoutMs: number, overrides: Readonly<Record<string, string>> = {}): Promise<ConfiguredDigest | undefined> {
  const changed = Object.entries(overrides).map(([k, v]) => `${k}=${v}`);
  const r = await run('crm_resource', ['--digests', '--resource', rsc, '--node', node, '--output-as=xml', ...changed], { timeoutMs });
  if (r.code !== 0) return undefined;
  const doc = parseXml(r.stdout);
  const all = findFirst(doc, (e) => e.tag === 'digest' && e.attrs.type === 'all');
  if (!all?.attrs.hash) return undefined;
  const params = all.children.find((c) => c.tag === 'parameters');
  const digests = findFirst(doc, (e) => e.tag === 'digests');
  return { hash: all.attrs.hash, params: params ? { ...params.attrs } : undefined, task: digests?.attrs.task };
}

const STARTS = new Set(['start', 'reload', 'reload-agent', 'promote']);

/** Was `op` a successful (re)start (with whatever parameters)? */
export function succeededStart(op: LastOperation | undefined): boolean {
  return op !== undefined && STARTS.has(op.operation) && op.rc === 0 && op.opStatus === 0;
}

/** Did the last (re)start of `rsc` on `node` succeed with its configured parameters? */
export function startedWith(op: LastOperation | undefined, digest: string | undefined): boolean {
  return succeededStart(op) && digest !== undefined && op!.digest === digest;
}
