/**
 * A steady write load, one client per database, recording every write and
 * its result with the time it was sent and acknowledged.
 */
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import type { RigServer } from './rig';

export interface WriteRecord {
  readonly database: string;
  /** Port of the server the write went to. */
  readonly port: number;
  readonly token: string;
  readonly sentAt: number;
  readonly doneAt: number;
  readonly ok: boolean;
  readonly sqlstate: string | undefined;
}

export interface WriterOptions {
  /** Role the client logs in as (default postgres). */
  readonly user?: string;
  /** Session settings sent at connection, e.g. `-c synchronous_commit=off`. */
  readonly options?: string;
  /** Statements of one write, `$1` the token (default: one INSERT into the table). */
  readonly statements?: readonly string[];
}

export class Writer {
  readonly records: WriteRecord[] = [];
  private running = true;
  private loops: Promise<void>[] = [];

  /**
   * `route` says where writes go now: an application follows the production
   * VIP, so after a cutover its writes reach the new primary.
   */
  constructor(
    /** Where the production address leads now; undefined while no server holds it. */
    private readonly route: () => RigServer | undefined,
    private readonly databases: readonly string[],
    private readonly table: string,
    private readonly perSecondEach: number,
    private readonly opts: WriterOptions = {},
  ) {}

  start(): this {
    this.loops = this.databases.map((db) => this.loop(db));
    return this;
  }

  /** Through the server's socket, as an application on the host would connect. */
  private async connect(db: string, server: RigServer): Promise<pg.Client | undefined> {
    const c = new pg.Client({ host: server.socket, port: server.port, user: this.opts.user ?? 'postgres', database: db, application_name: 'test-writer', options: this.opts.options });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return c;
    } catch {
      return undefined;
    }
  }

  private async loop(db: string): Promise<void> {
    const gap = 1000 / this.perSecondEach;
    let server: RigServer | undefined;
    let client: pg.Client | undefined;
    while (this.running) {
      const t0 = Date.now();
      const token = randomUUID();
      const now = this.route();
      if (now !== server) {
        await client?.end().catch(() => undefined);
        server = now;
        client = undefined;
      }
      if (!server) {
        this.records.push({ database: db, port: 0, token, sentAt: t0, doneAt: Date.now(), ok: false, sqlstate: 'no-route' });
      } else if (!client) client = await this.connect(db, server);
      if (client && server) {
        try {
          if (this.opts.statements) {
            try {
              for (const text of this.opts.statements) await client.query(text, text.includes('$1') ? [token] : []);
            } catch (err) {
              await client.query('ROLLBACK').catch(() => undefined);
              throw err;
            }
          } else {
            await client.query(`INSERT INTO ${this.table} (token) VALUES ($1)`, [token]);
          }
          this.records.push({ database: db, port: server.port, token, sentAt: t0, doneAt: Date.now(), ok: true, sqlstate: undefined });
        } catch (err) {
          // Not an error from the server (EPIPE, ECONNRESET, a client no longer queryable):
          // the connection itself was lost, e.g. the session was ended while idle.
          const sqlstate = err instanceof pg.DatabaseError ? err.code : 'connection-lost';
          this.records.push({ database: db, port: server.port, token, sentAt: t0, doneAt: Date.now(), ok: false, sqlstate });
          if (sqlstate !== '25006') {
            await client.end().catch(() => undefined);
            client = undefined;
          }
        }
      }
      const wait = gap - (Date.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  acknowledged(db?: string): WriteRecord[] {
    return this.records.filter((r) => r.ok && (db === undefined || r.database === db));
  }
}
