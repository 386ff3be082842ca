/** Facts about one PostgreSQL server that the checks and the plan depend on. */
import type pg from 'pg';

export const CAPACITY_SETTINGS = [
  'max_replication_slots',
  'max_wal_senders',
  'max_worker_processes',
  'max_logical_replication_workers',
  'max_sync_workers_per_subscription',
  'max_slot_wal_keep_size',
  'hot_standby_feedback',
  'default_transaction_read_only',
  'max_active_replication_origins',
] as const;

export interface ServerFacts {
  readonly versionNum: number;
  readonly major: number;
  readonly walLevel: string;
  readonly inRecovery: boolean;
  readonly superuser: boolean;
  readonly replicationRole: boolean;
  readonly systemId: string;
  readonly settings: Readonly<Record<string, string>>;
}

export async function serverFacts(c: pg.Client): Promise<ServerFacts> {
  const { rows } = await c.query<{
    version_num: number;
    wal_level: string;
    in_recovery: boolean;
    superuser: boolean;
    replication: boolean;
    system_id: string;
  }>(
    `SELECT current_setting('server_version_num')::int AS version_num,
            current_setting('wal_level') AS wal_level,
            pg_is_in_recovery() AS in_recovery,
            r.rolsuper AS superuser,
            r.rolreplication AS replication,
            (SELECT system_identifier::text FROM pg_control_system()) AS system_id
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = rows[0]!;
  const settings = await c.query<{ name: string; setting: string }>(
    'SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])',
    [CAPACITY_SETTINGS],
  );
  return {
    versionNum: row.version_num,
    major: Math.floor(row.version_num / 10000),
    walLevel: row.wal_level,
    inRecovery: row.in_recovery,
    superuser: row.superuser,
    replicationRole: row.replication,
    systemId: row.system_id,
    settings: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
  };
}

export async function existingDatabases(c: pg.Client, names: readonly string[]): Promise<Set<string>> {
  const { rows } = await c.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) AND datallowconn',
    [names],
  );
  return new Set(rows.map((r) => r.datname));
}

/** The server's major version, in one round trip. */
export async function serverMajor(c: pg.Client): Promise<number> {
  const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Math.floor(Number(rows[0]!.v) / 10000);
}

const majors = new Map<string, Promise<number>>();

/** The major version of the server at `key` (host:port), asked once per process. */
export function serverMajorOnce(c: pg.Client, key: string): Promise<number> {
  let m = majors.get(key);
  if (!m) {
    m = serverMajor(c);
    m.catch(() => majors.delete(key));
    majors.set(key, m);
  }
  return m;
}
