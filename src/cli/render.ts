/**
 * Plain-text rendering of the status report for people. Every value from a
 * cluster (names, problems, reasons) has its control characters made
 * visible: one row per database, whatever the names hold.
 */
import type { StatusReport } from '../migration/status';
import { escapeControls as e } from '../ocf/text';
import type { DatabaseHealth } from '../migration/health';
import { formatBytes, copyFraction, noIdentityProblem } from '../migration/health';
import type { Proof } from '../migration/cutover/proof';

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
  const history = r.history.length > 0 ? ['history:', ...r.history.map((h) => `  ${h.at.replace('T', ' ').slice(0, 19)}  ${e(h.event)}${h.detail ? `: ${e(h.detail)}` : ''}`)] : [];
  const head = [`migration ${e(r.resource)}: phase ${e(r.phase)}${r.startedAt ? `, started ${e(r.startedAt)}` : ''}`, ...(cutover ? [cutover] : []), ...history].join('\n');
  const reverse = r.phase === 'reverse' || r.phase === 'failback';
  const rows = [['DATABASE', reverse ? 'REVERSE (target → source)' : 'STATE', 'TABLES', 'COPY', 'LAG', 'LAG(s)', 'DDL!', 'OBSERVED']];
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
    .map((d) => `  ! ${JSON.stringify(d.database)}: ${d.ddlNotReplayed} DDL statement(s) not replayed on the ${reverse ? 'source' : 'target'}; latest ${e(d.ddlLatest ?? '')}`);
  const noIdentity = r.databases.filter((d) => d.noIdentity.length > 0).map((d) => `  ! ${e(noIdentityProblem(d))}`);
  return [head, pad(rows), ...problems, ...noIdentity, ...ddl].join('\n') + '\n';
}

/** The proofs of the completed switches, for people (status --proof; --json gives the full record). */
export function renderProofs(proofs: readonly Proof[]): string {
  if (proofs.length === 0) return 'no switch has completed yet\n';
  const out: string[] = [];
  proofs.forEach((p, i) => {
    out.push(
      `#${i + 1} ${p.kind} (${p.from} → ${p.to}): fenced ${p.fencedAt ?? '?'}, swapped ${p.swappedAt ?? '?'}, first write ${p.firstWriteAt ?? '?'}; read-only window ${p.windowMs ?? '?'} ms`,
      `   fence position ${p.fenceLsn ?? '?'}; address: ${e(p.addressProof ?? '?')}`,
      ...(p.durable ? [`   before the swap: ${e(p.durable)}`] : []),
    );
    const rows = [['DATABASE', 'FENCE LSN', 'SLOT CONFIRMED', 'LEFT IN SLOT', 'CARRIED OVER', 'TABLES', 'SEQUENCES']];
    for (const d of p.databases) {
      rows.push([e(d.database), d.fenceLsn ?? '?', d.slotConfirmedLsn ?? '?', String(d.pendingAtProof ?? '?'), String(d.carriedOver ?? 0), String(d.tables ?? '?'), String(d.sequences?.length ?? 0)]);
    }
    out.push(pad(rows).replace(/^/gm, '   '));
  });
  return `${out.join('\n')}\n`;
}
