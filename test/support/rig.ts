/** What the rig started (scripts/rig.sh writes rig.json) and helpers to use it. */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import pg from 'pg';

export const RIG_DIR = process.env.PGTWIN_RIG_DIR ?? '/var/tmp/pgtwin-rig';
export const RIG_JSON = `${RIG_DIR}/rig.json`;
export const REPO = resolve(__dirname, '../..');
export const AGENT = `${REPO}/dist/pgtwin-migrate`;
export const INSTALLED_AGENT = '/usr/lib/ocf/resource.d/heartbeat/pgtwin-migrate';

export interface RigServer {
  major: number;
  host: string;
  port: number;
  socket: string;
  bindir: string;
  data: string;
  log: string;
}

export interface Rig {
  dir: string;
  node: string;
  user: string;
  agentPgpass: string;
  serverPgpass: string;
  passwordFile: string;
  vipJournal: string;
  servers: { pg15: RigServer; pg17: RigServer; pg18: RigServer };
}

export function rig(): Rig {
  return JSON.parse(readFileSync(RIG_JSON, 'utf8')) as Rig;
}

/** A superuser connection through the server's socket (trust), for arranging tests. */
export async function admin(server: RigServer, database = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(
  server: RigServer,
  database: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = await admin(server, database);
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export async function createDatabases(server: RigServer, names: readonly string[]): Promise<void> {
  const c = await admin(server);
  try {
    for (const n of names) {
      await c.query(`DROP DATABASE IF EXISTS ${ident(n)} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${ident(n)}`);
    }
  } finally {
    await c.end();
  }
}

export async function dropDatabases(server: RigServer, names: readonly string[]): Promise<void> {
  const c = await admin(server);
  try {
    for (const n of names) await c.query(`DROP DATABASE IF EXISTS ${ident(n)} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

export function crm(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
}
