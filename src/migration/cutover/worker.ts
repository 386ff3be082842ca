/**
 * The cutover worker (DESIGN §6): ONE atomic cutover of every database. It
 * runs detached from the monitor that launched it, records each step and its
 * lease in the CIB, and writes the cutover log. Before the VIP swap any
 * failure rolls back; from the swap on it rolls forward.
 */
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import { Sessions } from './sessions';
import { prepareReverse, enableReverse, verifyReverse, dropReverse } from './reverse';
import { STEPS, CUTOVER_KEY, recoveryFor, pastPointOfNoReturn, type Step } from './steps';
import { encodeLease, decodeLease, holderAlive, HEARTBEAT_MS } from './lease';
import { KEY, parseBaseline, diffBaseline } from '../cib-state';
import { observeAll, COMPLETE, type RememberedTarget } from '../observe';
import { assessDatabase } from '../health';
import { settleAll, sleep } from '../parallel';
import { updateStateFile } from '../state-files';
import { setDefaultReadOnly, transactionsBefore, sessionsBefore, terminate, currentLsn } from '../../pg/fence';
import { readSlots, pendingChanges, pgoutputProtoVersion } from '../../pg/slots';
import { setSubscriptionEnabled, readSubscription, dropSubscription, refreshSubscription } from '../../pg/subscription';
import { dropPublication } from '../../pg/publication';
import { dropCaptureTrigger } from '../../pg/ddl-replication';
import { readSequences, writeSequences, sequenceMismatches } from '../../pg/sequences';
import { serverMajor } from '../../pg/server';
import { bytesBehind } from '../../pg/lsn';
import { readResourcesSection, requireAttribute, setAttributesAtomically, setMetaAttribute, verifyAttributes } from '../../cluster/resources';
import { xmlEscape } from '../../ocf/xml-escape';
import { readStatus, lastStarts, restartedSince } from '../../cluster/crm-mon';
import { setStep } from '../../ocf/watchdog';

/** Raised when the cutover must stop (a check failed, a stop arrived). */
export class CutoverAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CutoverAbort';
  }
}

export type CutoverOutcome = 'complete' | 'rolled-back' | 'busy' | 'nothing';

// Time for every backend to take the reloaded configuration (SIGHUP) before the fence counts.
const FENCE_SETTLE_MS = 100;
const POLL_MS = 25;

export class CutoverRun {
  private readonly sessions: Sessions;
  private readonly timings: Record<string, number> = {};
  private step: Step = 'recheck';
  private heartbeat: NodeJS.Timeout | undefined;
  private fenceLsn = '';
  private fencedAt = 0;
  private startedAt = Date.now();
  private stopRequested = false;

  constructor(
    private readonly plan: Plan,
    private readonly localNode: string,
    private readonly logPath: string,
  ) {
    this.sessions = new Sessions(plan);
  }

  private get log() {
    return this.plan.log;
  }

  private get dbs(): readonly DatabaseObjects[] {
    return this.plan.cfg.objects;
  }

  /** A stop asked the cutover to end: before the swap it rolls back, after it finishes. */
  requestStop(): void {
    this.stopRequested = true;
  }

  private lease(): string {
    return encodeLease({ node: this.localNode, pid: process.pid, at: Date.now() });
  }

  // CIB writes go one after the other, in order, even those not waited for.
  private cibQueue: Promise<void> = Promise.resolve();

  private async record(values: Record<string, string>): Promise<void> {
    const write = this.cibQueue.then(() => this.plan.state.setMany({ ...values, [CUTOVER_KEY.lease]: this.lease() }));
    this.cibQueue = write.catch(() => undefined);
    await write;
  }

  /**
   * A record the cutover need not wait for (a step before the swap: for
   * recovery, every one of them means "roll back"). Queued behind the others,
   * so it can never land after the swap's own record.
   */
  private recordInBackground(values: Record<string, string>): void {
    this.record(values).catch((err: Error) => this.log.warn(`cutover: could not record ${Object.keys(values).join(', ')} in the CIB: ${err.message}`));
  }

  private startHeartbeat(): void {
    this.heartbeat = setInterval(() => {
      this.plan.state.set(CUTOVER_KEY.lease, this.lease()).catch((err: Error) => this.log.warn(`cutover: lease heartbeat failed: ${err.message}`));
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Takes the lease, unless a live worker holds it. */
  private async acquire(): Promise<boolean> {
    const cib = await this.plan.state.readAll();
    const holder = decodeLease(cib.get(CUTOVER_KEY.lease));
    // pid 0 is the reservation of the launcher that started this very worker.
    if (cib.get(CUTOVER_KEY.state) === 'running' && holder && holder.pid !== 0 && holder.pid !== process.pid && holderAlive(holder, this.localNode)) {
      this.log.info(`cutover: a worker (${holder.node}, pid ${holder.pid}) is running; leaving it to finish`);
      return false;
    }
    return true;
  }

  private async runStep(step: Step, fn: () => Promise<void>): Promise<void> {
    if (this.stopRequested && !pastPointOfNoReturn(step)) throw new CutoverAbort('a stop of the resource interrupted the cutover');
    this.step = step;
    setStep(`cutover ${step}`);
    if (pastPointOfNoReturn(step)) await this.record({ [CUTOVER_KEY.step]: step });
    else this.recordInBackground({ [CUTOVER_KEY.step]: step });
    const t0 = Date.now();
    this.log.info(`cutover step ${STEPS.indexOf(step) + 1}/${STEPS.length}: ${step}`);
    await fn();
    await this.pauseForFaultInjection(step);
    this.timings[step] = Date.now() - t0;
    this.log.info(`cutover step ${step} done in ${this.timings[step]} ms`);
  }

  /**
   * Fault injection for the test suite: PGTWIN_MIGRATE_TEST_PAUSE_AT=<step>
   * holds the worker right after that step's work, so a test can kill it
   * exactly there. Never set in production.
   */
  private async pauseForFaultInjection(step: Step): Promise<void> {
    if (process.env.PGTWIN_MIGRATE_TEST_PAUSE_AT !== step) return;
    await this.cibQueue;
    this.log.warn(`cutover: paused after step ${step} (PGTWIN_MIGRATE_TEST_PAUSE_AT)`);
    for (;;) await sleep(1_000);
  }

  private async eachDatabase(what: string, fn: (o: DatabaseObjects) => Promise<void>): Promise<void> {
    const results = await settleAll(this.dbs, 64, fn);
    const failed = results.map((r, i) => [r, this.dbs[i]!] as const).filter(([r]) => r.status === 'rejected');
    if (failed.length === 0) return;
    for (const [r, o] of failed) this.log.err(`cutover: ${what} failed for ${JSON.stringify(o.database)}: ${(r as PromiseRejectedResult).reason?.message ?? r}`);
    const [r, o] = failed[0]!;
    const msg = String((r as PromiseRejectedResult).reason?.message ?? 'failed');
    throw new CutoverAbort(`${what}: ${msg.includes(JSON.stringify(o.database)) ? msg : `${JSON.stringify(o.database)}: ${msg}`}`);
  }

  // ---------------------------------------------------------------- the run

  async run(): Promise<CutoverOutcome> {
    if (!(await this.acquire())) return 'busy';
    this.startedAt = Date.now();
    await this.record({
      [CUTOVER_KEY.state]: 'running',
      [CUTOVER_KEY.step]: 'recheck',
      [CUTOVER_KEY.startedAt]: new Date(this.startedAt).toISOString(),
      [CUTOVER_KEY.error]: '',
      [CUTOVER_KEY.log]: this.logPath,
      [KEY.phase]: 'cutover',
    });
    this.startHeartbeat();
    this.log.info(`cutover of ${this.dbs.length} database(s) begins: ${this.plan.cfg.databaseList.join(', ')}`);
    try {
      const sourceMajor = await serverMajor(await this.sessions.get(this.dbs[0]!, 'source'));
      const reverseEarly = sourceMajor >= 16;
      await this.runStep('recheck', () => this.recheck());
      if (reverseEarly) await this.runStep('prepare-reverse', () => this.eachDatabase('preparing reverse replication', (o) => prepareReverse(this.plan, this.sessions, o)));
      await this.runStep('fence', () => this.fence());
      // Sequence values are final once writes are fenced: copy them while the slots catch up.
      const sequences = this.plan.cfg.sequence_sync ? this.copySequences() : Promise.resolve();
      sequences.catch(() => undefined);
      await this.runStep('sync', () => this.waitForSync());
      await this.runStep('disable-forward', () => this.disableAndProve());
      if (this.plan.cfg.sequence_sync) await this.runStep('sequences', () => sequences);
      if (!reverseEarly) await this.runStep('prepare-reverse', () => this.eachDatabase('preparing reverse replication', (o) => prepareReverse(this.plan, this.sessions, o)));
      await this.runStep('swap-vip', () => this.swapVip());
    } catch (err) {
      if (await this.swapLanded()) {
        this.log.warn(`cutover: ${(err as Error).message}; the VIP swap had already landed, so the cutover rolls forward`);
      } else {
        await this.rollback((err as Error).message);
        return 'rolled-back';
      }
    }
    await this.rollForward();
    return 'complete';
  }

  /** Takes over an interrupted cutover and applies the rule to its recorded step. */
  async recover(): Promise<CutoverOutcome> {
    if (!(await this.acquire())) return 'busy';
    const cib = await this.plan.state.readAll();
    const step = cib.get(CUTOVER_KEY.step);
    this.startedAt = Date.parse(cib.get(CUTOVER_KEY.startedAt) ?? '') || Date.now();
    const what = recoveryFor(step);
    this.log.warn(`cutover: taking over an interrupted cutover at step ${step ?? '(none)'}: ${what}`);
    await this.record({ [CUTOVER_KEY.state]: 'running' });
    this.startHeartbeat();
    if (what === 'nothing') {
      await this.complete();
      return 'complete';
    }
    if (what === 'rollback') {
      await this.rollback(`the cutover worker stopped at step ${step ?? '(none)'} (crash or node loss)`);
      return 'rolled-back';
    }
    this.step = step as Step;
    await this.rollForward();
    return 'complete';
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.sessions.closeAll();
  }

  // ---------------------------------------------------------------- steps before the swap

  private async recheck(): Promise<void> {
    const cib = await this.plan.state.readAll();
    const recorded = parseBaseline(cib.get(KEY.databases));
    if (recorded) {
      const d = diffBaseline(recorded, this.plan.cfg.databaseList);
      if (d.added.length + d.removed.length > 0) {
        this.log.err('Database list changed during migration!');
        this.log.err(`Expected: ${recorded.join(',')}`);
        this.log.err(`Current: ${this.plan.cfg.databaseList.join(',')}`);
        const parts = [d.added.length ? `added ${d.added.join(',')}` : '', d.removed.length ? `removed ${d.removed.join(',')}` : ''].filter(Boolean);
        throw new CutoverAbort(`Database list changed during migration (${parts.join('; ')}); expected ${recorded.join(',')}`);
      }
    }
    // Structural problems stop the cutover at once; lag and a running copy are
    // waited out (up to sync_timeout), as writes keep arriving until the fence.
    // Lag is WAL the publisher holds for a slot, and WAL is shared by all
    // databases: under load a single look rarely finds every one of them under
    // lag_threshold at the same instant, so a database counts as caught up
    // when it was seen under the threshold within the last RECENT_MS.
    const RECENT_MS = 2_000;
    const caughtUpAt = new Map<string, number>();
    const until = Date.now() + this.plan.cfg.sync_timeout * 1000;
    let lastReport = 0;
    // The first look is complete; later ones follow lag and workers through the
    // shared views only, with the tables' state as the first look found it.
    let first: Map<string, RememberedTarget> | undefined;
    for (;;) {
      if (this.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the cutover');
      const remembered = first;
      const views = await observeAll(
        this.plan,
        remembered ? { sourceDetails: () => false, targetDetails: () => false, remembered: (o) => remembered.get(o.token) } : COMPLETE,
      );
      const healths = views.map((v) => assessDatabase(v, { expectEnabled: true, lagThreshold: this.plan.cfg.lag_threshold }));
      const allCopied = healths.every((h) => h.state === 'streaming' && !h.needsRefresh);
      if (!first && allCopied) {
        first = new Map(
          healths.map((h) => [h.token, { tablesReady: h.tablesReady ?? 0, tablesTotal: h.tablesTotal ?? 0, unsubscribedTables: h.unsubscribedTables, ddl: { notReplayed: h.ddlNotReplayed, latest: undefined } }]),
        );
      }
      const waiting: string[] = [];
      for (const h of healths) {
        const db = JSON.stringify(h.database);
        if (h.state === 'broken') throw new CutoverAbort(`not ready: ${h.problem}`);
        if (h.ddlNotReplayed > 0) throw new CutoverAbort(`not ready: ${db} has ${h.ddlNotReplayed} DDL statement(s) not replayed on the target`);
        if (h.missingOnTarget.length > 0) throw new CutoverAbort(`not ready: ${db} has published tables missing on the target`);
        if (h.state !== 'streaming') waiting.push(`${db} is ${h.state} (tables ${h.tablesReady}/${h.tablesTotal})`);
        else if (h.needsRefresh) {
          waiting.push(`${db} waits for new tables to be copied`);
          const o = this.dbs.find((x) => x.token === h.token)!;
          await refreshSubscription(await this.sessions.get(o, 'target'), o.forwardSub);
        }
        else if (h.lagBytes !== null && h.lagBytes <= this.plan.cfg.lag_threshold) caughtUpAt.set(h.token, Date.now());
        else if (Date.now() - (caughtUpAt.get(h.token) ?? 0) > RECENT_MS) waiting.push(`${db} lags ${h.lagBytes ?? '?'} bytes`);
      }
      if (waiting.length === 0) break;
      if (Date.now() > until) throw new CutoverAbort(`not ready within sync_timeout=${this.plan.cfg.sync_timeout}s: ${waiting.join(', ')}`);
      if (Date.now() - lastReport > 5_000) {
        lastReport = Date.now();
        this.log.info(`cutover: waiting until every database is ready (lag under lag_threshold=${this.plan.cfg.lag_threshold}): ${waiting.join(', ')}`);
      }
      await sleep(200);
    }
    // A prepared transaction could still commit after the fence.
    const prepared = await (await this.sessions.get(this.dbs[0]!, 'source')).query<{ database: string; n: number }>(
      'SELECT database, count(*)::int AS n FROM pg_prepared_xacts WHERE database = ANY($1::text[]) GROUP BY 1',
      [this.plan.cfg.databaseList],
    );
    if (prepared.rows.length > 0) {
      const p = prepared.rows[0]!;
      throw new CutoverAbort(`not ready: ${p.n} prepared transaction(s) open in ${JSON.stringify(p.database)} on the source; COMMIT PREPARED or ROLLBACK PREPARED them first`);
    }
    // Open every session and read the VIPs now: the read-only window should pay for neither.
    await this.eachDatabase('connecting', async (o) => {
      await Promise.all([this.sessions.get(o, 'source'), this.sessions.get(o, 'target'), this.sessions.get(o, 'slot')]);
    });
    if (this.plan.cfg.production_vip_resource && this.plan.cfg.target_vip_resource) await this.readVips();
  }

  private async fence(): Promise<void> {
    const c = await this.sessions.get(this.dbs[0]!, 'source');
    this.fencedAt = Date.now();
    await setDefaultReadOnly(c, true);
    for (const o of this.dbs) this.markState(o, { quiesced: true });
    await sleep(FENCE_SETTLE_MS);
    const { rows } = await c.query<{ t: Date }>('SELECT clock_timestamp() AS t');
    const fenceTime = rows[0]!.t;
    const until = Date.now() + this.plan.cfg.quiesce_timeout * 1000;
    let open = await transactionsBefore(c, fenceTime);
    while (open.length > 0 && Date.now() < until) {
      await sleep(POLL_MS);
      open = await transactionsBefore(c, fenceTime);
    }
    for (const t of open) {
      this.log.warn(`cutover: ending session ${t.pid} (${t.user}@${t.database}, transaction open since ${t.since.toISOString()}${t.wrote ? ', has written' : ''}) after quiesce_timeout=${this.plan.cfg.quiesce_timeout}s`);
    }
    // Every other session of the migrated databases opened before the fence
    // ends too: its next command would still run with the old configuration.
    // Clients reconnect, and new sessions are read-only.
    const idle = (await sessionsBefore(c, fenceTime, this.plan.cfg.databaseList)).filter((x) => !open.some((t) => t.pid === x.pid));
    if (idle.length > 0) this.log.info(`cutover: ending ${idle.length} session(s) of the migrated databases opened before the fence`);
    await terminate(c, [...open, ...idle].map((t) => t.pid), await serverMajor(c));
    this.fenceLsn = await currentLsn(c);
    this.recordInBackground({
      [CUTOVER_KEY.fenceLsn]: this.fenceLsn,
      [CUTOVER_KEY.fencedAt]: new Date(this.fencedAt).toISOString(),
      [CUTOVER_KEY.fenceCompleteAt]: new Date().toISOString(),
    });
    this.log.info(`cutover: writes fenced on the source at ${this.fenceLsn}`);
  }

  private async waitForSync(): Promise<void> {
    const deadline = Date.now() + this.plan.cfg.sync_timeout * 1000;
    const behind = new Map<string, number | null>(this.dbs.map((o) => [o.database, null]));
    let lastReport = 0;
    // Slots are cluster-wide: one session on the slot host follows them all.
    const names = this.dbs.map((o) => o.forwardSlot);
    let major: number | undefined;
    for (;;) {
      if (this.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the cutover');
      let slots;
      try {
        const c = await this.sessions.get(this.dbs[0]!, 'slot');
        major ??= await serverMajor(c);
        slots = await readSlots(c, names, major);
      } catch (err) {
        throw new CutoverAbort(`waiting for sync: ${(err as Error).message}`);
      }
      for (const o of this.dbs) {
        const slot = slots.get(o.forwardSlot);
        if (!slot) throw new CutoverAbort(`waiting for sync: ${JSON.stringify(o.database)}: slot ${o.forwardSlot} disappeared`);
        behind.set(o.database, bytesBehind(slot.confirmedFlushLsn, this.fenceLsn));
      }
      if ([...behind.values()].every((b) => b === 0)) break;
      if (Date.now() - lastReport >= 1000) {
        lastReport = Date.now();
        const parts = [...behind.entries()].map(([db, b]) => `${db}: ${b === null ? 'unknown' : `${b}`} bytes`);
        this.log.info(`Waiting for forward replication sync (${parts.join(', ')})`);
      }
      if (Date.now() > deadline) {
        const lagging = [...behind.entries()].filter(([, b]) => b !== 0).map(([db, b]) => `${db}: ${b ?? '?'} bytes behind`);
        throw new CutoverAbort(`forward replication did not reach the fence within sync_timeout=${this.plan.cfg.sync_timeout}s (${lagging.join(', ')})`);
      }
      await sleep(POLL_MS);
    }
    this.log.info(`cutover: every database confirmed the fence position ${this.fenceLsn}`);
  }

  private async disableAndProve(): Promise<void> {
    await this.eachDatabase('disabling forward replication', async (o) => {
      await setSubscriptionEnabled(await this.sessions.get(o, 'target'), o.forwardSub, false);
    });
    // Wait until every walsender has let go of its slot (one query for all of them)…
    const c = await this.sessions.get(this.dbs[0]!, 'slot');
    const major = await serverMajor(c);
    const until = Date.now() + 15_000;
    for (;;) {
      const slots = await readSlots(c, this.dbs.map((o) => o.forwardSlot), major);
      const active = this.dbs.filter((o) => slots.get(o.forwardSlot)?.active !== false);
      const gone = this.dbs.find((o) => !slots.has(o.forwardSlot));
      if (gone) throw new CutoverAbort(`${JSON.stringify(gone.database)}: slot ${gone.forwardSlot} disappeared`);
      if (active.length === 0) break;
      if (Date.now() > until) {
        throw new CutoverAbort(`${JSON.stringify(active[0]!.database)}: slot ${active[0]!.forwardSlot} still active 15 s after disabling ${active[0]!.forwardSub}`);
      }
      await sleep(POLL_MS);
    }
    // …then peek into each (in its own database): nothing may be left unconsumed.
    await this.eachDatabase('proving the forward slots empty', async (o) => {
      const pending = await pendingChanges(await this.sessions.get(o, 'slot'), o.forwardSlot, o.forwardPub, pgoutputProtoVersion(major));
      if (pending > 0) {
        throw new CutoverAbort(`${JSON.stringify(o.database)}: ${pending} change(s) reached the source after the fence and were not replicated`);
      }
    });
    this.log.info('cutover: forward subscriptions disabled; no forward slot holds unconsumed changes');
  }

  private async copySequences(): Promise<void> {
    let total = 0;
    await this.eachDatabase('copying sequences', async (o) => {
      const source = await this.sessions.get(o, 'source');
      const target = await this.sessions.get(o, 'target');
      const values = await readSequences(source);
      const missing = await writeSequences(target, values);
      if (missing.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence(s) missing on the target: ${missing.slice(0, 5).join(', ')}`);
      const mismatched = sequenceMismatches(values, await readSequences(target));
      if (mismatched.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence values differ after the copy: ${mismatched.slice(0, 5).join(', ')}`);
      total += values.length;
    });
    this.log.info(`cutover: ${total} sequence value(s) copied and verified`);
  }

  /**
   * The point of no return: both VIP addresses and the step `swapped` in ONE
   * CIB update, with an order constraint so that, where the VIP resources
   * restart on an address change, every stop finishes before any start.
   */
  private async swapVip(): Promise<void> {
    const { cfg } = this.plan;
    const swappedRecord = this.plan.state.propertySetXml({ [CUTOVER_KEY.step]: 'swapped', [CUTOVER_KEY.lease]: this.lease() });
    if (!cfg.production_vip_resource || !cfg.target_vip_resource) {
      this.log.warn('cutover: production_vip_resource or target_vip_resource is empty; the VIP is not moved (move it yourself)');
      await this.plan.state.setMany({ [CUTOVER_KEY.step]: 'swapped', [CUTOVER_KEY.lease]: this.lease() });
      this.step = 'swapped';
      return;
    }
    const { prod, tgt } = this.vips ?? (await this.readVips());
    await this.cibQueue;
    const order = `<rsc_order id="${xmlEscape(`pgtwin-migrate-${this.plan.instance}-vip-order`)}" first="${xmlEscape(cfg.production_vip_resource)}" then="${xmlEscape(cfg.target_vip_resource)}" kind="Optional" symmetrical="true"/>`;
    await setAttributesAtomically(
      [
        { resource: cfg.production_vip_resource, name: cfg.vip_parameter, value: tgt, expect: prod },
        { resource: cfg.target_vip_resource, name: cfg.vip_parameter, value: prod, expect: tgt },
      ],
      [order],
      10_000,
      swappedRecord,
      false, // read back after the window (verifySwap)
    );
    this.step = 'swapped';
    this.log.info(`cutover: VIPs swapped in one CIB update: ${cfg.target_vip_resource} now has ${prod}, ${cfg.production_vip_resource} has ${tgt}`);
  }

  private vips: { prod: string; tgt: string } | undefined;
  /** The VIP resources' latest starts before the swap, to see them take their new addresses. */
  private vipStartsBefore: Map<string, Map<string, number>> | undefined;

  /** Both VIP addresses, recorded in the CIB before the fence (the swap then needs no extra write). */
  private async readVips(): Promise<{ prod: string; tgt: string }> {
    const { cfg } = this.plan;
    const resources = await readResourcesSection(10_000);
    const prod = requireAttribute(resources, cfg.production_vip_resource, cfg.vip_parameter).value;
    const tgt = requireAttribute(resources, cfg.target_vip_resource, cfg.vip_parameter).value;
    if (prod === tgt) throw new CutoverAbort(`${cfg.production_vip_resource} and ${cfg.target_vip_resource} both have ${cfg.vip_parameter}=${prod}; fix the VIP resources`);
    await this.record({ [CUTOVER_KEY.productionIp]: prod, [CUTOVER_KEY.targetIp]: tgt });
    const status = await readStatus(10_000, { operations: true });
    this.vipStartsBefore = new Map([cfg.production_vip_resource, cfg.target_vip_resource].map((r) => [r, lastStarts(status, r)]));
    this.vips = { prod, tgt };
    return this.vips;
  }

  /**
   * The swap is in the CIB; wait until Pacemaker has (re)started both VIP
   * resources with their new addresses, so the old source no longer answers
   * on the production address before it takes writes again.
   */
  private async waitForVipsToMove(timeoutMs = 30_000): Promise<void> {
    const before = this.vipStartsBefore;
    if (!before) return;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const status = await readStatus(10_000, { operations: true });
      const pending = [...before].filter(([rsc, starts]) => !restartedSince(status, rsc, starts)).map(([rsc]) => rsc);
      if (pending.length === 0) return;
      if (Date.now() > until) {
        this.log.warn(`cutover: ${pending.join(' and ')} did not restart within ${timeoutMs / 1000} s of the swap; making the source read-write anyway`);
        return;
      }
      await sleep(50);
    }
  }

  /** After the window: the swap reads back as made. */
  private async verifySwap(): Promise<void> {
    const { cfg } = this.plan;
    if (!this.vips || !cfg.production_vip_resource || !cfg.target_vip_resource) return;
    await verifyAttributes(
      [
        { resource: cfg.production_vip_resource, name: cfg.vip_parameter, value: this.vips.tgt },
        { resource: cfg.target_vip_resource, name: cfg.vip_parameter, value: this.vips.prod },
      ],
      10_000,
    );
  }

  /** Did the swap's CIB update land (even if the worker failed right after it)? */
  private async swapLanded(): Promise<boolean> {
    try {
      const step = await this.plan.state.get(CUTOVER_KEY.step);
      return step !== undefined && recoveryFor(step) !== 'rollback';
    } catch {
      return this.step === 'swapped';
    }
  }

  // ---------------------------------------------------------------- after the swap

  private async rollForward(): Promise<void> {
    const from = STEPS.indexOf(this.step);
    const at = (s: Step) => from <= STEPS.indexOf(s);
    const retry = async (step: Step, fn: () => Promise<void>) => {
      const until = Date.now() + 60_000;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.runStep(step, fn);
          return true;
        } catch (err) {
          if (Date.now() > until) {
            this.log.err(`cutover: ${step} still failing after ${attempt} attempts: ${(err as Error).message}`);
            return false;
          }
          this.log.warn(`cutover: ${step} failed (${(err as Error).message}); retrying`);
          for (const o of this.dbs) this.sessions.forget(o, 'source');
          await sleep(Math.min(5_000, 250 * attempt));
        }
      }
    };
    let reverseOk = true;
    if (at('source-read-write')) {
      reverseOk = await retry('source-read-write', async () => {
        await this.waitForVipsToMove();
        const c = await this.sessions.get(this.dbs[0]!, 'source');
        // Sessions still on the old source (through the old address, or directly)
        // would write there once it is read-write: end them, so they reconnect
        // through the production address, now on the target.
        const stale = await sessionsBefore(c, new Date(Date.now() + 60_000), this.plan.cfg.databaseList);
        if (stale.length > 0) this.log.info(`cutover: ending ${stale.length} session(s) of the migrated databases on the source before it takes writes again`);
        await terminate(c, stale.map((t) => t.pid), await serverMajor(c));
        await setDefaultReadOnly(c, false);
        for (const o of this.dbs) this.markState(o, { quiesced: false });
        if (this.fencedAt > 0) this.timings.window = Date.now() - this.fencedAt;
        this.log.info(`cutover: the source takes writes again${this.fencedAt > 0 ? `; read-only window ${this.timings.window} ms` : ''}`);
      });
    }
    if (at('enable-reverse') && reverseOk) {
      reverseOk = await retry('enable-reverse', async () => {
        await this.verifySwap().catch((err: Error) => this.log.err(`cutover: the VIP swap does not read back as made: ${err.message}; check the VIP resources`));
        await this.eachDatabase('enabling reverse replication', (o) => enableReverse(this.plan, this.sessions, o));
        await this.eachDatabase('verifying reverse replication', (o) => verifyReverse(this.plan, this.sessions, o, 30_000));
        for (const o of this.dbs) this.markState(o, { reverse_prepared: true });
        this.log.info('cutover: reverse replication (target → source) flows in every database');
      });
    }
    if (at('drop-forward')) {
      await retry('drop-forward', () => this.dropForward());
    }
    await this.complete(reverseOk);
  }

  private async dropForward(): Promise<void> {
    await this.eachDatabase('removing forward replication', async (o) => {
      const target = await this.sessions.get(o, 'target');
      const r = await dropSubscription(target, o.forwardSub, `target primary database ${JSON.stringify(o.database)}`);
      if (r.remoteSlotLeft) this.log.warn(`${JSON.stringify(o.database)}: slot ${r.remoteSlotLeft} is left on the source (${r.publisherError}); run pgtwin-migrate teardown later to remove it`);
      try {
        const source = await this.sessions.get(o, 'source');
        await dropPublication(source, o.forwardPub);
        await dropCaptureTrigger(source, o.forwardDdlTrigger);
      } catch (err) {
        this.log.warn(`${JSON.stringify(o.database)}: could not remove the forward publication on the source: ${(err as Error).message}`);
      }
    });
  }

  private async complete(reverseOk = true): Promise<void> {
    const ended = Date.now();
    const total = ended - this.startedAt;
    await this.record({
      [KEY.phase]: 'complete',
      [KEY.completedAt]: new Date(ended).toISOString(),
      [CUTOVER_KEY.state]: 'complete',
      [CUTOVER_KEY.step]: 'complete',
      [CUTOVER_KEY.endedAt]: new Date(ended).toISOString(),
      [CUTOVER_KEY.totalMs]: String(total),
      [CUTOVER_KEY.windowMs]: String(this.timings.window ?? ''),
      [CUTOVER_KEY.timings]: JSON.stringify(this.timings),
      [CUTOVER_KEY.reverse]: reverseOk ? 'running' : 'failed',
    });
    this.log.info(`cutover complete in ${total} ms (read-only window ${this.timings.window ?? '?'} ms); steps: ${JSON.stringify(this.timings)}`);
    if (!reverseOk) this.log.err('cutover: reverse replication could not be started; failback is not possible until it is fixed (see this log)');
    await setMetaAttribute(this.plan.instance, 'target-role', 'Stopped', 10_000).catch((err: Error) =>
      this.log.err(`cutover: could not set target-role=Stopped on ${this.plan.instance}: ${err.message}`),
    );
  }

  // ---------------------------------------------------------------- rollback

  private async rollback(reason: string): Promise<void> {
    this.log.err(`cutover failed at step ${this.step}: ${reason}; rolling back`);
    setStep('cutover rollback');
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      for (let i = 1; i <= 5; i++) {
        try {
          await fn();
          return;
        } catch (err) {
          if (i === 5) {
            problems.push(`${what}: ${(err as Error).message}`);
            this.log.err(`cutover rollback: ${what} failed: ${(err as Error).message}`);
            return;
          }
          for (const o of this.dbs) {
            this.sessions.forget(o, 'source');
            this.sessions.forget(o, 'target');
            this.sessions.forget(o, 'slot');
          }
          await sleep(500 * i);
        }
      }
    };
    await attempt('making the source read-write', async () => {
      await setDefaultReadOnly(await this.sessions.get(this.dbs[0]!, 'source'), false);
      for (const o of this.dbs) this.markState(o, { quiesced: false });
    });
    await attempt('removing reverse replication', () => this.eachDatabase('removing reverse replication', (o) => dropReverse(this.plan, this.sessions, o)));
    await attempt('re-enabling forward replication', () =>
      this.eachDatabase('re-enabling forward replication', async (o) => {
        const target = await this.sessions.get(o, 'target');
        const sub = await readSubscription(target, o.forwardSub, await serverMajor(target));
        if (sub && !sub.enabled) await setSubscriptionEnabled(target, o.forwardSub, true);
        this.markState(o, { reverse_prepared: false });
      }),
    );
    const error = problems.length > 0 ? `${reason} (rollback incomplete: ${problems[0]})` : reason;
    await this.record({
      [KEY.phase]: 'forward',
      [CUTOVER_KEY.state]: 'failed',
      [CUTOVER_KEY.step]: `rolled-back-at-${this.step}`,
      [CUTOVER_KEY.error]: error.slice(0, 500),
      [CUTOVER_KEY.endedAt]: new Date().toISOString(),
      [CUTOVER_KEY.timings]: JSON.stringify(this.timings),
    });
    this.log.err(`cutover rolled back: the source takes writes, forward replication runs again, VIPs untouched. Set cutover_ready=false, fix the cause, then true again to retry.`);
  }

  private markState(o: DatabaseObjects, fields: Record<string, boolean>): void {
    try {
      updateStateFile(this.plan.stateDir, o.token, fields);
    } catch (err) {
      this.log.warn(`cannot update the state file of ${JSON.stringify(o.database)}: ${(err as Error).message}`);
    }
  }
}
