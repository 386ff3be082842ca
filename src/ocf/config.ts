/**
 * OCF_RESKEY_* → one typed, immutable configuration, read and checked by the
 * kinds the parameter table declares. Every problem is one line: what, which
 * parameter and value, how to fix it.
 */
import { PARAMS, type ParamKind, type ParamSpec } from './params';
import { OcfError, OCF } from './exit-codes';
import {
  MAX_IDENTIFIER_BYTES,
  MIN_TOKEN_BUDGET,
  objectNames,
  tokenBudget,
  type DatabaseObjects,
  type NamePrefixes,
} from '../migration/names';

type KindValue<K extends ParamKind> = K extends 'port' | 'count' | 'seconds'
  ? number
  : K extends 'port-or-empty'
    ? number | undefined
    : K extends 'boolean'
      ? boolean
      : K extends 'database-list'
        ? readonly string[]
        : string;

export type ParamValues = {
  readonly [P in (typeof PARAMS)[number] as P['name']]: KindValue<P['kind']>;
};

export interface Config extends ParamValues {
  /** The databases to migrate: `databases`, or the legacy `pgdatabase`. */
  readonly databaseList: readonly string[];
  readonly usesLegacyPgdatabase: boolean;
  readonly sourcePort: number;
  readonly targetPort: number;
  readonly prefixes: NamePrefixes;
  /** Object names per database, in list order. */
  readonly objects: readonly DatabaseObjects[];
}

const TRUE_WORDS = new Set(['yes', 'true', '1', 'on', 'y', 'ja']);
const FALSE_WORDS = new Set(['no', 'false', '0', 'off', 'n', 'nein']);

export function parseBoolean(raw: string): boolean | undefined {
  const v = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  return undefined;
}

/** Why PostgreSQL could not hold this database name, or undefined when it can. */
export function databaseNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.includes('\0')) return 'contains a NUL byte';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_IDENTIFIER_BYTES) return `is ${bytes} bytes long; PostgreSQL names hold at most ${MAX_IDENTIFIER_BYTES}`;
  return undefined;
}

const show = (s: string) => JSON.stringify(s);

/** The database list of DESIGN §2; throws the first problem as OCF_ERR_CONFIGURED. */
export function parseDatabaseList(raw: string): string[] {
  const items = raw.split(',').map((s) => s.trim());
  const seen = new Map<string, number>();
  items.forEach((name, i) => {
    const problem = databaseNameProblem(name);
    if (problem === 'is empty') {
      throw new OcfError(OCF.ERR_CONFIGURED, `databases: item ${i + 1} of ${show(raw)} is empty; remove the extra comma`);
    }
    if (problem) throw new OcfError(OCF.ERR_CONFIGURED, `databases: ${show(name)} ${problem}; fix the name in databases`);
    const first = seen.get(name);
    if (first !== undefined) {
      throw new OcfError(OCF.ERR_CONFIGURED, `databases: ${show(name)} is listed twice (items ${first + 1} and ${i + 1}); list it once`);
    }
    seen.set(name, i);
  });
  return items;
}

function parsePort(name: string, raw: string): number {
  const v = raw.trim();
  if (/^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535) return Number(v);
  throw new OcfError(OCF.ERR_CONFIGURED, `${name}=${show(raw)} is not a TCP port; use a number from 1 to 65535`);
}

function parseCount(name: string, raw: string, min: number): number {
  const v = raw.trim();
  if (/^\d{1,15}$/.test(v) && Number(v) >= min) return Number(v);
  const what = min === 0 ? 'a non-negative whole number' : `a whole number of at least ${min}`;
  throw new OcfError(OCF.ERR_CONFIGURED, `${name}=${show(raw)} is not ${what}; set e.g. ${name}=${min === 0 ? 0 : 300}`);
}

/** Newlines and other control characters: no host, path, user or address has them, and log lines must not. */
function refuseControls(spec: ParamSpec, raw: string): string {
  const v = raw.trim();
  const hit = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.exec(v);
  if (hit) {
    const what = hit[0] === '\n' || hit[0] === '\r' ? 'a line break' : `the control character U+${hit[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
    throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name} contains ${what} at position ${hit.index + 1}; remove it`);
  }
  return v;
}

function parseValue(spec: ParamSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'text':
    case 'ignored':
      return refuseControls(spec, raw);
    case 'resource': {
      const v = raw.trim();
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/.test(v)) {
        throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}=${show(raw)} is not a Pacemaker resource id; use the id crm_mon shows`);
      }
      return v;
    }
    case 'path-or-empty': {
      const v = refuseControls(spec, raw);
      if (v !== '' && !v.startsWith('/')) {
        throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}=${show(raw)} is not an absolute path; give a path starting with /`);
      }
      return v;
    }
    case 'database-list':
      return raw.trim() === '' ? [] : parseDatabaseList(raw);
    case 'database': {
      const v = raw.trim();
      const problem = databaseNameProblem(v);
      if (problem) throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}: ${show(v)} ${problem}; set databases instead`);
      return v;
    }
    case 'port':
      return parsePort(spec.name, raw);
    case 'port-or-empty':
      return raw.trim() === '' ? undefined : parsePort(spec.name, raw);
    case 'count':
      return parseCount(spec.name, raw, 0);
    case 'seconds':
      return parseCount(spec.name, raw, 1);
    case 'boolean': {
      const b = parseBoolean(raw);
      if (b === undefined) {
        throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}=${show(raw)} is not a boolean; use true or false`);
      }
      return b;
    }
    case 'choice': {
      const v = raw.trim();
      const choices = spec.choices ?? [];
      const hit = choices.find((c) => c.toLowerCase() === v.toLowerCase()) ?? spec.aliases?.[v.toLowerCase()];
      if (!hit) throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}=${show(raw)} is not one of ${choices.join(', ')}`);
      return hit;
    }
    case 'prefix': {
      const v = raw.trim();
      if (!/^[a-z_][a-z0-9_]*$/.test(v)) {
        throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name}=${show(raw)} is not a valid name prefix; use only a-z, 0-9 and _`);
      }
      return v;
    }
  }
}

/** Reads every parameter of the table from the environment (default when unset). */
export function readParams(env: NodeJS.ProcessEnv): ParamValues {
  const values: Record<string, unknown> = {};
  for (const spec of PARAMS as readonly ParamSpec[]) {
    const raw = env[`OCF_RESKEY_${spec.name}`];
    const given = raw !== undefined && raw.trim() !== '';
    if (spec.required && !given && spec.default === '') {
      throw new OcfError(OCF.ERR_CONFIGURED, `${spec.name} is required and not set; ${spec.shortdesc.toLowerCase()}`);
    }
    values[spec.name] = parseValue(spec, given ? raw : spec.default);
  }
  return values as ParamValues;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const p = readParams(env);
  const usesLegacy = p.databases.length === 0;
  const databaseList = usesLegacy ? [p.pgdatabase] : [...p.databases];
  const prefixes: NamePrefixes = {
    forwardPub: p.publication_name,
    forwardSub: p.subscription_name,
    forwardSlot: p.replication_slot_name,
    reversePub: p.reverse_publication_name,
    reverseSub: p.reverse_subscription_name,
    reverseSlot: p.reverse_replication_slot_name,
  };
  if (tokenBudget(prefixes) < MIN_TOKEN_BUDGET) {
    throw new OcfError(
      OCF.ERR_CONFIGURED,
      `object name prefixes are too long: names must fit ${MAX_IDENTIFIER_BYTES} bytes; shorten the *_name prefixes`,
    );
  }
  const prefixValues = Object.values(prefixes);
  if (new Set(prefixValues).size !== prefixValues.length) {
    throw new OcfError(OCF.ERR_CONFIGURED, 'two object name prefixes are equal; give each *_name parameter its own prefix');
  }
  const objects = databaseList.map((db) => objectNames(db, prefixes));
  const byToken = new Map<string, string>();
  for (const o of objects) {
    const other = byToken.get(o.token);
    if (other !== undefined) {
      throw new OcfError(
        OCF.ERR_CONFIGURED,
        `databases: ${show(other)} and ${show(o.database)} map to the same object names (${o.token}); migrate one of them separately`,
      );
    }
    byToken.set(o.token, o.database);
  }
  return Object.freeze({
    ...p,
    databaseList: Object.freeze(databaseList),
    usesLegacyPgdatabase: usesLegacy,
    sourcePort: p.source_pgport ?? p.pgport,
    targetPort: p.target_pgport ?? p.pgport,
    prefixes,
    objects: Object.freeze(objects),
  });
}
