/**
 * OCF 1.1 meta-data, generated from the parameter table. The DOCTYPE names
 * resource-agents' ra-api-1.dtd (so `xmllint --valid` and ocf-tester check it)
 * and its internal subset declares the two OCF 1.1 additions that DTD
 * predates: the `reloadable` attribute and the `reload-agent` action name.
 * An internal-subset declaration is binding over the external one.
 */
import { PARAMS, type ParamSpec } from './params';
import { xmlEscape } from './xml-escape';

export const AGENT_NAME = 'pgtwin-migrate';

export interface ActionSpec {
  readonly name: string;
  readonly timeout: number;
  readonly interval?: number;
  readonly depth?: number;
}

export const ACTIONS: readonly ActionSpec[] = [
  { name: 'start', timeout: 600 },
  { name: 'stop', timeout: 60 },
  { name: 'monitor', timeout: 30, interval: 10, depth: 0 },
  { name: 'reload-agent', timeout: 30 },
  { name: 'meta-data', timeout: 5 },
  { name: 'validate-all', timeout: 30, depth: 0 },
  { name: 'validate-all', timeout: 120, depth: 10 },
];

function parameterXml(p: ParamSpec): string {
  const attrs = [`name="${p.name}"`, `unique="0"`, `required="${p.required ? 1 : 0}"`];
  if (p.reloadable) attrs.push('reloadable="1"');
  let longdesc = p.longdesc;
  if ('choices' in p && p.choices) longdesc += `\nAllowed values: ${p.choices.join(', ')}.`;
  return [
    `<parameter ${attrs.join(' ')}>`,
    `<longdesc lang="en">\n${xmlEscape(longdesc)}\n</longdesc>`,
    `<shortdesc lang="en">${xmlEscape(p.shortdesc)}</shortdesc>`,
    `<content type="${p.type}" default="${xmlEscape(p.default)}" />`,
    `</parameter>`,
  ].join('\n');
}

function actionXml(a: ActionSpec): string {
  const attrs = [`name="${a.name}"`, `timeout="${a.timeout}s"`];
  if (a.interval !== undefined) attrs.push(`interval="${a.interval}s"`);
  if (a.depth !== undefined) attrs.push(`depth="${a.depth}"`);
  return `<action ${attrs.join(' ')} />`;
}

export function metaDataXml(version: string): string {
  return `<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd" [
<!ATTLIST parameter reloadable (0|1) "0">
<!ATTLIST action name CDATA #REQUIRED>
]>
<resource-agent name="${AGENT_NAME}" version="${xmlEscape(version)}">
<version>1.1</version>

<longdesc lang="en">
Upgrades PostgreSQL between major versions (e.g. 17 to 18) by logical replication between two
Pacemaker-managed clusters, for many databases at once. Start sets up one publication,
subscription, replication slot and DDL trigger per database and copies the data; monitor
watches health, lag and copy progress of every database; setting cutover_ready=true runs one
atomic cutover of all databases (writes fenced, every database proven in sync, sequences carried
over, production VIP moved to the target in one cluster transaction, reverse replication started
as the way back), after which the resource stops itself. Stop keeps replication unless
teardown_on_stop=true, so a restart or move never copies again.
</longdesc>
<shortdesc lang="en">PostgreSQL major-version migration by logical replication</shortdesc>

<parameters>
${PARAMS.map(parameterXml).join('\n\n')}
</parameters>

<actions>
${ACTIONS.map(actionXml).join('\n')}
</actions>
</resource-agent>
`;
}
