/**
 * The cutover's sessions: one per database and side, opened before the
 * fence (so the read-only window pays no connection cost) and reopened when
 * a server restart ended them. Source sessions lift the read-only default
 * for the agent's own statements.
 */
import type pg from 'pg';
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import { connect, type Endpoint } from '../../pg/connection';

export type SessionSide = 'source' | 'target' | 'slot';

export class Sessions {
  private readonly open = new Map<string, Promise<pg.Client>>();

  constructor(private readonly plan: Plan) {}

  private endpoint(side: SessionSide): Endpoint {
    return side === 'source' ? this.plan.sourcePrimary : side === 'target' ? this.plan.targetPrimary : this.plan.slotHost;
  }

  get(o: DatabaseObjects, side: SessionSide): Promise<pg.Client> {
    // In Promoted mode the slots live on the source primary: one session serves both.
    if (side === 'slot' && this.plan.slotHost === this.plan.sourcePrimary) side = 'source';
    const key = `${side}\0${o.database}`;
    let client = this.open.get(key);
    if (!client) {
      client = connect(this.endpoint(side), o.database, {
        timeoutMs: 10_000,
        statementTimeoutMs: 60_000,
        applicationName: 'pgtwin-migrate-cutover',
        settings: side === 'target' ? {} : { default_transaction_read_only: 'off' },
      }).then((c) => {
        const forget = () => this.open.delete(key);
        c.on('error', forget);
        c.on('end', forget);
        return c;
      });
      client.catch(() => this.open.delete(key));
      this.open.set(key, client);
    }
    return client;
  }

  /** Drops a session that failed, so the next use opens a new one. */
  forget(o: DatabaseObjects, side: SessionSide): void {
    const key = `${side === 'slot' && this.plan.slotHost === this.plan.sourcePrimary ? 'source' : side}\0${o.database}`;
    const c = this.open.get(key);
    this.open.delete(key);
    void c?.then((x) => x.end()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((p) => p.then((c) => c.end()).catch(() => undefined)));
  }
}
