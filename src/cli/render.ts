/**
 * Plain-text rendering of the status report for people. Every value from a
 * cluster (names, problems, reasons) has its control characters made
 * visible: one row per database, whatever the names hold.
 */
import type { StatusReport } from '../migration/status';
import { escapeControls as e } from '../ocf/text';
import type { DatabaseHealth } from '../migration/health';
import { formatBytes, copyFraction } from '../migration/health';

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  return cells.map((r) => r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join('  ').trimEnd()).join('\n');
}

export function progressBar(fraction: number, width = 20): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export function copyProgress(h: DatabaseHealth, bars: boolean): string {
  if (h.state !== 'copying') return h.tablesTotal === null ? '-' : 'done';
  const f = copyFraction(h);
  const pct = f === null ? '' : `${Math.floor(f * 100)}%`;
  const size = h.copyTotalBytes ? ` of ${formatBytes(h.copyTotalBytes)}` : '';
  return bars && f !== null ? `${progressBar(f)} ${pct}${size}` : `${pct}${size}`.trim() || 'copying';
}

export interface RenderOptions {
  /** Draw progress bars (a terminal). */
  readonly bars?: boolean;
}

export function renderStatus(r: StatusReport, opts: RenderOptions = {}): string {
  const c = r.cib;
  const cutover = c['cutover-state']
    ? `cutover ${c['cutover-state']}: step ${c['cutover-step'] ?? '?'}` +
      (c['cutover-window-ms'] ? `, read-only window ${c['cutover-window-ms']} ms, total ${c['cutover-total-ms']} ms` : '') +
      (c['cutover-error'] ? `\n  ! ${e(c['cutover-error'])}` : '') +
      (c['cutover-log'] ? `\n  log: ${e(c['cutover-log'])}` : '')
    : undefined;
  const head = [`migration ${e(r.resource)}: phase ${e(r.phase)}${r.startedAt ? `, started ${e(r.startedAt)}` : ''}`, ...(cutover ? [cutover] : [])].join('\n');
  if (r.phase === 'complete') {
    const rows = [['DATABASE', 'REVERSE (target → source)', 'LAG', 'OBSERVED']];
    for (const d of r.reverse) rows.push([e(d.database), d.state, formatBytes(d.lagBytes), d.observedAt.slice(11, 19)]);
    const problems = r.reverse.filter((d) => d.problem).map((d) => `  ! ${e(d.problem!)}`);
    return [head, pad(rows), ...problems].join('\n') + '\n';
  }
  const rows = [['DATABASE', 'STATE', 'TABLES', 'COPY', 'LAG', 'LAG(s)', 'DDL!', 'OBSERVED']];
  for (const d of r.databases) {
    rows.push([
      e(d.database),
      d.state,
      d.tablesTotal === null ? '-' : `${d.tablesReady}/${d.tablesTotal}`,
      copyProgress(d, opts.bars ?? false),
      formatBytes(d.lagBytes),
      d.lagSeconds === null ? '?' : d.lagSeconds.toFixed(1),
      String(d.ddlNotReplayed),
      d.observedAt.slice(11, 19),
    ]);
  }
  const problems = r.databases.filter((d) => d.problem).map((d) => `  ! ${e(d.problem!)}`);
  const ddl = r.databases
    .filter((d) => d.ddlNotReplayed > 0)
    .map((d) => `  ! ${JSON.stringify(d.database)}: ${d.ddlNotReplayed} DDL statement(s) not replayed; latest ${e(d.ddlLatest ?? '')}`);
  return [head, pad(rows), ...problems, ...ddl].join('\n') + '\n';
}
