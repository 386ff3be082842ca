/**
 * The switch worker (DESIGN §6): ONE atomic move of production for every
 * database — the cutover (source → target) or the failback (target →
 * source), the same steps read through a Move. It runs detached from the
 * monitor that launched it, holds a lease in the CIB (compare-and-swap),
 * records its steps there and writes the cutover log. Before the VIP swap
 * any failure rolls back; from the swap on it rolls forward, and the new
 * side takes writes only once the address provably leads there.
 */
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Logger } from '../../ocf/log';
import { MOVES, type Move, type SwitchKind } from '../direction';
import { Sessions } from './sessions';
import { CutoverAbort, LeaseLost, type CutoverContext } from './context';
import { recheck } from './recheck';
import { fence, waitForSync, disableAndProve, finalProof, liftFence, endOldSessions, reenableDrain, dropDrain } from './drain';
import { copySequences } from './carry';
import { proveDurable } from './durable';
import { prepareBack, completeBackTables, enableBack, verifyBack, dropBack, missingBackSlots, remakeBackSlot, WayBackLost } from './back';
import { VipHandOver } from './vip';
import { stepsOf, CUTOVER_KEY, recoveryFor, pastPointOfNoReturn, isStep, pastBlockedStep, type Step } from './steps';
import { encodeLease, decodeLease, processStart, HEARTBEAT_MS, SELF_FENCE_MS, type Lease } from './lease';
import { newProof, encodeProof, type Proof } from './proof';
import { KEY, proofKey, withEvent, parseHistory } from '../cib-state';
import { settleAll, sleep } from '../parallel';
import { updateStateFile } from '../state-files';
import { serverMajor } from '../../pg/server';
import { setStep } from '../../ocf/watchdog';

export type CutoverOutcome = 'complete' | 'rolled-back' | 'blocked' | 'busy' | 'superseded' | 'unfinished';

/**
 * Steps of the read-only window, from the fence to the lift, whose step is
 * not written to the CIB (see runStep): every change of the resource's
 * configuration makes Pacemaker compute a new transition, CPU taken from
 * the VIP swap and the servers while production waits.
 */
const IN_WINDOW: ReadonlySet<Step> = new Set<Step>(['fence', 'sync', 'disable-forward', 'disable-reverse', 'sequences', 'reverse-tables', 'prepare-forward', 'swap-vip', 'address', 'final-proof', 'lift']);

/** How long the switch waits for the production address to lead to the new side before it reports itself blocked (at most; sync_timeout if shorter). */
const ADDRESS_WAIT_MS = 60_000;
/**
 * Inside the read-only window the lease is renewed only once its last
 * renewal is this old (the recheck renews it just before the fence): a
 * window of a few seconds then writes nothing to the CIB but the swap,
 * and a longer one still renews well within SELF_FENCE_MS.
 */
const WINDOW_RENEW_MS = 5_000;
/** How long a step after the swap is retried before the switch reports itself blocked. */
const RETRY_AFTER_SWAP_MS = 60_000;

export interface RunOptions {
  /** The reservation the launcher wrote for this worker (the lease value it replaces). */
  readonly reservation?: string;
  /** The worker must have ended by then (a stop settling the switch in process); leaves the rest recorded. */
  readonly budgetEndsAt?: number;
  /**
   * Called (the detached worker: it ends the process) as soon as the lease
   * is lost or could not be renewed for SELF_FENCE_MS, whatever the step is
   * doing — a wait for slots or for the address may last longer than that,
   * and by then another node may have taken over.
   */
  readonly onLeaseLost?: (why: string) => void;
}

export class CutoverRun implements CutoverContext {
  readonly sessions: Sessions;
  readonly vip: VipHandOver;
  proof: Proof;
  move: Move;
  step: Step = 'recheck';
  fenceLsn = '';
  fencedAt = 0;
  private readonly timings: Record<string, number> = {};
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private startedAt = Date.now();
  private lease: Lease;
  /** When the lease was last written, on the monotonic clock: a wall clock stepped back must not make it look fresh. */
  private lastRenewed = monotonicMs();
  private lost: string | undefined;
  tookOver = false;

  constructor(
    readonly plan: Plan,
    localNode: string,
    private readonly logPath: string,
    kind: SwitchKind,
    private readonly opts: RunOptions = {},
  ) {
    this.move = MOVES[kind];
    this.sessions = new Sessions(plan, this.move.to);
    this.vip = new VipHandOver(this);
    this.proof = newProof(kind, this.move.from, this.move.to, this.move.drain, plan.cfg.databaseList);
    this.lease = { node: localNode, pid: process.pid, start: processStart(process.pid) ?? '', nonce: cryptoNonce(), seq: 0 };
  }

  get log(): Logger {
    return this.plan.log;
  }

  get dbs(): readonly DatabaseObjects[] {
    return this.plan.cfg.objects;
  }

  /** A stop asked the switch to end: before the swap it rolls back, after it finishes (or leaves the rest recorded). */
  requestStop(): void {
    this.stopped = true;
  }

  get stopRequested(): boolean {
    return this.stopped;
  }

  // ---------------------------------------------------------------- the lease and the record

  leaseValue(): string {
    return encodeLease(this.lease);
  }

  // CIB writes go one after the other, in order, even those not waited for:
  // each is a compare-and-swap on the lease value current at its turn.
  private cibQueue: Promise<void> = Promise.resolve();

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.cibQueue.then(fn);
    this.cibQueue = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Writes values (a CAS on this worker's lease); LeaseLost when another worker holds it. */
  async record(values: Record<string, string>): Promise<void> {
    // Giving the lease up: no renewal (nor the lost-lease watchdog) after it.
    if (values[CUTOVER_KEY.lease] === '' && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
    await this.enqueue(async () => {
      if (this.lost) throw new LeaseLost(this.lost);
      const outcome = await this.plan.state.casMany(values, [{ name: CUTOVER_KEY.lease, value: this.leaseValue() }]);
      if (outcome === 'applied') {
        this.lastRenewed = monotonicMs();
        return;
      }
      if (outcome === 'refused') {
        this.lost = 'another worker holds the lease';
        throw new LeaseLost(this.lost);
      }
      // Unknown: learn whether it landed (the values are ours alone only with the lease; check the lease too).
      const record = await this.plan.state.barrier(CUTOVER_KEY.barrier);
      if (record.get(CUTOVER_KEY.lease) !== this.leaseValue()) {
        this.lost = 'another worker holds the lease';
        throw new LeaseLost(this.lost);
      }
      if (Object.entries(values).some(([k, v]) => record.get(k) !== v)) await this.plan.state.casMany(values, [{ name: CUTOVER_KEY.lease, value: this.leaseValue() }]);
    });
  }

  /** A record the switch need not wait for (every step before the swap means "roll back"; after it, "roll forward"). */
  recordInBackground(values: Record<string, string>): void {
    this.record(values).catch((err: Error) => this.log.warn(`${this.move.kind}: could not record ${Object.keys(values).join(', ')} in the CIB: ${err.message}`));
  }

  recorded(): Promise<void> {
    return this.cibQueue;
  }

  /** Renews the lease (sequence + 1) by compare-and-swap. */
  private renew(): Promise<void> {
    return this.enqueue(async () => {
      if (this.lost) throw new LeaseLost(this.lost);
      const next: Lease = { ...this.lease, seq: this.lease.seq + 1 };
      const outcome = await this.plan.state.casMany({ [CUTOVER_KEY.lease]: encodeLease(next) }, [{ name: CUTOVER_KEY.lease, value: this.leaseValue() }]);
      if (outcome === 'refused') {
        this.lost = 'another worker took the lease over';
        throw new LeaseLost(this.lost);
      }
      if (outcome === 'unknown') {
        const record = await this.plan.state.barrier(CUTOVER_KEY.barrier);
        const now = record.get(CUTOVER_KEY.lease);
        if (now !== encodeLease(next) && now !== this.leaseValue()) {
          this.lost = 'another worker took the lease over';
          throw new LeaseLost(this.lost);
        }
        if (now === this.leaseValue()) return;
      }
      this.lease = next;
      this.lastRenewed = monotonicMs();
    });
  }

  async assertLease(): Promise<void> {
    await this.renew();
  }

  withLease<T>(fn: (leaseValue: string) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      if (this.lost) throw new LeaseLost(this.lost);
      return fn(this.leaseValue());
    });
  }

  /** Stops acting when the lease is another's, or could not be renewed for long enough that others may take over. */
  private checkLease(): void {
    if (this.lost) throw new LeaseLost(this.lost);
    if (monotonicMs() - this.lastRenewed > SELF_FENCE_MS) {
      this.lost = `the lease could not be renewed for ${Math.round((monotonicMs() - this.lastRenewed) / 1000)} s (CIB unreachable?)`;
      throw new LeaseLost(this.lost);
    }
  }

  private startHeartbeat(): void {
    this.heartbeat = setInterval(() => {
      // Not in the CIB queue: a write stuck there must not keep this check from running.
      const stale = monotonicMs() - this.lastRenewed;
      if (this.opts.onLeaseLost && (this.lost !== undefined || stale > SELF_FENCE_MS)) {
        if (this.heartbeat) clearInterval(this.heartbeat);
        this.opts.onLeaseLost(this.lost ?? `the lease could not be renewed for ${Math.round(stale / 1000)} s (CIB unreachable?)`);
        return;
      }
      if ((IN_WINDOW.has(this.step) || this.step === 'swapped') && stale < WINDOW_RENEW_MS) return;
      this.renew().catch((err: Error) => {
        if (!(err instanceof LeaseLost)) this.log.warn(`${this.move.kind}: lease renewal failed: ${err.message}`);
      });
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Takes the lease over from `expected` (the launcher's reservation, or a dead holder's lease). */
  private async acquire(): Promise<boolean> {
    const record = await this.plan.state.readAll();
    const current = record.get(CUTOVER_KEY.lease) ?? '';
    const reserved = decodeLease(this.opts.reservation);
    const held = decodeLease(current);
    if (this.opts.reservation !== undefined && current !== this.opts.reservation) {
      this.log.info(`${this.move.kind}: the lease is no longer the reservation this worker was started for (${held ? `held by pid ${held.pid} on ${held.node}` : 'released'}); leaving`);
      return false;
    }
    if (reserved) this.lease = { ...this.lease, nonce: reserved.nonce };
    const outcome = await this.plan.state.casMany({ [CUTOVER_KEY.lease]: this.leaseValue() }, [{ name: CUTOVER_KEY.lease, value: current === '' && !record.has(CUTOVER_KEY.lease) ? undefined : current }]);
    if (outcome !== 'applied') {
      const now = (await this.plan.state.barrier(CUTOVER_KEY.barrier)).get(CUTOVER_KEY.lease);
      if (now !== this.leaseValue()) {
        this.log.info(`${this.move.kind}: another worker took the lease first; leaving`);
        return false;
      }
    }
    this.lastRenewed = monotonicMs();
    return true;
  }

  // ---------------------------------------------------------------- steps

  /** The recorded step of the blocked switch this worker retries (undefined: it retries none, or got past it). */
  private blockedAt: string | undefined;

  /**
   * A retried blocked switch is `running` again once it gets past where it
   * was blocked (pastBlockedStep): else the monitor would go on failing with
   * the old reason, and Pacemaker's recovery (a stop) would interrupt the
   * very worker that is finishing the switch, again and again.
   */
  private unblockedBy(step: Step): Record<string, string> | undefined {
    if (this.blockedAt === undefined || !pastBlockedStep(this.move.kind, this.blockedAt, step)) return undefined;
    this.log.info(`${this.move.kind}: past the step it was blocked at (${this.blockedAt}); running again`);
    this.blockedAt = undefined;
    return { [CUTOVER_KEY.state]: 'running', [CUTOVER_KEY.error]: '' };
  }

  private async runStep(step: Step, fn: () => Promise<void>): Promise<void> {
    this.checkLease();
    if (this.stopRequested && !pastPointOfNoReturn(step, this.move.kind)) throw new CutoverAbort('a stop of the resource interrupted the switch');
    this.step = step;
    setStep(`${this.move.kind} ${step}`);
    // Inside the read-only window every CIB write would queue before the swap's:
    // there the step is only logged (for recovery any step before the swap means
    // "roll back", any after it "roll forward"), and the swap records its own.
    const unblocked = this.unblockedBy(step);
    if (!IN_WINDOW.has(step)) this.recordInBackground({ [CUTOVER_KEY.step]: step, ...unblocked });
    else if (unblocked) this.recordInBackground(unblocked);
    const t0 = Date.now();
    const steps = stepsOf(this.move.kind);
    this.log.info(`${this.move.kind} step ${steps.indexOf(step) + 1}/${steps.length}: ${step}`);
    await fn();
    await this.pauseForFaultInjection(step);
    this.timings[step] = Date.now() - t0;
    this.log.info(`${this.move.kind} step ${step} done in ${this.timings[step]} ms`);
  }

  /**
   * Fault injection for the test suite: PGTWIN_MIGRATE_TEST_PAUSE_AT=<step>
   * holds the worker right after that step, so a test can kill it there.
   * Honoured only on the test rig (its marker file, owned by root): a stray
   * variable on a production node must never leave a cluster fenced.
   */
  private async pauseForFaultInjection(step: Step): Promise<void> {
    const [at, ms] = (process.env.PGTWIN_MIGRATE_TEST_PAUSE_AT ?? '').split(':');
    if (!at || at !== step) return;
    if (!onTestRig()) {
      this.log.warn(`${this.move.kind}: ignoring PGTWIN_MIGRATE_TEST_PAUSE_AT: it works only on the test rig (${TEST_RIG_MARKER})`);
      return;
    }
    await this.recorded();
    // <step>:<ms> pauses that long and goes on; <step> alone holds the worker until it is killed.
    this.log.warn(`${this.move.kind}: paused after step ${step} (PGTWIN_MIGRATE_TEST_PAUSE_AT)`);
    if (ms) await sleep(Number(ms));
    else for (;;) await sleep(1_000);
    this.log.warn(`${this.move.kind}: resumed after step ${step}`);
  }

  async eachDatabase(what: string, fn: (o: DatabaseObjects) => Promise<void>): Promise<void> {
    const results = await settleAll(this.dbs, 64, fn);
    const failed = results.map((r, i) => [r, this.dbs[i]!] as const).filter(([r]) => r.status === 'rejected');
    if (failed.length === 0) return;
    const lost = failed.find(([r]) => (r as PromiseRejectedResult).reason instanceof LeaseLost);
    if (lost) throw (lost[0] as PromiseRejectedResult).reason;
    for (const [r, o] of failed) this.log.err(`${this.move.kind}: ${what} failed for ${JSON.stringify(o.database)}: ${(r as PromiseRejectedResult).reason?.message ?? r}`);
    const [r, o] = failed[0]!;
    const msg = String((r as PromiseRejectedResult).reason?.message ?? 'failed');
    throw new CutoverAbort(`${what}: ${msg.includes(JSON.stringify(o.database)) ? msg : `${JSON.stringify(o.database)}: ${msg}`}`);
  }

  markState(o: DatabaseObjects, fields: Record<string, boolean | string>): void {
    try {
      updateStateFile(this.plan.stateDir, o.token, fields);
    } catch (err) {
      this.log.warn(`cannot update the state file of ${JSON.stringify(o.database)}: ${(err as Error).message}`);
    }
  }

  // ---------------------------------------------------------------- the run

  async run(): Promise<CutoverOutcome> {
    if (!(await this.acquire())) return 'busy';
    this.startedAt = Date.now();
    this.proof.startedAt = new Date(this.startedAt).toISOString();
    const { move } = this;
    try {
      await this.record({
        [CUTOVER_KEY.kind]: move.kind,
        [CUTOVER_KEY.state]: 'running',
        [CUTOVER_KEY.step]: 'recheck',
        [CUTOVER_KEY.startedAt]: this.proof.startedAt,
        [CUTOVER_KEY.error]: '',
        [CUTOVER_KEY.log]: this.logPath,
      });
    } catch (err) {
      if (err instanceof LeaseLost) return 'superseded';
      throw err;
    }
    this.startHeartbeat();
    this.log.info(`${move.kind} of ${this.dbs.length} database(s) begins (${move.from} → ${move.to}): ${this.plan.cfg.databaseList.join(', ')}`);
    try {
      const backEarly = move.kind === 'cutover' && (await serverMajor(await this.sessions.get(this.dbs[0]!, move.from))) >= 16;
      const backStep: Step = move.kind === 'cutover' ? 'prepare-reverse' : 'prepare-forward';
      const prepare = () => this.eachDatabase(`preparing ${move.back} replication`, (o) => prepareBack(this.plan, this.sessions, o, move.back));
      await this.runStep('recheck', async () => {
        await recheck(this);
        // Read the addresses now too: the read-only window should not pay for it.
        await this.vip.read();
        await this.assertLease();
      });
      if (backEarly) await this.runStep(backStep, prepare);
      // Recorded before the window opens, and waited for: inside it the CIB is left alone (IN_WINDOW).
      await this.record({ [CUTOVER_KEY.step]: 'fence' });
      await this.runStep('fence', () => fence(this));
      // Sequence values are final once writes are fenced: copy them while the slots catch up.
      const sequences = this.plan.cfg.sequence_sync ? copySequences(this) : Promise.resolve();
      sequences.catch(() => undefined);
      await this.runStep('sync', () => waitForSync(this));
      await this.runStep(move.kind === 'cutover' ? 'disable-forward' : 'disable-reverse', () => disableAndProve(this));
      if (this.plan.cfg.sequence_sync) await this.runStep('sequences', () => sequences);
      if (!backEarly) await this.runStep(backStep, prepare);
      if (backEarly) {
        await this.runStep('reverse-tables', () =>
          this.eachDatabase(`checking the tables of ${move.back} replication`, async (o) => {
            const added = await completeBackTables(this.plan, this.sessions, o, move.back);
            if (added.length > 0) this.log.info(`${move.kind}: ${JSON.stringify(o.database)}: ${move.back} replication now covers ${added.join(', ')}`);
          }),
        );
      }
      await this.runStep('swap-vip', async () => {
        // Everything the new side was given (replicated changes, sequence values, the way back's
        // objects) is on its synchronous standbys before production is handed to it.
        await proveDurable(this, Date.now() + Math.min(this.plan.cfg.sync_timeout * 1000, Math.max(1_000, this.remainingMs() - 5_000)), 'before the swap');
        // A stop that arrived during the wait still finds the switch before its point of no return.
        if (this.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the switch');
        await this.vip.swap();
      });
    } catch (err) {
      if (err instanceof LeaseLost) {
        this.log.err(`${move.kind}: ${err.message}; this worker stops here and leaves the switch to the lease holder`);
        return 'superseded';
      }
      if (await this.swapLanded()) {
        this.log.warn(`${move.kind}: ${(err as Error).message}; the VIP swap had already landed, so the switch rolls forward`);
      } else {
        return this.rollback((err as Error).message);
      }
    }
    return this.rollForward();
  }

  /** Takes over an interrupted switch and applies the rule to its recorded step. */
  async recover(): Promise<CutoverOutcome> {
    if (!(await this.acquire())) return 'busy';
    this.tookOver = true;
    const record = await this.plan.state.readAll();
    const step = record.get(CUTOVER_KEY.step);
    this.startedAt = Date.parse(record.get(CUTOVER_KEY.startedAt) ?? '') || Date.now();
    this.proof.startedAt = new Date(this.startedAt).toISOString();
    this.vip.restore(record);
    const fencedAt = Date.parse(record.get(CUTOVER_KEY.fencedAt) ?? '');
    if (Number.isFinite(fencedAt)) {
      this.fencedAt = fencedAt;
      this.proof.fencedAt = record.get(CUTOVER_KEY.fencedAt);
    }
    this.proof.fenceCompleteAt = record.get(CUTOVER_KEY.fenceCompleteAt);
    this.proof.fenceLsn = record.get(CUTOVER_KEY.fenceLsn);
    this.proof.swappedAt = record.get(CUTOVER_KEY.swappedAt);
    const what = recoveryFor(step, this.move.kind);
    if (isStep(step, this.move.kind)) this.step = step;
    this.log.warn(`${this.move.kind}: taking over an interrupted switch at step ${step ?? '(none)'}: ${what}`);
    try {
      // A retry of a blocked switch stays `blocked` (the monitor keeps failing with the reason) until it gets further.
      if (record.get(CUTOVER_KEY.state) === 'blocked') this.blockedAt = record.get(CUTOVER_KEY.blockedAt) || step || '';
      await this.record(this.blockedAt !== undefined ? { [CUTOVER_KEY.step]: step ?? '' } : { [CUTOVER_KEY.state]: 'running' });
    } catch (err) {
      if (err instanceof LeaseLost) return 'superseded';
      throw err;
    }
    this.startHeartbeat();
    if (what === 'nothing') return this.complete();
    if (what === 'rollback') return this.rollback(`the ${this.move.kind} worker stopped at step ${step ?? '(none)'} (crash, stop or node loss)`);
    return this.rollForward();
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.cibQueue;
    await this.sessions.closeAll();
  }

  /** Did the swap's CIB update land (even if the worker failed right after it)? */
  private async swapLanded(): Promise<boolean> {
    if (this.step === 'swapped') return true;
    try {
      const record = await this.plan.state.barrier(CUTOVER_KEY.barrier);
      return recoveryFor(record.get(CUTOVER_KEY.step), this.move.kind) !== 'rollback';
    } catch (err) {
      // Nothing can be known: the switch stays as recorded; the monitor decides once the CIB answers.
      this.log.err(`${this.move.kind}: cannot read the CIB to learn whether the swap landed (${(err as Error).message}); leaving the switch recorded as running for the next monitor`);
      throw new LeaseLost('the CIB cannot be read');
    }
  }

  private remainingMs(): number {
    return this.opts.budgetEndsAt === undefined ? Number.POSITIVE_INFINITY : this.opts.budgetEndsAt - Date.now();
  }

  // ---------------------------------------------------------------- after the swap

  /** Retries a step after the swap until it succeeds, or (after RETRY_AFTER_SWAP_MS) returns its error. */
  private async retry(step: Step, fn: () => Promise<void>): Promise<string | undefined> {
    const until = Date.now() + Math.min(RETRY_AFTER_SWAP_MS, this.remainingMs() - 2_000);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.runStep(step, fn);
        return undefined;
      } catch (err) {
        if (err instanceof LeaseLost) throw err;
        // A lost way back does not come back by trying again.
        if (Date.now() > until || err instanceof WayBackLost) {
          this.log.err(`${this.move.kind}: ${step} still failing after ${attempt} attempt(s): ${(err as Error).message}`);
          return (err as Error).message;
        }
        this.log.warn(`${this.move.kind}: ${step} failed (${(err as Error).message}); retrying`);
        this.sessions.forgetAll();
        await sleep(Math.min(5_000, 250 * attempt));
      }
    }
  }

  private async rollForward(): Promise<CutoverOutcome> {
    const { move } = this;
    const steps = stepsOf(move.kind);
    const from = steps.indexOf(this.step);
    const at = (s: Step) => from <= steps.indexOf(s);
    try {
      if (at('address')) {
        let how: string | undefined;
        const failure = await this.retry('address', async () => {
          const budget = Math.min(ADDRESS_WAIT_MS, this.plan.cfg.sync_timeout * 1000, Math.max(0, this.remainingMs() - 5_000));
          how = await this.vip.awaitAddress(this.stopRequested ? Math.min(budget, 5_000) : budget);
        });
        if (failure || !how) {
          const why = failure ?? (await this.vip.whyNotProven().catch((err: Error) => err.message));
          return this.block(
            `production address not proven to lead to the ${move.to}: ${why}; the ${move.from} stays read-only and the ${move.to} fenced until it does — fix the VIP resource (crm_mon -1), the switch then finishes by itself`,
          );
        }
        this.proof.addressProof = how;
        this.proof.addressProvenAt = new Date().toISOString();
        this.log.info(`${move.kind}: ${how}`);
      }
      if (at('final-proof')) {
        const failure = await this.retry('final-proof', () => finalProof(this));
        if (failure) return this.block(`the final proof failed: ${failure}`);
      }
      if (at('lift')) {
        let lost: WayBackLost | undefined;
        const failure = await this.retry('lift', async () => {
          // The way back is looked after before the lift (a lost slot can be made again only while the
          // new side is fenced), but never holds the lift up: the address is proven and the old side
          // fenced, so only the new side takes writes; a way back that cannot be kept is reported after.
          lost = await this.keepWayBack(true);
          await liftFence(this, move.to);
          const liftedAt = Date.now();
          this.proof.firstWriteAt = new Date(liftedAt).toISOString();
          if (this.fencedAt > 0) {
            this.proof.windowMs = liftedAt - this.fencedAt;
            this.timings.window = this.proof.windowMs;
          }
          this.recordInBackground({ [CUTOVER_KEY.liftedAt]: this.proof.firstWriteAt });
          this.log.info(`${move.kind}: the ${move.to} takes writes${this.fencedAt > 0 ? `; read-only window ${this.proof.windowMs} ms` : ''}`);
          await endOldSessions(this).catch((err: Error) => this.log.warn(`${move.kind}: could not end the old sessions on the ${move.from}: ${err.message}`));
        });
        if (failure) return this.block(`the ${move.to} could not be unfenced: ${failure}`);
        if (lost) return this.block(lost.message);
      }
      const enableStep: Step = move.kind === 'cutover' ? 'enable-reverse' : 'enable-forward';
      if (at(enableStep)) {
        let lost: WayBackLost | undefined;
        const failure = await this.retry(enableStep, async () => {
          lost = await this.keepWayBack(false);
          // Taken over past the lift: the new side's primary may have changed since, and the lift
          // with it; lifted again (it changes nothing where it holds), after the way back was kept,
          // and whether or not it could be.
          if (!at('lift')) await liftFence(this, move.to);
          if (lost) throw lost;
          await this.eachDatabase(`enabling ${move.back} replication`, (o) => enableBack(this.sessions, o, move.back));
          await this.eachDatabase(`verifying ${move.back} replication`, (o) => verifyBack(this.plan, this.sessions, o, move.back, 30_000));
          for (const o of this.dbs) this.markState(o, { reverse_prepared: move.back === 'reverse' });
          this.log.info(`${move.kind}: ${move.back} replication flows in every database`);
        });
        if (failure) return this.block(lost ? lost.message : `${move.back} replication does not flow: ${failure}`);
      }
      const dropStep: Step = move.kind === 'cutover' ? 'drop-forward' : 'drop-reverse';
      if (at(dropStep)) {
        const failure = await this.retry(dropStep, () => dropDrain(this));
        if (failure) return this.block(`${move.drain} replication could not be removed: ${failure}`);
      }
      return await this.complete();
    } catch (err) {
      if (err instanceof LeaseLost) {
        this.log.err(`${move.kind}: ${err.message}; this worker stops here`);
        return 'superseded';
      }
      throw err;
    }
  }

  /**
   * The way back's slots, looked for once (one query); one lost with a
   * failover of the new side is made again where that is safe (remakeBackSlot).
   * Returns why the way back is lost, if it is. `beforeLift`: a slot host that
   * cannot be asked (a source standby being rebuilt) does not hold the lift
   * up; the enable step asks again.
   */
  private async keepWayBack(beforeLift: boolean): Promise<WayBackLost | undefined> {
    let missing: DatabaseObjects[];
    try {
      missing = await missingBackSlots(this.sessions, this.dbs, this.move.back);
    } catch (err) {
      if (!beforeLift) throw err;
      this.log.warn(`${this.move.kind}: cannot look at the ${this.move.back} slots before the lift (${(err as Error).message}); looking again when the way back is enabled`);
      return undefined;
    }
    // Rare (a failover of the new side), so one after the other; one lost does not keep the others from being made.
    let lost: WayBackLost | undefined;
    for (const o of missing) {
      try {
        await remakeBackSlot(this.plan, this.sessions, o, this.move.back);
      } catch (err) {
        if (!(err instanceof WayBackLost)) throw err;
        lost ??= err;
      }
    }
    return lost;
  }

  /**
   * A step after the swap keeps failing: nothing more happens (the old side
   * stays fenced; the new side is unfenced only once the address is proven),
   * the state says why, and the next monitor fails with that reason and
   * tries again. Out of the worker's time budget (a stop), the rest is left
   * to the next start or monitor.
   */
  private async block(reason: string): Promise<CutoverOutcome> {
    if (this.remainingMs() < 5_000) {
      this.log.warn(`${this.move.kind}: out of time at step ${this.step}; the next start or monitor finishes the switch`);
      await this.record({ [CUTOVER_KEY.lease]: '' }).catch(() => undefined);
      return 'unfinished';
    }
    this.log.err(`${this.move.kind} blocked at step ${this.step}: ${reason}`);
    const record = await this.plan.state.readAll().catch(() => new Map<string, string>());
    const history = parseHistory(record.get(KEY.history));
    const last = history[history.length - 1];
    await this.record({
      [CUTOVER_KEY.state]: 'blocked',
      [CUTOVER_KEY.error]: reason.slice(0, 500),
      // The step itself (inside the read-only window it is not the recorded one): a retry is past the blockage only beyond it.
      [CUTOVER_KEY.blockedAt]: this.step,
      [CUTOVER_KEY.lease]: '',
      // Once per blockage, not at every retry.
      ...(last?.event === `${this.move.kind} blocked` && last.detail === reason.slice(0, 300) ? {} : { [KEY.history]: withEvent(record.get(KEY.history), `${this.move.kind} blocked`, reason.slice(0, 300)) }),
    });
    return 'blocked';
  }

  private async complete(): Promise<CutoverOutcome> {
    const { move } = this;
    const ended = Date.now();
    const total = ended - this.startedAt;
    this.proof.completedAt = new Date(ended).toISOString();
    this.proof.timings = this.timings;
    const record = await this.plan.state.readAll();
    const n = (Number(record.get(KEY.switches)) || 0) + 1;
    const phase = move.to === 'target' ? 'reverse' : 'forward';
    await this.record({
      [KEY.phase]: phase,
      [KEY.completedAt]: this.proof.completedAt,
      [KEY.switches]: String(n),
      [proofKey(n)]: encodeProof(this.proof),
      [KEY.history]: withEvent(record.get(KEY.history), `${move.kind} complete`, `read-only window ${this.proof.windowMs ?? '?'} ms, total ${total} ms; steps ${JSON.stringify(this.timings)}`),
      [CUTOVER_KEY.state]: 'complete',
      [CUTOVER_KEY.step]: 'complete',
      [CUTOVER_KEY.endedAt]: this.proof.completedAt,
      [CUTOVER_KEY.totalMs]: String(total),
      [CUTOVER_KEY.windowMs]: String(this.proof.windowMs ?? ''),
      [CUTOVER_KEY.timings]: JSON.stringify(this.timings),
      [CUTOVER_KEY.reverse]: move.back === 'reverse' ? 'running' : '',
      [CUTOVER_KEY.armed]: 'no',
      [CUTOVER_KEY.error]: '',
    });
    for (const o of this.dbs) this.markState(o, { phase });
    await this.record({ [CUTOVER_KEY.lease]: '' }).catch(() => undefined);
    this.log.info(`${move.kind} complete in ${total} ms (read-only window ${this.proof.windowMs ?? '?'} ms); steps: ${JSON.stringify(this.timings)}; production is on the ${move.to}, phase ${phase}`);
    return 'complete';
  }

  // ---------------------------------------------------------------- rollback

  private async rollback(reason: string): Promise<CutoverOutcome> {
    const { move } = this;
    this.log.err(`${move.kind} failed at step ${this.step}: ${reason}; rolling back`);
    setStep(`${move.kind} rollback`);
    try {
      await this.assertLease();
    } catch (err) {
      this.log.err(`${move.kind}: ${(err as Error).message}; not rolling back: the lease holder does`);
      return 'superseded';
    }
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      for (let i = 1; i <= 5; i++) {
        try {
          await fn();
          return;
        } catch (err) {
          if (i === 5 || this.remainingMs() < 3_000) {
            problems.push(`${what}: ${(err as Error).message}`);
            this.log.err(`${move.kind} rollback: ${what} failed: ${(err as Error).message}`);
            return;
          }
          this.sessions.forgetAll();
          await sleep(500 * i);
        }
      }
    };
    // First and foremost: the old side takes writes again.
    await attempt(`lifting the write fence on the ${move.from}`, () => liftFence(this, move.from));
    await attempt(`removing ${move.back} replication`, () => this.eachDatabase(`removing ${move.back} replication`, (o) => dropBack(this.sessions, o, move.back)));
    await attempt(`re-enabling ${move.drain} replication`, () => reenableDrain(this));
    for (const o of this.dbs) this.markState(o, { reverse_prepared: false });
    const error =
      problems.length > 0
        ? `${reason} (rollback incomplete: ${problems[0]}; the monitor retries it)`
        : reason;
    const record = await this.plan.state.readAll().catch(() => new Map<string, string>());
    await this.record({
      [CUTOVER_KEY.state]: 'failed',
      [CUTOVER_KEY.step]: `rolled-back-at-${this.step}`,
      [CUTOVER_KEY.error]: error.slice(0, 500),
      [CUTOVER_KEY.endedAt]: new Date().toISOString(),
      [CUTOVER_KEY.timings]: JSON.stringify(this.timings),
      [CUTOVER_KEY.armed]: 'no',
      [KEY.history]: withEvent(record.get(KEY.history), `${move.kind} rolled back`, error.slice(0, 300)),
    }).catch((err: Error) => this.log.err(`${move.kind}: could not record the rollback: ${err.message}`));
    await this.record({ [CUTOVER_KEY.lease]: '' }).catch(() => undefined);
    this.log.err(
      `${move.kind} rolled back: the ${move.from} takes writes, ${move.drain} replication runs again, addresses untouched. Set cutover_ready=false, fix the cause, then true again to retry.`,
    );
    return 'rolled-back';
  }
}

function monotonicMs(): number {
  return performance.now();
}

function cryptoNonce(): string {
  return randomUUID();
}

/** The file the test rig creates (root-owned) so that fault injection works there and nowhere else. */
export const TEST_RIG_MARKER = '/run/pgtwin-migrate-test-rig';

function onTestRig(): boolean {
  try {
    const st = statSync(TEST_RIG_MARKER);
    return st.isFile() && st.uid === 0 && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}
