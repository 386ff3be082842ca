/**
 * The README's parameter table and the man page pgtwin-migrate(7), both
 * generated from the one parameter table (src/ocf/params.ts), like the
 * meta-data. `make docs` writes them; a test fails when they are stale.
 */
import { PARAMS, type ParamGroup, type ParamSpec } from './params';
import { ACTIONS } from './metadata';

export const GROUP_TITLES: Record<ParamGroup, string> = {
  databases: 'Databases',
  clusters: 'Clusters, nodes and addresses',
  access: 'Access and client programs',
  names: 'Object names',
  behaviour: 'Behaviour',
  cutover: 'Cutover',
};

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

function allowed(p: ParamSpec): string {
  return p.choices ? ` Allowed: ${p.choices.map((c) => `\`${c}\``).join(', ')}.` : '';
}

/** The README section between the PARAMETERS markers. */
export function parameterTableMarkdown(): string {
  const out: string[] = [];
  for (const group of Object.keys(GROUP_TITLES) as ParamGroup[]) {
    const params = (PARAMS as readonly ParamSpec[]).filter((p) => p.group === group);
    out.push(`#### ${GROUP_TITLES[group]}`, '', '| Parameter | Default | Reload | Description |', '| --- | --- | --- | --- |');
    for (const p of params) {
      const flags = [p.required ? '**required**' : '', p.deprecatedFor ? `*deprecated: use \`${p.deprecatedFor}\`*` : ''].filter(Boolean).join(' ');
      const def = p.default === '' ? '(empty)' : `\`${p.default}\``;
      const desc = `${flags ? `${flags} ` : ''}${oneLine(p.longdesc)}${allowed(p)}`.replace(/\|/g, '\\|');
      out.push(`| \`${p.name}\` | ${def} | ${p.reloadable ? 'yes' : 'restart'} | ${desc} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

const roff = (text: string) =>
  text
    .replace(/\\/g, '\\e')
    .replace(/^([.'])/gm, '\\&$1')
    .replace(/-/g, '\\-');

/** pgtwin-migrate(7) in man(7) markup. */
export function manPage(version: string, date: string): string {
  const lines: string[] = [
    `.TH PGTWIN\\-MIGRATE 7 "${date}" "pgtwin-migrate ${version}" "Pacemaker resource agents"`,
    '.SH NAME',
    'pgtwin\\-migrate \\- PostgreSQL major\\-version migration by logical replication, as a Pacemaker OCF resource agent',
    '.SH SYNOPSIS',
    '.B /usr/lib/ocf/resource.d/heartbeat/pgtwin\\-migrate',
    '.RI { start | stop | monitor | reload\\-agent | validate\\-all | meta\\-data | usage }',
    '.br',
    '.B pgtwin\\-migrate',
    '.RI { status " [" \\-\\-json "] [" \\-\\-watch "] [" \\-\\-proof "] | " preflight " | " cutover " [" \\-\\-retry "] [" \\-\\-wait "] | " failback " [" \\-\\-retry "] [" \\-\\-wait "] | " finish " " \\-\\-yes " | " teardown " " \\-\\-yes }',
    '.RB [ \\-\\-resource',
    '.IR id ]',
    '.SH DESCRIPTION',
    roff(
      'pgtwin-migrate upgrades PostgreSQL between major versions (for example 17 to 18) with logical replication between two Pacemaker-managed clusters, for many databases at once. Start sets up, per database, a publication FOR ALL TABLES on the source primary, a subscription with its replication slot on the target primary, and DDL replication; monitor watches health, lag and copy progress of every database; setting cutover_ready=true runs one atomic cutover of all databases: writes fenced on the source, every database proven in sync, sequences carried over, the production VIP moved to the target in one CIB update, reverse replication started for the way back. The resource then keeps running in phase reverse and watches the way back; failback runs the same atomic operation back to the source, and finish ends the way back deliberately.',
    ),
    '.PP',
    roff('Configure it as a primitive, for example:'),
    '.PP',
    '.nf',
    roff('crm configure primitive migration-forward ocf:heartbeat:pgtwin-migrate \\'),
    roff('    params databases="postgres,myapp,analytics" \\'),
    roff('        source_cluster=postgres-clone target_cluster=postgres-clone-18 \\'),
    roff('        source_replication_vip=192.168.60.104 target_replication_vip=192.168.60.105 \\'),
    roff('        production_vip_resource=postgres-vip target_vip_resource=postgres-vip-18 \\'),
    roff('    op start timeout=600s op stop timeout=60s op monitor timeout=30s interval=10s'),
    '.fi',
    '.PP',
    roff('or, with pcs:'),
    '.PP',
    '.nf',
    roff('pcs resource create migration-forward ocf:heartbeat:pgtwin-migrate \\'),
    roff('    databases="postgres,myapp,analytics" \\'),
    roff('    source_cluster=postgres-clone target_cluster=postgres-clone-18 \\'),
    roff('    source_replication_vip=192.168.60.104 target_replication_vip=192.168.60.105 \\'),
    roff('    production_vip_resource=postgres-vip target_vip_resource=postgres-vip-18 \\'),
    roff('    op start timeout=600s op stop timeout=60s op monitor timeout=30s interval=10s'),
    '.fi',
    '.SH PHASES',
    '.TP',
    '.B forward',
    roff('Forward replication from the source to the target; the target is fenced (refuses client writes). Cut over with pgtwin-migrate cutover --resource ID [--wait], or crm resource param ID set cutover_ready true (pcs resource update ID cutover_ready=true).'),
    '.TP',
    '.B cutover, failback',
    roff('A switch runs in a detached worker: fence the side that takes writes, prove every slot drained, carry sequences over, swap the VIP addresses in one CIB update, lift the fence of the other side only once the production address is proven to lead there. A worker that dies is rolled back before the swap and forward after it. A switch whose address cannot be proven is blocked: both sides stay fenced, monitor exits 1 with the reason and retries.'),
    '.TP',
    '.B reverse',
    roff('After a cutover: the target takes writes, reverse replication (target to source) is watched as forward replication was, and the source stays fenced. Fail back with pgtwin-migrate failback --resource ID [--wait], or cutover_ready set false then true (crm resource param ID set cutover_ready false, then true; pcs resource update ID cutover_ready=false, then =true). End the way back with pgtwin-migrate finish --resource ID --yes, or crm resource param ID set finish true (pcs resource update ID finish=true).'),
    '.TP',
    '.B finishing',
    roff('finish has begun removing the way back: no fence is repaired and no switch starts; a finish cut short (timeout, node lost) is carried on by the next start or monitor, on any node.'),
    '.TP',
    '.B finished',
    roff('Every object of the migration removed from both clusters; the resource stopped. pgtwin-migrate teardown --resource ID --yes removes the record, after which a new migration may start.'),
    '.PP',
    roff('pgtwin-migrate status shows the history; pgtwin-migrate status --proof --json prints the proof of every completed switch. teardown_on_stop=true removes the migration at a stop in phase forward only.'),
    '.SH PARAMETERS',
  ];
  for (const group of Object.keys(GROUP_TITLES) as ParamGroup[]) {
    lines.push(`.SS ${roff(GROUP_TITLES[group])}`);
    for (const p of (PARAMS as readonly ParamSpec[]).filter((x) => x.group === group)) {
      const notes = [
        p.required ? 'required' : '',
        p.reloadable ? 'reloadable' : '',
        p.deprecatedFor ? `deprecated, use ${p.deprecatedFor}` : '',
      ].filter(Boolean);
      lines.push('.TP', `.B ${roff(p.name)} ${notes.length ? `(${roff(notes.join(', '))})` : ''}`.trimEnd());
      lines.push(`${roff(oneLine(p.longdesc))}${roff(p.choices ? ` Allowed: ${p.choices.join(', ')}.` : '')} Default: ${p.default === '' ? 'empty' : roff(p.default)}.`);
    }
  }
  lines.push(
    '.SH ACTIONS',
    roff(ACTIONS.map((a) => `${a.name} (timeout ${a.timeout}s${a.interval ? `, interval ${a.interval}s` : ''}${a.depth !== undefined ? `, depth ${a.depth}` : ''})`).join('; ')) + '.',
    '.SH EXIT STATUS',
    roff(
      '0 success; 1 generic or transient error (a server unreachable, a database broken); 2 invalid arguments; 3 unknown action; 5 missing Pacemaker tools; 6 configuration error (bad parameter, missing database, wrong password, too few slots, table without primary key); 7 not running on this node; 190 degraded (DDL not replayed, a copy failing, a cutover that failed and was rolled back). The last line on standard error starting with ocf-exit-reason: says why.',
    ),
    '.SH FILES',
    '.TP',
    roff('PGHOME/.migration_state_TOKEN'),
    roff('Per-database state of this node: lag, quiesced, reverse_prepared, tables, copy progress, last_update.'),
    '.TP',
    roff('PGHOME/.pgtwin_migrate_cutover.log'),
    roff('Symbolic link to the log of the latest cutover.'),
    '.TP',
    roff('HA_RSCTMP/pgtwin-migrate-INSTANCE.running'),
    roff('Marker: this node runs the migration resource.'),
    '.SH SEE ALSO',
    '.BR crm (8),',
    '.BR pcs (8),',
    '.BR crm_mon (8),',
    '.BR pg_dump (1),',
    roff('the README shipped in /usr/share/doc/pgtwin-migrate.'),
    '',
  );
  return lines.join('\n');
}
