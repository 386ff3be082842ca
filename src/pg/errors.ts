/**
 * SQLSTATE lists that give idempotence its meaning, and the one-line
 * classification of connection and query failures.
 */
export const SQLSTATE = {
  DUPLICATE_OBJECT: '42710',
  DUPLICATE_TABLE: '42P07',
  DUPLICATE_SCHEMA: '42P06',
  DUPLICATE_FUNCTION: '42723',
  UNDEFINED_OBJECT: '42704',
  UNDEFINED_TABLE: '42P01',
  UNDEFINED_FUNCTION: '42883',
  INVALID_CATALOG_NAME: '3D000',
  INVALID_PASSWORD: '28P01',
  INVALID_AUTHORIZATION: '28000',
  OBJECT_IN_USE: '55006',
  QUERY_CANCELED: '57014',
  ADMIN_SHUTDOWN: '57P01',
  CANNOT_CONNECT_NOW: '57P03',
  READ_ONLY_TRANSACTION: '25006',
  INSUFFICIENT_PRIVILEGE: '42501',
} as const;

/** "Already exists" answers: success for a CREATE. */
export const ALREADY_EXISTS = new Set<string>([
  SQLSTATE.DUPLICATE_OBJECT,
  SQLSTATE.DUPLICATE_TABLE,
  SQLSTATE.DUPLICATE_SCHEMA,
  SQLSTATE.DUPLICATE_FUNCTION,
]);

/** "Does not exist" answers: success for a DROP. */
export const DOES_NOT_EXIST = new Set<string>([SQLSTATE.UNDEFINED_OBJECT, SQLSTATE.UNDEFINED_TABLE, SQLSTATE.UNDEFINED_FUNCTION]);

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A deadlock (40P01) or a lock not available in time (55P03): the statement may simply be run again. */
export function isLockConflict(err: unknown): boolean {
  const state = sqlState(err);
  return state === '40P01' || state === '55P03';
}

export type FailureKind = 'unreachable' | 'timeout' | 'auth' | 'insecure-auth' | 'no-database' | 'no-password' | 'sql';

/** A failure reaching or querying one database, already phrased for a person. */
export class PgFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly sqlstate?: string,
  ) {
    super(message);
    this.name = 'PgFailure';
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EPIPE']);

/** Classifies what went wrong; `where` names cluster, address and database. */
export function classify(err: unknown, where: string): PgFailure {
  if (err instanceof PgFailure) return err;
  const e = err as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  const raw = (e?.message ?? String(err)).split('\n')[0]!.trim();
  if (NETWORK_CODES.has(code)) {
    const what = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'host name does not resolve' : 'connection refused';
    return new PgFailure('unreachable', `${where}: ${what} (${code}); is PostgreSQL running there?`);
  }
  if (/timeout|timed out/i.test(raw) && !sqlState(err)) {
    return new PgFailure('timeout', `${where}: no answer in time (${raw}); is the server overloaded or the network down?`);
  }
  const state = sqlState(err);
  if (state === SQLSTATE.INVALID_PASSWORD || state === SQLSTATE.INVALID_AUTHORIZATION) {
    return new PgFailure('auth', `${where}: ${raw}; check the user and its .pgpass entry`, state);
  }
  if (state === SQLSTATE.INSUFFICIENT_PRIVILEGE && /session_replication_role/.test(raw)) {
    return new PgFailure(
      'auth',
      `${where}: the migration role may not set session_replication_role, which keeps the agent's own statements out of DDL replication; make it a superuser`,
      state,
    );
  }
  if (state === SQLSTATE.INVALID_CATALOG_NAME) {
    return new PgFailure('no-database', `${where}: does not exist; create it there (createdb)`, state);
  }
  if (state === SQLSTATE.QUERY_CANCELED) {
    return new PgFailure('timeout', `${where}: statement timed out (${raw})`, state);
  }
  if (state?.startsWith('08')) {
    return new PgFailure('unreachable', `${where}: ${raw}`, state);
  }
  if (state === SQLSTATE.ADMIN_SHUTDOWN || state === SQLSTATE.CANNOT_CONNECT_NOW) {
    return new PgFailure('unreachable', `${where}: ${raw}; the server is shutting down or starting`, state);
  }
  if (/Connection terminated|server closed the connection/i.test(raw)) {
    return new PgFailure('unreachable', `${where}: connection lost (${raw})`);
  }
  return new PgFailure('sql', `${where}: ${raw}`, state);
}

/**
 * A subscriber's server failed to reach its publisher (CREATE SUBSCRIPTION,
 * DROP SUBSCRIPTION): says which side cannot reach which address, and why,
 * in words a DBA can act on.
 */
export function publisherFailure(err: unknown, who: string, address: string): PgFailure {
  const raw = String((err as Error)?.message ?? err);
  const reasons: Array<[RegExp, string, FailureKind]> = [
    [/Connection refused/i, 'connection refused', 'unreachable'],
    [/timeout expired|timed out/i, 'timed out', 'unreachable'],
    [/could not translate host name|Name or service not known/i, 'host name does not resolve', 'unreachable'],
    [/no password supplied/i, "no password for it in that server's own password file", 'no-password'],
    [/password authentication failed/i, 'password authentication failed', 'auth'],
    [/does not exist/i, 'the database does not exist there', 'no-database'],
  ];
  const hit = reasons.find(([re]) => re.test(raw));
  const why = hit ? hit[1] : raw.split('\n')[0]!.slice(0, 80);
  return new PgFailure(hit ? hit[2] : 'sql', `${who} cannot reach ${address}: ${why}`, sqlState(err));
}
