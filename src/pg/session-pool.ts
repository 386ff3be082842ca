/**
 * Sessions shared within one action: opening a session forks a backend and
 * authenticates (about 25 ms of a small server's CPU), so a monitor that
 * checks a database's write fence and then reads its details does both over
 * one session per side. Used one caller at a time; a session whose use
 * failed is closed, never handed on; every session is closed by closeAll().
 */
import type pg from 'pg';
import { connect, describe, type ConnectOptions, type Endpoint } from './connection';
import { classify } from './errors';

const keyOf = (ep: Endpoint, database: string) => `${ep.host}\0${ep.port}\0${ep.user}\0${database}`;

export class SessionPool {
  private readonly sessions = new Map<string, Promise<pg.Client>>();

  /** The pooled session to `database` at `ep`, opened on first use (or again after it failed or ended). */
  private get(ep: Endpoint, database: string, opts: ConnectOptions): Promise<pg.Client> {
    const k = keyOf(ep, database);
    let s = this.sessions.get(k);
    if (!s) {
      const opened = connect(ep, database, opts);
      s = opened;
      this.sessions.set(k, opened);
      const forget = () => {
        if (this.sessions.get(k) === opened) this.sessions.delete(k);
      };
      opened.then((c) => {
        c.on('end', forget);
        c.on('error', forget);
      }, forget);
    }
    return s;
  }

  /** Runs `fn` over the pooled session and keeps it for the next caller; a failure closes it. */
  async use<T>(ep: Endpoint, database: string, opts: ConnectOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = await this.get(ep, database, opts);
    try {
      return await fn(c);
    } catch (err) {
      this.sessions.delete(keyOf(ep, database));
      await c.end().catch(() => undefined);
      throw classify(err, describe(ep, database));
    }
  }

  /** Hands the pooled session (or a new one) over to a caller who closes it. */
  take(ep: Endpoint, database: string, opts: ConnectOptions): Promise<pg.Client> {
    const k = keyOf(ep, database);
    const s = this.sessions.get(k);
    this.sessions.delete(k);
    return s ?? connect(ep, database, opts);
  }

  /** Closes every pooled session; a peer that does not answer the goodbye within `waitMs` is left to the process's exit. */
  async closeAll(waitMs = 1_000): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
      timer.unref();
    });
    await Promise.race([Promise.all(all.map((s) => s.then((c) => c.end()).catch(() => undefined))), bound]);
    clearTimeout(timer);
  }
}
