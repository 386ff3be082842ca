/**
 * Cluster-wide state of one migration resource, kept in the CIB as a
 * cluster property set of its own (`pgtwin-migrate-<resource id>`), so every
 * node sees it, it survives a node failover, and two migrations never share
 * a name. Writes go through crm_attribute; a whole-set read is one query.
 */
import { run, firstLine } from '../ocf/exec';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseXml, findFirst, byTagId } from './xml';
import { xmlEscape } from '../ocf/xml-escape';

/** crm_attribute's exit code for "no such attribute" (ENXIO). */
export const CRM_EX_NOSUCH = 105;

export type Timeout = () => number;

export class ClusterState {
  readonly setId: string;

  constructor(
    instance: string,
    private readonly timeoutMs: Timeout,
  ) {
    this.setId = `pgtwin-migrate-${instance}`;
  }

  private args(name: string): string[] {
    return ['--type', 'crm_config', '--set-name', this.setId, '--name', name];
  }

  async get(name: string): Promise<string | undefined> {
    const r = await run('crm_attribute', [...this.args(name), '--query', '--quiet'], { timeoutMs: this.timeoutMs() });
    if (r.code === CRM_EX_NOSUCH) return undefined;
    if (r.code !== 0) throw this.failure('read', name, r);
    return r.stdout.replace(/\n$/, '');
  }

  async set(name: string, value: string): Promise<void> {
    const r = await run('crm_attribute', [...this.args(name), '--update', value], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0) throw this.failure('write', name, r);
  }

  async delete(name: string): Promise<void> {
    const r = await run('crm_attribute', [...this.args(name), '--delete'], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0 && r.code !== CRM_EX_NOSUCH) throw this.failure('delete', name, r);
  }

  /** Every attribute of the set, in one CIB query. */
  async readAll(): Promise<Map<string, string>> {
    const r = await run('cibadmin', ['--query', '--scope', 'crm_config'], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0) throw this.failure('read', '(all)', r);
    const set = findFirst(parseXml(r.stdout), byTagId('cluster_property_set', this.setId));
    const out = new Map<string, string>();
    for (const nv of set?.children ?? []) {
      if (nv.tag === 'nvpair' && nv.attrs.name !== undefined) out.set(nv.attrs.name, nv.attrs.value ?? '');
    }
    return out;
  }

  /**
   * Sets several attributes in ONE CIB update, so a reader never sees half
   * of a transition (e.g. a cutover step without its lease).
   */
  async setMany(values: Readonly<Record<string, string>>): Promise<void> {
    const xml = `<crm_config>${this.propertySetXml(values)}</crm_config>`;
    const r = await run('cibadmin', ['--modify', '--allow-create', '--scope', 'crm_config', '--xml-text', xml], {
      timeoutMs: this.timeoutMs(),
    });
    if (r.code !== 0) throw this.failure('write', Object.keys(values).join(','), r);
  }

  /** The set with these values, as a fragment for a larger CIB update. */
  propertySetXml(values: Readonly<Record<string, string>>): string {
    const pairs = Object.entries(values)
      .map(([n, v]) => `<nvpair id="${xmlEscape(`${this.setId}-${n}`)}" name="${xmlEscape(n)}" value="${xmlEscape(v)}"/>`)
      .join('');
    return `<cluster_property_set id="${xmlEscape(this.setId)}">${pairs}</cluster_property_set>`;
  }

  /** Removes the whole set (teardown). */
  async clear(): Promise<void> {
    const r = await run('cibadmin', ['--delete', '--xml-text', `<cluster_property_set id="${xmlEscape(this.setId)}"/>`], {
      timeoutMs: this.timeoutMs(),
    });
    if (r.code !== 0 && r.code !== CRM_EX_NOSUCH) throw this.failure('delete', '(all)', r);
  }

  private failure(what: string, name: string, r: { code: number | null; stderr: string; stdout: string; timedOut: boolean }) {
    const why = r.timedOut ? 'timed out' : `exit ${r.code}: ${firstLine(r)}`;
    return new OcfError(OCF.ERR_GENERIC, `cannot ${what} CIB attribute ${name} of ${this.setId} (${why}); is Pacemaker running?`);
  }
}

/** Name of the node this agent runs on, as Pacemaker knows it. */
export async function localNodeName(timeoutMs: number): Promise<string> {
  const r = await run('crm_node', ['--name'], { timeoutMs });
  const name = r.stdout.trim();
  if (r.code !== 0 || name === '') {
    throw new OcfError(OCF.ERR_GENERIC, `crm_node --name failed (exit ${r.code}): ${firstLine(r)}; is Pacemaker running here?`);
  }
  return name;
}
