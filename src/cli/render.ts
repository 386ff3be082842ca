/** Plain-text rendering of the status report for people. */
import type { StatusReport } from '../migration/status';
import type { DatabaseHealth } from '../migration/health';
import { formatBytes } from '../migration/health';

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  return cells.map((r) => r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join('  ').trimEnd()).join('\n');
}

export function copyProgress(h: DatabaseHealth): string {
  if (h.state !== 'copying') return h.tablesTotal === null ? '-' : 'done';
  if (h.copyTotalBytes && h.copyTotalBytes > 0) {
    return `${formatBytes(h.copyBytes)} in flight of ${formatBytes(h.copyTotalBytes)}`;
  }
  return `${formatBytes(h.copyBytes)} in flight`;
}

export function renderStatus(r: StatusReport): string {
  const c = r.cib;
  const cutover = c['cutover-state']
    ? `cutover ${c['cutover-state']}: step ${c['cutover-step'] ?? '?'}` +
      (c['cutover-window-ms'] ? `, read-only window ${c['cutover-window-ms']} ms, total ${c['cutover-total-ms']} ms` : '') +
      (c['cutover-error'] ? `\n  ! ${c['cutover-error']}` : '') +
      (c['cutover-log'] ? `\n  log: ${c['cutover-log']}` : '')
    : undefined;
  const head = [`migration ${r.resource}: phase ${r.phase}${r.startedAt ? `, started ${r.startedAt}` : ''}`, ...(cutover ? [cutover] : [])].join('\n');
  const rows = [['DATABASE', 'STATE', 'TABLES', 'COPY', 'LAG', 'LAG(s)', 'DDL!', 'OBSERVED']];
  for (const d of r.databases) {
    rows.push([
      d.database,
      d.state,
      d.tablesTotal === null ? '-' : `${d.tablesReady}/${d.tablesTotal}`,
      copyProgress(d),
      formatBytes(d.lagBytes),
      d.lagSeconds === null ? '?' : d.lagSeconds.toFixed(1),
      String(d.ddlNotReplayed),
      d.observedAt.slice(11, 19),
    ]);
  }
  const problems = r.databases.filter((d) => d.problem).map((d) => `  ! ${d.problem}`);
  const ddl = r.databases.filter((d) => d.ddlNotReplayed > 0).map((d) => `  ! ${JSON.stringify(d.database)}: ${d.ddlNotReplayed} DDL statement(s) not replayed; latest ${d.ddlLatest}`);
  return [head, pad(rows), ...problems, ...ddl].join('\n') + '\n';
}
