/**
 * Instance and meta attributes of Pacemaker resources, read from the CIB and
 * changed either one at a time (crm_resource) or several at once in a single
 * CIB update (the VIP swap), addressed by the ids the CIB already has so a
 * change can never add a second, shadowing nvpair.
 */
import { run, firstLine } from '../ocf/exec';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseXml, findFirst, type XmlElement } from './xml';
import { xmlEscape } from '../ocf/xml-escape';

export interface AttributeRef {
  readonly resource: string;
  readonly name: string;
  readonly value: string;
  /** The element path from <resources> down to the nvpair: [tag, id] pairs. */
  readonly path: ReadonlyArray<readonly [string, string]>;
}

export async function readResourcesSection(timeoutMs: number): Promise<XmlElement> {
  const r = await run('cibadmin', ['--query', '--scope', 'resources'], { timeoutMs });
  if (r.code !== 0) {
    throw new OcfError(OCF.ERR_GENERIC, `cannot read the CIB resources (cibadmin exit ${r.code}: ${firstLine(r)}); is Pacemaker running?`);
  }
  return parseXml(r.stdout);
}

const PRIMITIVE_TAGS = new Set(['primitive', 'clone', 'group', 'master', 'bundle']);

/** The resource (primitive, clone, group, bundle) with this id, wherever it sits under <resources>. */
function findResource(resources: XmlElement, id: string): XmlElement | undefined {
  return findFirst(resources, (e) => PRIMITIVE_TAGS.has(e.tag) && e.attrs.id === id);
}

/** The instance (or meta) attribute `name` of resource `id`, with its CIB path. */
export function findAttribute(
  resources: XmlElement,
  id: string,
  name: string,
  section: 'instance_attributes' | 'meta_attributes' = 'instance_attributes',
): AttributeRef | undefined | 'no-resource' {
  const rsc = findResource(resources, id);
  if (!rsc) return 'no-resource';
  const sets = rsc.children.filter((c) => c.tag === section);
  const hits = sets.flatMap((s) => s.children.filter((n) => n.tag === 'nvpair' && n.attrs.name === name));
  const nv = hits[0];
  if (!nv) return undefined;
  return { resource: id, name, value: nv.attrs.value ?? '', path: pathOf(nv) };
}

/** How many instance attribute sets of resource `id` name `name` (more than one: rules or scores choose among them). */
export function attributeCount(root: XmlElement, id: string, name: string): number {
  const rsc = findResource(root, id);
  if (!rsc) return 0;
  return rsc.children.filter((c) => c.tag === 'instance_attributes').filter((s) => s.children.some((n) => n.tag === 'nvpair' && n.attrs.name === name)).length;
}

/**
 * Resource `id`'s instance attributes as one comparable text (sorted
 * name=value lines); undefined when there is no such resource. A digest
 * Pacemaker computed for one text holds only while the text is the same.
 */
export function instanceParamsText(root: XmlElement, id: string, overrides: Readonly<Record<string, string>> = {}): string | undefined {
  const rsc = findResource(root, id);
  if (!rsc) return undefined;
  const valueOf = (n: XmlElement) => overrides[n.attrs.name ?? ''] ?? n.attrs.value ?? '';
  const pairs = rsc.children
    .filter((c) => c.tag === 'instance_attributes')
    .flatMap((s) => s.children.filter((n) => n.tag === 'nvpair').map((n) => `${n.attrs.name ?? ''}=${valueOf(n)}`));
  return pairs.sort().join('\n');
}

/** [tag, id] pairs from below <resources> down to the element. */
function pathOf(el: XmlElement): Array<[string, string]> {
  const path: Array<[string, string]> = [];
  for (let e: XmlElement | undefined = el; e && e.tag !== 'resources'; e = e.parent) {
    path.unshift([e.tag, e.attrs.id ?? '']);
  }
  return path;
}

/** Where resource `id` sits under <resources> (it may be inside a group or clone); undefined when it is not there. */
export async function resourcePath(id: string, timeoutMs: number): Promise<Array<[string, string]> | undefined> {
  const rsc = findResource(await readResourcesSection(timeoutMs), id);
  return rsc ? pathOf(rsc) : undefined;
}

export function requireAttribute(resources: XmlElement, id: string, name: string): AttributeRef {
  const ref = findAttribute(resources, id, name);
  if (ref === 'no-resource') throw new OcfError(OCF.ERR_CONFIGURED, `resource ${id} is not in the CIB; check the resource name parameters`);
  if (!ref) throw new OcfError(OCF.ERR_CONFIGURED, `resource ${id} has no instance attribute ${name}; set vip_parameter to the attribute that holds its address`);
  return ref;
}

interface FragmentNode {
  tag: string;
  id: string;
  attrs: string;
  children: Map<string, FragmentNode>;
}

/**
 * One <configuration> fragment that sets every given attribute through its
 * existing path, plus extra constraint elements (already serialised).
 */
export function buildModifyFragment(
  changes: ReadonlyArray<{ ref: AttributeRef; value: string }>,
  constraintsXml: readonly string[] = [],
  crmConfigXml = '',
): string {
  const root: FragmentNode = { tag: 'resources', id: '', attrs: '', children: new Map() };
  for (const { ref, value } of changes) {
    let node = root;
    ref.path.forEach(([tag, id], i) => {
      const last = i === ref.path.length - 1;
      const key = `${tag}#${id}`;
      let child = node.children.get(key);
      if (!child) {
        child = { tag, id, attrs: '', children: new Map() };
        node.children.set(key, child);
      }
      if (last) child.attrs = ` name="${xmlEscape(ref.name)}" value="${xmlEscape(value)}"`;
      node = child;
    });
  }
  const render = (n: FragmentNode): string =>
    `<${n.tag} id="${xmlEscape(n.id)}"${n.attrs}>${[...n.children.values()].map(render).join('')}</${n.tag}>`;
  const resources = `<resources>${[...root.children.values()].map(render).join('')}</resources>`;
  const constraints = constraintsXml.length > 0 ? `<constraints>${constraintsXml.join('')}</constraints>` : '';
  const crmConfig = crmConfigXml ? `<crm_config>${crmConfigXml}</crm_config>` : '';
  return `<configuration>${crmConfig}${resources}${constraints}</configuration>`;
}

/** An XPath 1.0 string literal for any value (XPath has no escapes: concat() joins quote kinds). */
export function xpathLiteral(value: string): string {
  if (!value.includes("'")) return `'${value}'`;
  if (!value.includes('"')) return `"${value}"`;
  return `concat(${value
    .split("'")
    .map((part) => `'${part}'`)
    .join(`, "'", `)})`;
}

/** A condition on one nvpair of the configuration, by its id. */
export interface NvpairCondition {
  readonly id: string;
  /** The value it must have; undefined: it must not exist. */
  readonly value: string | undefined;
}

export function conditionXpath(c: NvpairCondition): string {
  return c.value === undefined
    ? `not(.//nvpair[@id=${xpathLiteral(c.id)}])`
    : `.//nvpair[@id=${xpathLiteral(c.id)} and @value=${xpathLiteral(c.value)}]`;
}

/**
 * applied: the update landed; refused: a condition did not hold and nothing
 * changed; unknown: cibadmin did not answer in time or failed in transit, so
 * the update may still land (learn which with ClusterState.barrier, never assume).
 */
export type CasOutcome = 'applied' | 'refused' | 'unknown';

/**
 * Applies a fragment as ONE CIB update only if every condition holds at the
 * moment the CIB applies it: the merge targets /cib/configuration through an
 * XPath that matches only when the conditions hold (a compare-and-swap).
 */
export async function modifyConfigurationIf(fragment: string, conditions: readonly NvpairCondition[], timeoutMs: number): Promise<CasOutcome> {
  const xpath = conditions.length === 0 ? '/cib/configuration' : `/cib/configuration[${conditions.map(conditionXpath).join(' and ')}]`;
  const r = await run('cibadmin', ['--modify', '--allow-create', '--xpath', xpath, '--xml-text', fragment], { timeoutMs });
  if (r.code === 0) return 'applied';
  // ENXIO: the XPath matched nothing, so a condition did not hold.
  if (r.code === 105) return 'refused';
  // Refused by schema validation: the CIB applied nothing.
  if (r.code === 78 || /does not conform|schema/i.test(r.stderr)) {
    throw new OcfError(OCF.ERR_GENERIC, `CIB update refused (cibadmin exit ${r.code}: ${firstLine(r)}); nothing was changed`);
  }
  return 'unknown';
}

/** Applies a fragment built by buildModifyFragment as ONE CIB update. */
export async function modifyConfiguration(fragment: string, timeoutMs: number): Promise<void> {
  const r = await run('cibadmin', ['--modify', '--allow-create', '--scope', 'configuration', '--xml-text', fragment], { timeoutMs });
  if (r.code !== 0) {
    throw new OcfError(OCF.ERR_GENERIC, `CIB update failed (cibadmin exit ${r.code}: ${firstLine(r)}); nothing was changed`);
  }
}

/** Sets one meta attribute (e.g. target-role) of a resource. */
export async function setMetaAttribute(resource: string, name: string, value: string, timeoutMs: number): Promise<void> {
  const r = await run('crm_resource', ['--resource', resource, '--meta', '--set-parameter', name, '--parameter-value', value], { timeoutMs });
  if (r.code !== 0) {
    throw new OcfError(OCF.ERR_GENERIC, `cannot set ${name}=${value} on ${resource} (crm_resource exit ${r.code}: ${firstLine(r)})`);
  }
}

/** Sets one instance attribute of a resource (e.g. cutover_ready of the migration). */
export async function setInstanceAttribute(resource: string, name: string, value: string, timeoutMs: number): Promise<void> {
  const r = await run('crm_resource', ['--resource', resource, '--set-parameter', name, '--parameter-value', value], { timeoutMs });
  if (r.code !== 0) {
    throw new OcfError(OCF.ERR_GENERIC, `cannot set ${name}=${value} on ${resource} (crm_resource exit ${r.code}: ${firstLine(r)})`);
  }
}

export interface AttributeChange {
  readonly resource: string;
  readonly name: string;
  readonly value: string;
  /** The value the attribute must have now; the update is refused otherwise. */
  readonly expect?: string;
}

/**
 * Changes instance attributes of several resources in ONE CIB update (one
 * epoch): no reader of the CIB can see some changed and others not. Every
 * attribute is addressed by its existing nvpair id; current values are
 * checked first and the result is read back.
 */
export async function setAttributesAtomically(
  changes: readonly AttributeChange[],
  constraintsXml: readonly string[],
  timeoutMs: number,
  /** Further attributes written in the same update (e.g. the cutover step). */
  extra: { refs: ReadonlyArray<{ ref: AttributeRef; value: string }>; crmConfigXml: string } = { refs: [], crmConfigXml: '' },
  /** Read the result back (a caller in a hurry verifies later with verifyAttributes). */
  verify = true,
): Promise<void> {
  const before = await readResourcesSection(timeoutMs);
  const refs = changes.map((c) => {
    const ref = requireAttribute(before, c.resource, c.name);
    if (c.expect !== undefined && ref.value !== c.expect) {
      throw new OcfError(
        OCF.ERR_GENERIC,
        `${c.resource} ${c.name} is ${ref.value}, expected ${c.expect}; the CIB changed underneath, nothing was updated`,
      );
    }
    return { ref, value: c.value };
  });
  await modifyConfiguration(buildModifyFragment([...refs, ...extra.refs], constraintsXml, extra.crmConfigXml), timeoutMs);
  if (verify) await verifyAttributes(changes, timeoutMs);
}

/** Reads the attributes back: each must have the value it was set to. */
export async function verifyAttributes(changes: readonly AttributeChange[], timeoutMs: number): Promise<void> {
  const after = await readResourcesSection(timeoutMs);
  for (const c of changes) {
    const now = requireAttribute(after, c.resource, c.name).value;
    if (now !== c.value) {
      throw new OcfError(OCF.ERR_GENERIC, `${c.resource} ${c.name} reads ${now} after the update, not ${c.value}; check the CIB`);
    }
  }
}
