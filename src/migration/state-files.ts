/**
 * Files on this node (DESIGN §4): the per-database state files of the seed,
 * `.migration_state_<token>`, and the baseline database list, written
 * atomically (temporary file + rename) with mode 0640; and the marker under
 * HA_RSCTMP that says "this node runs the migration resource".
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { redact } from '../ocf/redact';

export function atomicWrite(file: string, content: string, mode = 0o640): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, redact(content), { mode });
  renameSync(tmp, file);
}

export type StateFields = Record<string, string | number | boolean | null | undefined>;

/** key=value lines; a value with anything but safe characters is JSON-quoted. */
export function formatState(fields: StateFields): string {
  return (
    Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => {
        const s = v === null ? 'unknown' : String(v);
        return `${k}=${/^[A-Za-z0-9_.:+\-/]*$/.test(s) ? s : JSON.stringify(s)}`;
      })
      .join('\n') + '\n'
  );
}

export function parseState(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    const raw = m[2]!;
    out[m[1]!] = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
  }
  return out;
}

export const stateFileName = (token: string) => `.migration_state_${token}`;

// A process reads each state file once: a monitor consults it several times per database.
const cache = new Map<string, Record<string, string> | undefined>();

export function writeStateFile(dir: string, token: string, fields: StateFields): void {
  const file = join(dir, stateFileName(token));
  const text = formatState(fields);
  atomicWrite(file, text);
  cache.set(file, parseState(text));
}

export function readStateFile(dir: string, token: string): Record<string, string> | undefined {
  const file = join(dir, stateFileName(token));
  if (!cache.has(file)) cache.set(file, existsSync(file) ? parseState(readFileSync(file, 'utf8')) : undefined);
  return cache.get(file);
}

/** Updates some fields of a state file, keeping the others. */
export function updateStateFile(dir: string, token: string, fields: StateFields): void {
  writeStateFile(dir, token, { ...readStateFile(dir, token), ...fields, last_update: new Date().toISOString() });
}

export function removeStateFiles(dir: string, tokens: readonly string[]): void {
  for (const t of tokens) {
    rmSync(join(dir, stateFileName(t)), { force: true });
    cache.delete(join(dir, stateFileName(t)));
  }
}

export const baselineFileName = (instance: string) => `.pgtwin_migrate_databases_${instance}`;

export function writeBaselineFile(dir: string, instance: string, databases: readonly string[]): void {
  atomicWrite(join(dir, baselineFileName(instance)), `${JSON.stringify({ databases, recorded_at: new Date().toISOString() })}\n`);
}

export function removeBaselineFile(dir: string, instance: string): void {
  rmSync(join(dir, baselineFileName(instance)), { force: true });
}

// ---------------------------------------------------------------- marker

export interface Marker {
  readonly node: string;
  readonly startedAt: string;
  /** Reloadable parameter values last applied (start or reload-agent). */
  readonly applied: Record<string, string>;
}

export const markerPath = (rscTmp: string, instance: string) => join(rscTmp, `pgtwin-migrate-${instance}.running`);

export function readMarker(rscTmp: string, instance: string): Marker | undefined {
  try {
    return JSON.parse(readFileSync(markerPath(rscTmp, instance), 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

export function writeMarker(rscTmp: string, instance: string, marker: Marker): void {
  mkdirSync(rscTmp, { recursive: true });
  atomicWrite(markerPath(rscTmp, instance), JSON.stringify(marker), 0o600);
}

export function removeMarker(rscTmp: string, instance: string): void {
  rmSync(markerPath(rscTmp, instance), { force: true });
}

export function listStateFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.startsWith('.migration_state_'));
  } catch {
    return [];
  }
}
