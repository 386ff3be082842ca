/**
 * Files on this node (DESIGN §4): the per-database state files of the seed,
 * `.migration_state_<token>`, and the baseline database list, in the state
 * directory (the PostgreSQL OS user's home, which that user controls: every
 * write goes through ../ocf/safe-file, never through a link), mode 0640; and
 * the marker under HA_RSCTMP that says "this node runs the migration resource".
 */
import { mkdirSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { redact } from '../ocf/redact';
import { readOwnFile, writeFileAtomic } from '../ocf/safe-file';
import { log } from '../ocf/log';

export function atomicWrite(file: string, content: string, mode = 0o640, what = 'state directory'): void {
  writeFileAtomic(file, redact(content), mode, what);
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

/** Thrown by parseState: which line of the text is not key=value as formatState writes it. */
export class MalformedState extends Error {
  constructor(
    readonly line: number,
    why: string,
  ) {
    super(`line ${line}: ${why}`);
  }
}

export function parseState(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!m) throw new MalformedState(i + 1, 'not key=value');
    const raw = m[2]!;
    if (!raw.startsWith('"')) {
      out[m[1]!] = raw;
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new MalformedState(i + 1, `${m[1]} holds a broken quoted value`);
    }
    if (typeof value !== 'string') throw new MalformedState(i + 1, `${m[1]} holds a broken quoted value`);
    out[m[1]!] = value;
  });
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

/**
 * A state file's fields; a file that is not what formatState writes (or is
 * not a regular file) is named in a warning and treated as absent, so the
 * next write replaces it.
 */
export function readStateFile(dir: string, token: string): Record<string, string> | undefined {
  const file = join(dir, stateFileName(token));
  if (!cache.has(file)) {
    let fields: Record<string, string> | undefined;
    try {
      const text = readOwnFile(file);
      fields = text === undefined ? undefined : parseState(text);
    } catch (err) {
      log().warn(`state file ${file} is unusable (${(err as Error).message}); ignoring it, the next monitor writes it anew`);
    }
    cache.set(file, fields);
  }
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
    const text = readOwnFile(markerPath(rscTmp, instance));
    return text === undefined ? undefined : (JSON.parse(text) as Marker);
  } catch {
    return undefined;
  }
}

export function writeMarker(rscTmp: string, instance: string, marker: Marker): void {
  mkdirSync(rscTmp, { recursive: true, mode: 0o755 });
  atomicWrite(markerPath(rscTmp, instance), JSON.stringify(marker), 0o600, 'HA_RSCTMP');
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
