/**
 * Connections of the agent itself: one endpoint per cluster role, the
 * password from that side's password file (read in process, never passed
 * on), libpq's sslmode mapped onto node-postgres, and every wait bounded.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { lookupPassword } from './pgpass';
import { classify, PgFailure } from './errors';
import { CAPTURE_OFF_OPTION } from './ddl-replication';

export type Side = 'source' | 'target';
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface Endpoint {
  readonly side: Side;
  /** What this endpoint is, for messages: "source primary", "source publisher", "target primary". */
  readonly role: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly passfile: string;
  readonly sslmode: SslMode;
  /** Home of the side's PostgreSQL OS user, where libpq keeps .postgresql/root.crt. */
  readonly home?: string;
}

export function describe(ep: Endpoint, database?: string): string {
  return `${ep.role} ${ep.host}:${ep.port}${database === undefined ? '' : ` database ${JSON.stringify(database)}`}`;
}

export interface ConnectOptions {
  readonly timeoutMs: number;
  /** statement_timeout for every statement of this session. */
  readonly statementTimeoutMs?: number;
  readonly applicationName?: string;
  /** Further session settings, e.g. default_transaction_read_only=off for the agent's own writes on a fenced source. */
  readonly settings?: Readonly<Record<string, string>>;
}

function sslOption(ep: Endpoint): false | ConnectionOptions {
  switch (ep.sslmode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full': {
      const rootCert = ep.home ? `${ep.home}/.postgresql/root.crt` : undefined;
      const ca = rootCert && existsSync(rootCert) ? readFileSync(rootCert, 'utf8') : undefined;
      return {
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        ...(ep.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
      };
    }
  }
}

function clientConfig(ep: Endpoint, database: string, opts: ConnectOptions, ssl: false | ConnectionOptions): pg.ClientConfig {
  return {
    host: ep.host,
    port: ep.port,
    user: ep.user,
    database,
    ssl,
    // Asked only when the server wants a password.
    password: async () => {
      const found = lookupPassword(ep.passfile, { host: ep.host, port: ep.port, database, user: ep.user });
      if (!found.ok) throw new PgFailure('no-password', `${describe(ep, database)}: ${found.message}`);
      return found.password;
    },
    connectionTimeoutMillis: opts.timeoutMs,
    // The server's statement_timeout answers first; the client's own limit is the backstop.
    query_timeout: (opts.statementTimeoutMs ?? opts.timeoutMs) + 2_000,
    statement_timeout: opts.statementTimeoutMs ?? opts.timeoutMs,
    application_name: opts.applicationName ?? 'pgtwin-migrate',
    // The agent's own DDL (its schema, triggers) is never captured for replay, and the
    // agent passes the write fence: replica mode, which only a superuser can set.
    options: [CAPTURE_OFF_OPTION, '-c session_replication_role=replica', ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`)].join(' '),
    keepAlive: true,
  };
}

/** Opens one session; every failure comes back as a classified PgFailure. */
export async function connect(ep: Endpoint, database: string, opts: ConnectOptions): Promise<pg.Client> {
  const where = describe(ep, database);
  const attempt = async (ssl: false | ConnectionOptions) => {
    const client = new pg.Client(clientConfig(ep, database, opts, ssl));
    // An idle client whose server goes away must not crash the process.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  };
  try {
    return await attempt(sslOption(ep));
  } catch (err) {
    if (ep.sslmode === 'prefer' && /does not support SSL/i.test(String((err as Error)?.message))) {
      try {
        return await attempt(false);
      } catch (again) {
        throw classify(again, where);
      }
    }
    throw classify(err, where);
  }
}

/** Runs `fn` with a session and always closes it. */
export async function withClient<T>(ep: Endpoint, database: string, opts: ConnectOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(ep, database, opts);
  try {
    return await fn(client);
  } catch (err) {
    throw classify(err, describe(ep, database));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** libpq conninfo value quoting: single quotes, backslash-escaped. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The connection string a subscription stores: where its server connects,
 * never a password (that server reads its own password file).
 */
export function subscriptionConninfo(p: { host: string; port: number; database: string; user: string; sslmode: SslMode; applicationName: string }): string {
  return [
    `host=${conninfoValue(p.host)}`,
    `port=${p.port}`,
    `dbname=${conninfoValue(p.database)}`,
    `user=${conninfoValue(p.user)}`,
    `sslmode=${p.sslmode}`,
    `application_name=${conninfoValue(p.applicationName)}`,
    'connect_timeout=10',
  ].join(' ');
}
