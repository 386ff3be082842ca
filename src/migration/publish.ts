/**
 * What monitor publishes for people and their tools: transient node
 * attributes for `crm_mon -A` and, with metrics_file, a Prometheus textfile.
 */
import { lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readOwnFile, writeFileAtomic, UnsafePathError } from '../ocf/safe-file';
import type { Plan } from './plan';
import type { DatabaseHealth } from './health';
import { setNodeAttribute, deleteNodeAttribute } from '../cluster/node-attributes';
import { CUTOVER_KEY } from './cutover/steps';
import { STEPS } from './cutover/steps';

/** Node attribute names of one migration resource. */
export function attributeNames(instance: string) {
  return {
    phase: `pgtwin-migrate-${instance}-phase`,
    lag: `pgtwin-migrate-${instance}-worst-lag`,
    inSync: `pgtwin-migrate-${instance}-in-sync`,
  };
}

export interface Headline {
  readonly phase: string;
  readonly worstLagBytes: number | null;
  readonly inSync: number;
  readonly total: number;
}

export function headline(phase: string, healths: readonly DatabaseHealth[]): Headline {
  const lags = healths.map((h) => h.lagBytes).filter((l): l is number => l !== null);
  return {
    phase,
    worstLagBytes: lags.length > 0 ? Math.max(...lags) : null,
    inSync: healths.filter((h) => h.state === 'streaming').length,
    total: healths.length,
  };
}

/**
 * The worst lag for people: exact bytes change at every look and would make
 * every monitor write the attribute; under 1 KiB it says so, above it keeps
 * two significant figures.
 */
export function lagText(bytes: number | null): string {
  if (bytes === null) return 'unknown';
  if (bytes === 0) return '0 B';
  if (bytes < 1024) return '<1 KiB';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number(v.toPrecision(2))} ${units[i]}`;
}

/**
 * Publishes the headline; values the last monitor on this node already
 * published (remembered next to the marker) are not sent again.
 */
export async function publishAttributes(plan: Plan, h: Headline): Promise<void> {
  const n = attributeNames(plan.instance);
  const t = plan.deadline.stepMs(5_000);
  const values: Record<string, string> = {
    [n.phase]: h.phase,
    [n.lag]: lagText(h.worstLagBytes),
    [n.inSync]: `${h.inSync}/${h.total}`,
  };
  const memo = join(plan.rscTmp, `pgtwin-migrate-${plan.instance}.attributes`);
  let last: Record<string, string> = {};
  try {
    last = JSON.parse(readOwnFile(memo) ?? '{}') as Record<string, string>;
  } catch {
    // unreadable: publish everything again
  }
  const changed = Object.entries(values).filter(([k, v]) => last[k] !== v);
  if (changed.length === 0) return;
  await Promise.all(changed.map(([k, v]) => setNodeAttribute(k, v, t)));
  try {
    writeFileAtomic(memo, JSON.stringify(values), 0o600, 'HA_RSCTMP');
  } catch {
    // the next monitor publishes again
  }
}

export async function withdrawAttributes(instance: string, rscTmp: string, timeoutMs: number): Promise<void> {
  rmSync(join(rscTmp, `pgtwin-migrate-${instance}.attributes`), { force: true });
  await Promise.all(Object.values(attributeNames(instance)).map((name) => deleteNodeAttribute(name, timeoutMs)));
}

// ---------------------------------------------------------------- Prometheus

/** A label value in the exposition format: backslash, double quote and newline escaped. */
export function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

type Sample = { labels: Record<string, string>; value: number | null };

function family(name: string, help: string, samples: readonly Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`];
  for (const s of samples) {
    if (s.value === null) continue;
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}="${labelValue(v)}"`)
      .join(',');
    lines.push(`${name}{${labels}} ${Number.isFinite(s.value) ? s.value : 'NaN'}`);
  }
  return lines.join('\n');
}

const STATES = ['streaming', 'copying', 'paused', 'broken'] as const;
const PHASES = ['forward', 'cutover', 'reverse', 'failback', 'finishing', 'finished'] as const;

export function renderMetrics(resource: string, phase: string, cib: ReadonlyMap<string, string>, healths: readonly DatabaseHealth[]): string {
  const r = { resource };
  const per = (fn: (h: DatabaseHealth) => number | null) => healths.map((h) => ({ labels: { ...r, database: h.database }, value: fn(h) }));
  const step = cib.get(CUTOVER_KEY.step);
  const windowMs = Number(cib.get(CUTOVER_KEY.windowMs));
  const parts = [
    family('pgtwin_migrate_lag_bytes', 'WAL bytes the subscription has not confirmed, measured on the publisher', per((h) => h.lagBytes)),
    family('pgtwin_migrate_lag_seconds', 'Replication lag in seconds', per((h) => h.lagSeconds)),
    family('pgtwin_migrate_tables_synced', 'Tables whose initial copy is done', per((h) => h.tablesReady)),
    family('pgtwin_migrate_tables_total', 'Tables in the subscription', per((h) => h.tablesTotal)),
    family('pgtwin_migrate_copy_bytes', 'Bytes copied so far by running table copies', per((h) => h.copyBytes)),
    family('pgtwin_migrate_ddl_not_replayed', 'DDL statements that could not be replayed on the target', per((h) => h.ddlNotReplayed)),
    family(
      'pgtwin_migrate_database_state',
      'State of each database (1 for the current state)',
      healths.flatMap((h) => STATES.map((s) => ({ labels: { ...r, database: h.database, state: s }, value: h.state === s ? 1 : 0 }))),
    ),
    family('pgtwin_migrate_phase', 'Phase of the migration (1 for the current phase)', PHASES.map((p) => ({ labels: { ...r, phase: p }, value: p === phase ? 1 : 0 }))),
    family(
      'pgtwin_migrate_cutover_step',
      'Step the last or running cutover reached (1 for that step)',
      step ? STEPS.map((s) => ({ labels: { ...r, step: s }, value: s === step ? 1 : 0 })) : [],
    ),
    family('pgtwin_migrate_last_cutover_window_seconds', 'Read-only window of the last completed cutover', [
      { labels: r, value: Number.isFinite(windowMs) ? windowMs / 1000 : null },
    ]),
    family('pgtwin_migrate_last_monitor_timestamp_seconds', 'When the monitor wrote this file', [{ labels: r, value: Math.round(Date.now() / 1000) }]),
  ];
  return `${parts.join('\n')}\n`;
}

/**
 * Atomic for node_exporter: write beside, rename over (../ocf/safe-file).
 * A metrics_file that is a symbolic link, or in a directory others may
 * write, is refused.
 */
export function writeMetricsFile(file: string, text: string): void {
  let link = false;
  try {
    link = lstatSync(file).isSymbolicLink();
  } catch {
    // not there yet
  }
  if (link) throw new UnsafePathError(`metrics_file ${file} is a symbolic link; the agent does not write through links: set metrics_file to the real path`);
  writeFileAtomic(file, text, 0o644, 'the directory of metrics_file');
}

