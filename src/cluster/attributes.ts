/**
 * Cluster-wide state of one migration resource, kept in the CIB so every
 * node sees it and it survives a node failover, under names of its own
 * (`pgtwin-migrate-<resource id>`) so two migrations never share one.
 *
 * Two places, one record:
 * - the lasting part (phase, baseline list) is a cluster property set in
 *   crm_config, which outlives the resource itself;
 * - the live part (the "live" keys: a cutover's step, lease and outcome) is
 *   a meta attribute set of the resource (`pgtwin-migrate-<id>-live`).
 *   Every crm_config change makes Pacemaker's controller re-read the cluster
 *   options before its next transition (about 1 s, measured on the rig), so
 *   a cutover that wrote its steps there delayed the VIP restart by seconds.
 *   Resource meta attributes are not part of any operation digest: changing
 *   them restarts nothing, and they can go into the VIP swap's one update.
 *   An agent run by hand for an id that is no resource in the CIB keeps the
 *   live keys in crm_config too.
 *
 * readAll merges both in one query; setMany writes both in one update.
 */
import { run, firstLine } from '../ocf/exec';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseXml, findFirst, byTagId, type XmlElement } from './xml';
import { xmlEscape } from '../ocf/xml-escape';
import { randomUUID } from 'node:crypto';
import {
  buildModifyFragment,
  modifyConfiguration,
  modifyConfigurationIf,
  resourcePath,
  type AttributeRef,
  type CasOutcome,
  type NvpairCondition,
} from './resources';

/** A condition on one attribute of the record: its value, or (undefined) that it is absent. */
export interface RecordCondition {
  readonly name: string;
  readonly value: string | undefined;
}

/** crm_attribute's exit code for "no such attribute" (ENXIO). */
export const CRM_EX_NOSUCH = 105;

export type Timeout = () => number;

export class ClusterState {
  /** The crm_config property set (lasting keys). */
  readonly setId: string;
  /** The resource's meta attribute set (live keys). */
  readonly liveSetId: string;
  /** The resource's path under <resources>; null when it is not in the CIB. */
  private path: ReadonlyArray<readonly [string, string]> | null | undefined;

  constructor(
    /** The resource id; it holds the live keys. */
    private readonly instance: string,
    private readonly timeoutMs: Timeout,
    private readonly isLive: (name: string) => boolean = () => false,
  ) {
    this.setId = `pgtwin-migrate-${instance}`;
    this.liveSetId = `pgtwin-migrate-${instance}-live`;
  }

  private args(name: string): string[] {
    return ['--type', 'crm_config', '--set-name', this.setId, '--name', name];
  }

  async get(name: string): Promise<string | undefined> {
    if (this.isLive(name)) return (await this.readAll()).get(name);
    const r = await run('crm_attribute', [...this.args(name), '--query', '--quiet'], { timeoutMs: this.timeoutMs() });
    if (r.code === CRM_EX_NOSUCH) return undefined;
    if (r.code !== 0) throw this.failure('read', name, r);
    return r.stdout.replace(/\n$/, '');
  }

  async set(name: string, value: string): Promise<void> {
    if (this.isLive(name)) return this.setMany({ [name]: value });
    const r = await run('crm_attribute', [...this.args(name), '--update', value], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0) throw this.failure('write', name, r);
  }

  async delete(name: string): Promise<void> {
    const r = await run('crm_attribute', [...this.args(name), '--delete'], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0 && r.code !== CRM_EX_NOSUCH) throw this.failure('delete', name, r);
    if (!this.isLive(name)) return;
    const m = await run('cibadmin', ['--delete', '--xml-text', `<nvpair id="${xmlEscape(`${this.liveSetId}-${name}`)}"/>`], { timeoutMs: this.timeoutMs() });
    if (m.code !== 0 && m.code !== CRM_EX_NOSUCH) throw this.failure('delete', name, m);
  }

  /** Every attribute of the record, both parts, in one CIB query. */
  async readAll(): Promise<Map<string, string>> {
    const r = await run('cibadmin', ['--query', '--scope', 'configuration'], { timeoutMs: this.timeoutMs() });
    if (r.code !== 0) throw this.failure('read', '(all)', r);
    const doc = parseXml(r.stdout);
    const out = new Map<string, string>();
    const collect = (set: XmlElement | undefined, keep: (name: string) => boolean) => {
      for (const nv of set?.children ?? []) {
        if (nv.tag === 'nvpair' && nv.attrs.name !== undefined && keep(nv.attrs.name)) out.set(nv.attrs.name, nv.attrs.value ?? '');
      }
    };
    collect(findFirst(doc, byTagId('cluster_property_set', this.setId)), () => true);
    collect(findFirst(doc, byTagId('meta_attributes', this.liveSetId)), (n) => this.isLive(n));
    return out;
  }

  /**
   * Sets several attributes in ONE CIB update, so a reader never sees half
   * of a transition (e.g. a cutover step without its lease).
   */
  async setMany(values: Readonly<Record<string, string>>): Promise<void> {
    const { refs, crmConfigXml } = await this.fragment(values);
    if (refs.length > 0) {
      await modifyConfiguration(buildModifyFragment(refs, [], crmConfigXml), this.timeoutMs());
      return;
    }
    const r = await run('cibadmin', ['--modify', '--allow-create', '--scope', 'crm_config', '--xml-text', `<crm_config>${crmConfigXml}</crm_config>`], {
      timeoutMs: this.timeoutMs(),
    });
    if (r.code !== 0) throw this.failure('write', Object.keys(values).join(','), r);
  }

  /**
   * The values as parts of a CIB update (for setMany, or for a larger update
   * such as the VIP swap): live keys as nvpairs addressed by their path under
   * the resource, the others as a crm_config property set ('' when none).
   */
  async fragment(values: Readonly<Record<string, string>>): Promise<{ refs: Array<{ ref: AttributeRef; value: string }>; crmConfigXml: string }> {
    const all = Object.entries(values);
    const base = all.some(([n]) => this.isLive(n)) ? await this.resourcePath() : null;
    const onResource = base ? all.filter(([n]) => this.isLive(n)) : [];
    const inCrmConfig = all.filter((e) => !onResource.includes(e));
    const refs = onResource.map(([name, value]) => ({
      ref: { resource: this.instance, name, value: '', path: [...base!, ['meta_attributes', this.liveSetId], ['nvpair', `${this.liveSetId}-${name}`]] as const },
      value,
    }));
    return { refs, crmConfigXml: inCrmConfig.length > 0 ? this.propertySetXml(inCrmConfig) : '' };
  }

  /** The id of the nvpair that holds attribute `name` (as fragment() writes it). */
  async nvpairId(name: string): Promise<string> {
    return this.isLive(name) && (await this.resourcePath()) ? `${this.liveSetId}-${name}` : `${this.setId}-${name}`;
  }

  /**
   * Writes values in ONE CIB update only if every condition holds when the
   * CIB applies it (compare-and-swap), together with further changes
   * (extra nvpairs elsewhere, constraints) and further raw conditions.
   */
  async casMany(
    values: Readonly<Record<string, string>>,
    conditions: readonly RecordCondition[],
    extra: { refs?: ReadonlyArray<{ ref: AttributeRef; value: string }>; constraintsXml?: readonly string[]; conditions?: readonly NvpairCondition[] } = {},
  ): Promise<CasOutcome> {
    const { refs, crmConfigXml } = await this.fragment(values);
    const raw: NvpairCondition[] = [...(extra.conditions ?? [])];
    for (const c of conditions) raw.push({ id: await this.nvpairId(c.name), value: c.value });
    const fragment = buildModifyFragment([...refs, ...(extra.refs ?? [])], extra.constraintsXml ?? [], crmConfigXml);
    return modifyConfigurationIf(fragment, raw, this.timeoutMs());
  }

  /**
   * After an update whose outcome is unknown (cibadmin timed out): writes a
   * fresh barrier value and reads the record back. The CIB applies updates
   * in one order (CPG's total order across nodes), so once the barrier has
   * landed, an update sent before it has either landed or never will.
   * Throws when the CIB cannot be reached: then nothing can be known.
   */
  async barrier(name: string, timeoutMs = 60_000): Promise<Map<string, string>> {
    const value = randomUUID();
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.setMany({ [name]: value });
        const record = await this.readAll();
        if (record.get(name) === value) return record;
      } catch (err) {
        if (Date.now() > until) throw err;
      }
      if (Date.now() > until) throw new OcfError(OCF.ERR_GENERIC, `cannot tell whether a CIB update landed: the barrier ${name} did not land within ${timeoutMs / 1000} s; is Pacemaker running?`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Where the resource sits in <resources> (it may be in a group); read once. */
  private async resourcePath(): Promise<ReadonlyArray<readonly [string, string]> | null> {
    if (this.path === undefined) this.path = (await resourcePath(this.instance, this.timeoutMs())) ?? null;
    return this.path;
  }

  /** The crm_config set with these values, as a fragment for a larger CIB update. */
  private propertySetXml(values: ReadonlyArray<[string, string]>): string {
    const pairs = values
      .map(([n, v]) => `<nvpair id="${xmlEscape(`${this.setId}-${n}`)}" name="${xmlEscape(n)}" value="${xmlEscape(v)}"/>`)
      .join('');
    return `<cluster_property_set id="${xmlEscape(this.setId)}">${pairs}</cluster_property_set>`;
  }

  /** Removes the whole record, both parts (teardown). */
  async clear(): Promise<void> {
    for (const xml of [`<cluster_property_set id="${xmlEscape(this.setId)}"/>`, `<meta_attributes id="${xmlEscape(this.liveSetId)}"/>`]) {
      const r = await run('cibadmin', ['--delete', '--xml-text', xml], { timeoutMs: this.timeoutMs() });
      if (r.code !== 0 && r.code !== CRM_EX_NOSUCH) throw this.failure('delete', '(all)', r);
    }
  }

  private failure(what: string, name: string, r: { code: number | null; stderr: string; stdout: string; timedOut: boolean }) {
    const why = r.timedOut ? 'timed out' : `exit ${r.code}: ${firstLine(r)}`;
    return new OcfError(OCF.ERR_GENERIC, `cannot ${what} CIB attribute ${name} of ${this.setId} (${why}); is Pacemaker running?`);
  }
}

let nodeName: Promise<string> | undefined;

/**
 * Name of the node this agent runs on, as Pacemaker knows it: the one the
 * controller passes with every action it schedules (CRM_meta_on_node: probes,
 * start, stop, monitors, and the switch's worker, which inherits the
 * monitor's environment), else asked of crm_node (a person's command), once
 * per process (a failed answer is asked again). crm_node talks to the
 * controller and took up to half a second of a monitor on the rig.
 */
export function localNodeName(timeoutMs: number): Promise<string> {
  const given = process.env.OCF_RESKEY_CRM_meta_on_node?.trim();
  if (given) return Promise.resolve(given);
  nodeName ??= (async () => {
    const r = await run('crm_node', ['--name'], { timeoutMs });
    const name = r.stdout.trim();
    if (r.code !== 0 || name === '') {
      throw new OcfError(OCF.ERR_GENERIC, `crm_node --name failed (exit ${r.code}): ${firstLine(r)}; is Pacemaker running here?`);
    }
    return name;
  })();
  const asked = nodeName;
  asked.catch(() => {
    if (nodeName === asked) nodeName = undefined;
  });
  return asked;
}
