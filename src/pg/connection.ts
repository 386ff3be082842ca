/**
 * Connections of the agent itself: one endpoint per cluster role, the
 * password from that side's password file (read in process, never passed
 * on), libpq's sslmode mapped onto node-postgres, and every wait bounded.
 *
 * Two rules no client can bend:
 *  - every session runs with session_replication_role = replica, which only
 *    a superuser may set: no event trigger fires for the agent's own DDL
 *    (so it is never captured for replay) and no ordinary trigger for its
 *    own writes (the cutover's fence lets exactly these sessions through);
 *  - the password is never sent in clear text over a connection whose
 *    server certificate was not verified (an impostor asking for it gets
 *    nothing); SCRAM, which never reveals it, is answered on any connection.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import pg from 'pg';
import { lookupPassword } from './pgpass';
import { classify, PgFailure } from './errors';
import { preferSsl } from './ssl-memo';

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
  /** CA file (PEM) the server's certificate must chain to (parameter sslrootcert). */
  readonly sslrootcert?: string;
  /** Home of the side's PostgreSQL OS user, where libpq keeps .postgresql/root.crt. */
  readonly home?: string;
  /** An address that moves between servers (the production address): nothing learnt of the server behind it is kept. */
  readonly moves?: boolean;
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

/** The CA file for this endpoint: sslrootcert, else libpq's default in the side's home, if there. */
export function caFile(ep: Endpoint): string | undefined {
  if (ep.sslrootcert) return ep.sslrootcert;
  const home = ep.home ? `${ep.home}/.postgresql/root.crt` : undefined;
  return home && existsSync(home) ? home : undefined;
}

/**
 * node-postgres' TLS options for libpq's sslmode. As in libpq, require with
 * a CA file verifies the chain like verify-ca; verify-ca and verify-full
 * without a CA file are refused (libpq refuses them too).
 */
function sslOption(ep: Endpoint): false | ConnectionOptions {
  const file = ep.sslmode === 'disable' || ep.sslmode === 'allow' ? undefined : caFile(ep);
  const readCa = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new PgFailure('sql', `${describe(ep)}: cannot read the CA file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); fix sslrootcert`);
    }
  };
  switch (ep.sslmode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
    case 'require':
      if (ep.sslmode === 'require' && file) return { rejectUnauthorized: true, ca: readCa(file), checkServerIdentity: () => undefined };
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full':
      if (!file) {
        throw new PgFailure('sql', `${describe(ep)}: sslmode=${ep.sslmode} needs the CA certificate that signed the server's; set sslrootcert to its file`);
      }
      return {
        rejectUnauthorized: true,
        ca: readCa(file),
        ...(ep.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
      };
  }
}

/** The parts of node-postgres' client the password guard needs (not in its typings). */
interface ClientInternals {
  connection: { stream: Partial<TLSSocket>; emit(event: 'error', err: Error): boolean };
  _handleAuthCleartextPassword(msg: unknown): void;
}

/** The server's certificate was verified on this connection (TLS, chain checked). */
function tlsVerified(stream: Partial<TLSSocket>): boolean {
  return stream.encrypted === true && stream.authorized === true;
}

/**
 * Refuses to answer a clear-text password request on a connection that is
 * not TLS-verified: whoever answers at that address (an impostor, a
 * man in the middle) would read the password.
 */
function guardCleartextPassword(client: pg.Client, where: string): void {
  const c = client as unknown as ClientInternals;
  const answer = c._handleAuthCleartextPassword.bind(client);
  c._handleAuthCleartextPassword = (msg: unknown) => {
    if (tlsVerified(c.connection.stream)) {
      answer(msg);
      return;
    }
    c.connection.emit(
      'error',
      new PgFailure(
        'insecure-auth',
        `${where}: password not sent: the server asks for it in clear text and its certificate is not verified; use scram-sha-256 in its pg_hba.conf, or sslmode=verify-full with sslrootcert`,
      ),
    );
    c.connection.stream.destroy?.();
  };
}

function clientConfig(ep: Endpoint, database: string, opts: ConnectOptions, ssl: false | ConnectionOptions): pg.ClientConfig {
  // session_replication_role=replica: see the module comment.
  const settings = { ...opts.settings, session_replication_role: 'replica' };
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
    options: Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v.replace(/[\\ ]/g, (ch) => `\\${ch}`)}`)
      .join(' '),
    keepAlive: true,
  };
}

/** Opens one session; every failure comes back as a classified PgFailure. */
export async function connect(ep: Endpoint, database: string, opts: ConnectOptions): Promise<pg.Client> {
  const where = describe(ep, database);
  const attempt = async (ssl: false | ConnectionOptions) => {
    const client = new pg.Client(clientConfig(ep, database, opts, ssl));
    guardCleartextPassword(client, where);
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
  const refused = (err: unknown) => /does not support SSL/i.test(String((err as Error)?.message));
  try {
    if (ep.sslmode === 'prefer' && !ep.moves) {
      return await preferSsl(`${ep.host}\0${ep.port}`, () => attempt(sslOption(ep)), () => attempt(false), refused, opts.timeoutMs);
    }
    try {
      return await attempt(sslOption(ep));
    } catch (err) {
      if (ep.sslmode === 'prefer' && !(err instanceof PgFailure) && refused(err)) return await attempt(false);
      throw err;
    }
  } catch (err) {
    throw err instanceof PgFailure ? err : classify(err, where);
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
 * never a password (that server reads its own password file). With a CA
 * file its libpq verifies the publisher too; without verify-ca/verify-full
 * a subscriber of PostgreSQL 16 or later refuses to send the password in
 * clear text (require_auth), as the agent itself does.
 */
export function subscriptionConninfo(p: {
  host: string;
  port: number;
  database: string;
  user: string;
  sslmode: SslMode;
  sslrootcert?: string;
  applicationName: string;
  /** The subscriber server's major version, when known (require_auth needs libpq 16). */
  subscriberMajor?: number;
}): string {
  const verified = p.sslmode === 'verify-ca' || p.sslmode === 'verify-full';
  return [
    `host=${conninfoValue(p.host)}`,
    `port=${p.port}`,
    `dbname=${conninfoValue(p.database)}`,
    `user=${conninfoValue(p.user)}`,
    `sslmode=${p.sslmode}`,
    ...(p.sslrootcert && p.sslmode !== 'disable' && p.sslmode !== 'allow' ? [`sslrootcert=${conninfoValue(p.sslrootcert)}`] : []),
    ...(!verified && (p.subscriberMajor ?? 0) >= 16 ? ['require_auth=!password'] : []),
    `application_name=${conninfoValue(p.applicationName)}`,
    'connect_timeout=10',
  ].join(' ');
}
