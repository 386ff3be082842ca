/**
 * The switch's sessions: one per database and server, opened before the
 * fence (so the read-only window pays no connection cost) and reopened when
 * a server restart ended them. Every backend PID is remembered per server:
 * the fence and the hand-over recognise the agent's own sessions by PID.
 */
import type pg from 'pg';
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import { endpointsOf, type ClusterSide, type Direction } from '../direction';
import { connect, type Endpoint } from '../../pg/connection';

const key = (ep: Endpoint) => `${ep.host}:${ep.port}`;

export class Sessions {
  private readonly open = new Map<string, Promise<pg.Client>>();
  /** Backend PIDs of the agent's sessions, per server (host:port). */
  private readonly pids = new Map<string, Set<number>>();

  /**
   * `localCommits`: the side production moves to. Its sessions commit with
   * synchronous_commit=local: none of their writes waits for that side's
   * synchronous standbys on its own (a wait the server's statement_timeout
   * would end as a success); one bounded proof before the swap covers them
   * all (durable.ts).
   */
  constructor(
    private readonly plan: Plan,
    private readonly localCommits?: ClusterSide,
  ) {}

  private endpoint(side: ClusterSide): Endpoint {
    return side === 'source' ? this.plan.sourcePrimary : this.plan.targetPrimary;
  }

  /** The session of database `o` on one cluster's primary. */
  get(o: DatabaseObjects, side: ClusterSide): Promise<pg.Client> {
    return this.on(this.endpoint(side), o);
  }

  /** The session where direction `d`'s slots of database `o` live. */
  slots(o: DatabaseObjects, d: Direction): Promise<pg.Client> {
    return this.on(endpointsOf(this.plan, d).slots, o);
  }

  /** Backend PIDs of this agent's sessions on a cluster's primary. */
  agentPids(side: ClusterSide): number[] {
    return [...(this.pids.get(key(this.endpoint(side))) ?? [])];
  }

  private on(ep: Endpoint, o: DatabaseObjects): Promise<pg.Client> {
    const k = `${key(ep)}\0${o.database}`;
    let client = this.open.get(k);
    if (!client) {
      const local = this.localCommits !== undefined && key(this.endpoint(this.localCommits)) === key(ep);
      client = connect(ep, o.database, {
        timeoutMs: 10_000,
        statementTimeoutMs: 60_000,
        applicationName: 'pgtwin-migrate-cutover',
        ...(local ? { settings: { synchronous_commit: 'local' } } : {}),
      }).then(async (c) => {
        const set = this.pids.get(key(ep)) ?? new Set<number>();
        this.pids.set(key(ep), set);
        let pid = 0;
        const forget = () => {
          if (this.open.get(k) === client) this.open.delete(k);
          set.delete(pid);
        };
        c.on('error', forget);
        c.on('end', forget);
        const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        pid = rows[0]!.pid;
        set.add(pid);
        return c;
      });
      client.catch(() => this.open.delete(k));
      this.open.set(k, client);
    }
    return client;
  }

  /** Cancels what the session of database `o` on a cluster's primary runs, from a session of its own. */
  async cancel(o: DatabaseObjects, side: ClusterSide): Promise<void> {
    const { processID } = (await this.get(o, side)) as pg.Client & { processID: number };
    const c = await connect(this.endpoint(side), o.database, { timeoutMs: 5_000, statementTimeoutMs: 5_000, applicationName: 'pgtwin-migrate-cutover' });
    try {
      await c.query('SELECT pg_cancel_backend($1)', [processID]);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** Drops every session (after a failure), so the next use opens new ones. */
  forgetAll(): void {
    const all = [...this.open.values()];
    this.open.clear();
    for (const c of all) void c.then((x) => x.end()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((p) => p.then((c) => c.end()).catch(() => undefined)));
  }
}
