/**
 * One migration under test: its databases on a source and a target server
 * (created empty on the target, with the same tables), the agent's
 * parameters, and runners for the OCF actions and the commands. cleanup()
 * removes everything it made.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { rig, createDatabases, dropDatabases, sql, type RigServer, AGENT } from './rig';
import { runAgent, type AgentOptions, type AgentResult } from './agent';

export interface MigrationOptions {
  readonly instance: string;
  readonly databases: readonly string[];
  readonly source?: RigServer;
  readonly target?: RigServer;
  /** DDL run in every database on both sides (the target gets no rows). */
  readonly schema?: string;
  /** SQL run in every database on the source only (rows to copy). */
  readonly sourceData?: string;
  readonly params?: Readonly<Record<string, string>>;
  /** Leave the databases alone (e.g. `postgres`): only create the schema. */
  readonly existingDatabases?: readonly string[];
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class Migration {
  readonly stateDir: string;
  readonly rscTmp: string;
  readonly source: RigServer;
  readonly target: RigServer;
  params: Record<string, string>;

  constructor(readonly opts: MigrationOptions) {
    const r = rig();
    this.source = opts.source ?? r.servers.pg17;
    this.target = opts.target ?? r.servers.pg18;
    this.stateDir = mkdtempSync(join(tmpdir(), `pgtwin-state-${opts.instance}-`));
    this.rscTmp = mkdtempSync(join(tmpdir(), `pgtwin-rsctmp-${opts.instance}-`));
    this.params = {
      databases: opts.databases.join(','),
      source_cluster: 'postgres-clone',
      target_cluster: 'postgres-clone-18',
      source_replication_vip: '127.0.0.1',
      target_replication_vip: '127.0.0.1',
      source_pgport: String(this.source.port),
      target_pgport: String(this.target.port),
      source_pgpassfile: r.agentPgpass,
      target_pgpassfile: r.agentPgpass,
      source_pghome: this.stateDir,
      target_pghome: this.stateDir,
      ...opts.params,
    };
  }

  get created(): string[] {
    return this.opts.databases.filter((d) => !(this.opts.existingDatabases ?? []).includes(d));
  }

  async setUp(): Promise<this> {
    await createDatabases(this.source, this.created);
    await createDatabases(this.target, this.created);
    for (const db of this.opts.databases) {
      if (this.opts.schema) {
        await sql(this.source, db, this.opts.schema);
        await sql(this.target, db, this.opts.schema);
      }
      if (this.opts.sourceData) await sql(this.source, db, this.opts.sourceData);
    }
    return this;
  }

  run(action: string, extra: Record<string, string> = {}, opts: AgentOptions = {}): Promise<AgentResult> {
    return runAgent(action, { ...this.params, ...extra }, {
      instance: this.opts.instance,
      ...opts,
      env: { HA_RSCTMP: this.rscTmp, ...opts.env },
    });
  }

  /** A human command with the migration's parameters in the environment. */
  cli(args: string[], extra: Record<string, string> = {}): Promise<CommandResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, OCF_RESOURCE_INSTANCE: this.opts.instance, HA_RSCTMP: this.rscTmp };
    for (const [k, v] of Object.entries({ ...this.params, ...extra })) env[`OCF_RESKEY_${k}`] = v;
    return new Promise((resolve, reject) => {
      const child = spawn(AGENT, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /**
   * Runs monitor until it reports every database streaming (the last table
   * copies finish a moment after their rows are visible) and returns that run.
   */
  async untilStreaming(timeoutMs = 60_000): Promise<AgentResult> {
    const n = this.opts.databases.length;
    const pattern = new RegExp(`monitor: ${n} database\\(s\\): ${n} streaming`);
    let last: AgentResult | undefined;
    try {
      return await waitFor(
        `${n} databases streaming`,
        async () => {
          last = await this.run('monitor', {}, { interval: 10_000 });
          return last.code === 0 && pattern.test(last.stderr) ? last : undefined;
        },
        timeoutMs,
        250,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; last monitor (exit ${last?.code}): ${last?.stderr ?? ''}`);
    }
  }

  /**
   * The monitor reads each database's per-database details about once a
   * minute; this makes the next monitor look at all of them now, as it would
   * once their minute is over.
   */
  lookAgain(): void {
    for (const f of readdirSync(this.stateDir).filter((n) => n.startsWith('.migration_state_'))) {
      const path = join(this.stateDir, f);
      writeFileSync(path, readFileSync(path, 'utf8').replace(/^(target_checked_at|source_checked_at|looked_at)=.*\n/gm, ''));
    }
  }

  async cleanup(): Promise<void> {
    await this.cli(['teardown', '--yes', '--force']).catch(() => undefined);
    await dropDatabases(this.source, this.created).catch(() => undefined);
    await dropDatabases(this.target, this.created).catch(() => undefined);
    for (const db of this.opts.existingDatabases ?? []) {
      for (const s of [this.source, this.target]) {
        await sql(s, db, 'DROP SCHEMA IF EXISTS pgtwin_migrate CASCADE').catch(() => undefined);
      }
    }
    // PGTWIN_KEEP_STATE=1 keeps the state files and cutover logs for a look after a failed run.
    if (process.env.PGTWIN_KEEP_STATE === '1') return;
    rmSync(this.stateDir, { recursive: true, force: true });
    rmSync(this.rscTmp, { recursive: true, force: true });
  }
}

/** What the migration left in one database on one server: for "nothing half-created" checks. */
export async function leftovers(server: RigServer, database: string): Promise<string[]> {
  const out: string[] = [];
  const q = async (text: string) => (await sql<{ n: string }>(server, database, text)).map((r) => r.n);
  out.push(...(await q("SELECT 'publication ' || pubname AS n FROM pg_publication WHERE pubname LIKE 'pgtwin_migrate%'")));
  out.push(
    ...(await q(
      "SELECT 'subscription ' || subname AS n FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )),
  );
  out.push(...(await q("SELECT 'slot ' || slot_name AS n FROM pg_replication_slots WHERE database = current_database()")));
  out.push(...(await q("SELECT 'event trigger ' || evtname AS n FROM pg_event_trigger")));
  out.push(...(await q("SELECT 'schema ' || nspname AS n FROM pg_namespace WHERE nspname = 'pgtwin_migrate'")));
  out.push(...(await q("SELECT 'fence trigger on ' || tgrelid::regclass::text AS n FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence'")));
  return out;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/**
 * Until every table of the database's subscriptions is synchronised (state
 * 'r'): rows visible on the target do not yet mean the table sync is done.
 */
export async function waitTablesSynchronised(target: RigServer, db: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${db} tables synchronised`, async () => {
    const rows = await sql<{ pending: string }>(target, db, "SELECT count(*) FILTER (WHERE srsubstate <> 'r')::text AS pending FROM pg_subscription_rel");
    return rows[0]!.pending === '0';
  }, timeoutMs);
}
