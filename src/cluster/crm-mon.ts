/**
 * Which node runs which role of a clone, from crm_mon's XML status, read
 * with a real XML parser. Understands the current `--output-as=xml` document
 * and the legacy `--as-xml` one, and Pacemaker 2.0's Master/Slave words.
 */
import { run, firstLine } from '../ocf/exec';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseXml, findAll, findFirst, byTagId, type XmlElement } from './xml';

export type CloneRole = 'Promoted' | 'Unpromoted';

export interface CloneNodes {
  readonly promoted: readonly string[];
  readonly unpromoted: readonly string[];
}

/** Maps Pacemaker's role words (old and new) to the two roles of a promotable clone. */
export function normaliseRole(role: string | undefined): CloneRole | undefined {
  switch (role) {
    case 'Promoted':
    case 'Master':
      return 'Promoted';
    case 'Unpromoted':
    case 'Slave':
      return 'Unpromoted';
    default:
      return undefined;
  }
}

/**
 * Nodes running the clone's instances by role, or undefined when the status
 * document has no such clone. A clone of a group counts a node under a role
 * when any member of the group has that role there.
 */
export function cloneNodes(status: XmlElement, cloneId: string): CloneNodes | undefined {
  const clone = findFirst(status, byTagId('clone', cloneId));
  if (!clone) return undefined;
  const promoted = new Set<string>();
  const unpromoted = new Set<string>();
  for (const rsc of findAll(clone, (e) => e.tag === 'resource')) {
    if (rsc.attrs.active !== 'true') continue;
    const role = normaliseRole(rsc.attrs.role);
    if (!role) continue;
    for (const node of rsc.children.filter((c) => c.tag === 'node')) {
      const name = node.attrs.name;
      if (!name) continue;
      (role === 'Promoted' ? promoted : unpromoted).add(name);
    }
  }
  return { promoted: [...promoted], unpromoted: [...unpromoted] };
}

/** Is Pacemaker's status document from a running cluster with quorum? */
export function clusterSummary(status: XmlElement): { hasQuorum: boolean; dc: string | undefined } {
  const dc = findFirst(status, (e) => e.tag === 'current_dc');
  return { hasQuorum: dc?.attrs.with_quorum === 'true', dc: dc?.attrs.present === 'true' ? dc.attrs.name : undefined };
}

/** Operations that (re)start a resource with its current parameters. */
const STARTING_TASKS = new Set(['start', 'reload', 'reload-agent', 'promote']);

/**
 * For each node, the executor call id of the latest (re)start of `rscId`
 * there (from the operation history, `readStatus(…, { operations: true })`).
 * Call ids only grow on a node, so a higher one means a later start.
 */
export function lastStarts(status: XmlElement, rscId: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const node of findAll(status, (e) => e.tag === 'node' && e.parent?.tag === 'node_history')) {
    const history = node.children.find((c) => c.tag === 'resource_history' && c.attrs.id === rscId);
    for (const op of history?.children ?? []) {
      if (op.tag !== 'operation_history' || !STARTING_TASKS.has(op.attrs.task ?? '') || op.attrs.rc !== '0') continue;
      const call = Number(op.attrs.call);
      if (Number.isFinite(call) && call > (out.get(node.attrs.name ?? '') ?? -1)) out.set(node.attrs.name ?? '', call);
    }
  }
  return out;
}

/** Has `rscId` been (re)started on some node since `before` was taken? */
export function restartedSince(status: XmlElement, rscId: string, before: ReadonlyMap<string, number>): boolean {
  for (const [node, call] of lastStarts(status, rscId)) if (call > (before.get(node) ?? -1)) return true;
  return false;
}

let legacyFlag: boolean | undefined;

/** Runs crm_mon once and returns its parsed XML status (with the operation history when asked). */
export async function readStatus(timeoutMs: number, opts: { operations?: boolean } = {}): Promise<XmlElement> {
  const attempt = (legacy: boolean) =>
    run(
      'crm_mon',
      legacy ? ['-1', '--as-xml', ...(opts.operations ? ['--operations'] : [])] : ['-1', '--output-as=xml', ...(opts.operations ? ['--include=operations'] : [])],
      { timeoutMs },
    );
  let result = await attempt(legacyFlag ?? false);
  if (result.code !== 0 && legacyFlag === undefined && /unrecognized|unknown option|output-as/i.test(result.stderr)) {
    legacyFlag = true;
    result = await attempt(true);
  }
  if (result.timedOut) throw new OcfError(OCF.ERR_GENERIC, `crm_mon did not answer within ${timeoutMs} ms; is Pacemaker busy?`);
  if (result.code !== 0 || !result.stdout.includes('<')) {
    throw new OcfError(OCF.ERR_GENERIC, `crm_mon failed (exit ${result.code}): ${firstLine(result)}; is Pacemaker running here?`);
  }
  return parseXml(result.stdout);
}
