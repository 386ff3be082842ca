/**
 * Shared by the review regression tests (test/integration/attack-review-*.test.ts):
 * plain (non-superuser) roles made for one test on both clusters, sessions
 * and writes as those roles, and a clean-up that also works once teardown
 * asks for --force in phase reverse.
 */
import pg from 'pg';
import { sql, ident, rig, type RigServer } from './rig';
import type { Migration } from './migration';
import { dispose } from './attack';

/** The rig's three servers. */
export function servers(): RigServer[] {
  const r = rig();
  return [r.servers.pg15, r.servers.pg17, r.servers.pg18];
}

const PLAIN = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS';

/**
 * A plain login role on every server of the rig: dropped (objects first) and
 * created again; one an earlier run left owning objects is made plain again.
 */
export async function createPlainRole(role: string): Promise<void> {
  for (const s of servers()) {
    await dropRoleEverywhere(role, [s]);
    const left = (await sql(s, 'postgres', 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length > 0;
    await sql(s, 'postgres', `${left ? 'ALTER' : 'CREATE'} ROLE ${ident(role)} ${PLAIN}`);
  }
}

export async function dropRoleEverywhere(role: string, where: RigServer[] = servers()): Promise<void> {
  for (const s of where) {
    const exists = (await sql(s, 'postgres', 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length > 0;
    if (!exists) continue;
    await sql(s, 'postgres', `DROP OWNED BY ${ident(role)} CASCADE`).catch(() => undefined);
    await sql(s, 'postgres', `DROP ROLE IF EXISTS ${ident(role)}`).catch(() => undefined);
  }
}

/** A session as `role` through the server's socket (trust), as an application would log in. */
export async function asRole<T>(server: RigServer, db: string, role: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: server.socket, port: server.port, user: role, database: db, application_name: 'review-attacker' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const who = await c.query<{ su: boolean }>('SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user');
    if (who.rows[0]?.su) throw new Error(`test bug: ${role} is a superuser on port ${server.port} before the attack`);
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The error of a promise (undefined when it succeeded). */
export const failure = (p: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> =>
  p.then(() => undefined, (err: { code?: string; message?: string }) => err);

export async function isSuperuser(server: RigServer, role: string): Promise<boolean> {
  const rows = await sql<{ s: boolean }>(server, 'postgres', 'SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [role]);
  return rows[0]?.s === true;
}

/**
 * One committed write as `role` straight to `server` (no special setting):
 * 'ok' when acknowledged, else the SQLSTATE it was refused with.
 */
export async function writeAs(server: RigServer, db: string, role: string, text: string, values: unknown[] = []): Promise<string> {
  return asRole(server, db, role, async (c) => {
    try {
      await c.query(text, values);
      return 'ok';
    } catch (err) {
      return (err as { code?: string }).code ?? `error: ${(err as Error).message}`;
    }
  });
}

/**
 * Removes a migration whatever its phase: a fixed agent's teardown may want
 * --force in phase reverse (today's rejects the unknown option), so both
 * are tried before the usual clean-up.
 */
export async function disposeAnyPhase(m: Migration | undefined): Promise<void> {
  if (!m) return;
  const forced = await m.cli(['teardown', '--yes', '--force']).catch(() => undefined);
  if (forced?.code !== 0) await m.cli(['teardown', '--yes']).catch(() => undefined);
  await dispose(m);
}
