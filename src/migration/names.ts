/**
 * Names of the per-database objects (DESIGN §3): `<prefix>_<token>`.
 * The token is the database name itself when that gives a valid slot name
 * ([a-z0-9_] only, whole name at most 63 bytes); otherwise a sanitised form
 * plus a hash of the exact name, so different databases never share a token
 * (`App` and `app` included). Identifiers still reach SQL quoted.
 */
import { createHash } from 'node:crypto';

export const MAX_IDENTIFIER_BYTES = 63;
const HASH_CHARS = 8;

export const DDL_TRIGGER_PREFIX = {
  forward: 'replicate_ddl_to_target_trigger',
  reverse: 'replicate_ddl_to_source_trigger',
} as const;

export interface NamePrefixes {
  readonly forwardPub: string;
  readonly forwardSub: string;
  readonly forwardSlot: string;
  readonly reversePub: string;
  readonly reverseSub: string;
  readonly reverseSlot: string;
}

export const DEFAULT_PREFIXES: NamePrefixes = {
  forwardPub: 'pgtwin_migrate_forward_pub',
  forwardSub: 'pgtwin_migrate_forward_sub',
  forwardSlot: 'pgtwin_migrate_forward_slot',
  reversePub: 'pgtwin_migrate_reverse_pub',
  reverseSub: 'pgtwin_migrate_reverse_sub',
  reverseSlot: 'pgtwin_migrate_reverse_slot',
};

/** Bytes the token may use: 63 minus the longest prefix and its "_". */
export function tokenBudget(prefixes: NamePrefixes): number {
  const longest = Math.max(
    ...Object.values(prefixes).map((p) => Buffer.byteLength(p)),
    DDL_TRIGGER_PREFIX.forward.length,
    DDL_TRIGGER_PREFIX.reverse.length,
  );
  return MAX_IDENTIFIER_BYTES - longest - 1;
}

/** The smallest budget a hashed token needs: one character, "_", the hash. */
export const MIN_TOKEN_BUDGET = 1 + 1 + HASH_CHARS;

export function databaseToken(database: string, budget: number): string {
  if (/^[a-z0-9_]+$/.test(database) && database.length <= budget) return database;
  const hash = createHash('sha256').update(database, 'utf8').digest('hex').slice(0, HASH_CHARS);
  const stem =
    database
      .normalize('NFKD')
      .toLowerCase()
      .replace(/[^a-z0-9_]+/g, '_')
      .replace(/_+/g, '_')
      .replace(/^_|_$/g, '')
      .slice(0, budget - HASH_CHARS - 1)
      .replace(/_$/, '') || 'db';
  return `${stem}_${hash}`;
}

export interface DatabaseObjects {
  readonly database: string;
  readonly token: string;
  readonly forwardPub: string;
  readonly forwardSub: string;
  readonly forwardSlot: string;
  readonly reversePub: string;
  readonly reverseSub: string;
  readonly reverseSlot: string;
  readonly forwardDdlTrigger: string;
  readonly reverseDdlTrigger: string;
}

export function objectNames(database: string, prefixes: NamePrefixes): DatabaseObjects {
  const token = databaseToken(database, tokenBudget(prefixes));
  return {
    database,
    token,
    forwardPub: `${prefixes.forwardPub}_${token}`,
    forwardSub: `${prefixes.forwardSub}_${token}`,
    forwardSlot: `${prefixes.forwardSlot}_${token}`,
    reversePub: `${prefixes.reversePub}_${token}`,
    reverseSub: `${prefixes.reverseSub}_${token}`,
    reverseSlot: `${prefixes.reverseSlot}_${token}`,
    forwardDdlTrigger: `${DDL_TRIGGER_PREFIX.forward}_${token}`,
    reverseDdlTrigger: `${DDL_TRIGGER_PREFIX.reverse}_${token}`,
  };
}
