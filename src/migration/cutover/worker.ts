/**
 * The cutover worker (DESIGN §6): ONE atomic cutover of every database. It
 * runs detached from the monitor that launched it, records each step and its
 * lease in the CIB, and writes the cutover log. Before the VIP swap any
 * failure rolls back; from the swap on it rolls forward.
 */
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Logger } from '../../ocf/log';
import { Sessions } from './sessions';
import { CutoverAbort, type CutoverContext } from './context';
import { recheck, fence, waitForSync, disableAndProve, copySequences, dropForward } from './database-steps';
import { VipHandOver } from './vip';
import { prepareReverse, enableReverse, verifyReverse, dropReverse } from './reverse';
import { STEPS, CUTOVER_KEY, recoveryFor, pastPointOfNoReturn, type Step } from './steps';
import { encodeLease, decodeLease, holderAlive, HEARTBEAT_MS } from './lease';
import { KEY } from '../cib-state';
import { settleAll, sleep } from '../parallel';
import { updateStateFile } from '../state-files';
import { setDefaultReadOnly, sessionsBefore, terminate } from '../../pg/fence';
import { setSubscriptionEnabled, readSubscription } from '../../pg/subscription';
import { serverMajor } from '../../pg/server';
import { setMetaAttribute } from '../../cluster/resources';
import { setStep } from '../../ocf/watchdog';

export type CutoverOutcome = 'complete' | 'rolled-back' | 'busy' | 'nothing';

export class CutoverRun implements CutoverContext {
  readonly sessions: Sessions;
  private readonly vip: VipHandOver;
  private readonly timings: Record<string, number> = {};
  step: Step = 'recheck';
  fenceLsn = '';
  fencedAt = 0;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private startedAt = Date.now();

  constructor(
    readonly plan: Plan,
    private readonly localNode: string,
    private readonly logPath: string,
  ) {
    this.sessions = new Sessions(plan);
    this.vip = new VipHandOver(this);
  }

  get log(): Logger {
    return this.plan.log;
  }

  get dbs(): readonly DatabaseObjects[] {
    return this.plan.cfg.objects;
  }

  /** A stop asked the cutover to end: before the swap it rolls back, after it finishes. */
  requestStop(): void {
    this.stopped = true;
  }

  get stopRequested(): boolean {
    return this.stopped;
  }

  lease(): string {
    return encodeLease({ node: this.localNode, pid: process.pid, at: Date.now() });
  }

  // CIB writes go one after the other, in order, even those not waited for.
  private cibQueue: Promise<void> = Promise.resolve();

  async record(values: Record<string, string>): Promise<void> {
    const write = this.cibQueue.then(() => this.plan.state.setMany({ ...values, [CUTOVER_KEY.lease]: this.lease() }));
    this.cibQueue = write.catch(() => undefined);
    await write;
  }

  /**
   * A record the cutover need not wait for (a step before the swap: for
   * recovery, every one of them means "roll back"). Queued behind the others,
   * so it can never land after the swap's own record.
   */
  recordInBackground(values: Record<string, string>): void {
    this.record(values).catch((err: Error) => this.log.warn(`cutover: could not record ${Object.keys(values).join(', ')} in the CIB: ${err.message}`));
  }

  recorded(): Promise<void> {
    return this.cibQueue;
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
    await this.recorded();
    this.log.warn(`cutover: paused after step ${step} (PGTWIN_MIGRATE_TEST_PAUSE_AT)`);
    for (;;) await sleep(1_000);
  }

  async eachDatabase(what: string, fn: (o: DatabaseObjects) => Promise<void>): Promise<void> {
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
    });
    this.startHeartbeat();
    this.log.info(`cutover of ${this.dbs.length} database(s) begins: ${this.plan.cfg.databaseList.join(', ')}`);
    try {
      const sourceMajor = await serverMajor(await this.sessions.get(this.dbs[0]!, 'source'));
      const reverseEarly = sourceMajor >= 16;
      await this.runStep('recheck', async () => {
        await recheck(this);
        // Read the VIPs now too: the read-only window should not pay for it.
        if (this.vip.configured) await this.vip.read();
      });
      if (reverseEarly) await this.runStep('prepare-reverse', () => this.eachDatabase('preparing reverse replication', (o) => prepareReverse(this.plan, this.sessions, o)));
      await this.runStep('fence', () => fence(this));
      // Sequence values are final once writes are fenced: copy them while the slots catch up.
      const sequences = this.plan.cfg.sequence_sync ? copySequences(this) : Promise.resolve();
      sequences.catch(() => undefined);
      await this.runStep('sync', () => waitForSync(this));
      await this.runStep('disable-forward', () => disableAndProve(this));
      if (this.plan.cfg.sequence_sync) await this.runStep('sequences', () => sequences);
      if (!reverseEarly) await this.runStep('prepare-reverse', () => this.eachDatabase('preparing reverse replication', (o) => prepareReverse(this.plan, this.sessions, o)));
      await this.runStep('swap-vip', () => this.vip.swap());
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
        await this.vip.waitMoved();
        const c = await this.sessions.get(this.dbs[0]!, 'source');
        // Sessions still on the old source (through the old address, or directly)
        // would write there once it is read-write: end them, so they reconnect
        // through the production address, now on the target.
        const stale = await sessionsBefore(c, new Date(Date.now() + 60_000), this.plan.cfg.databaseList);
        if (stale.length > 0) this.log.info(`cutover: ending ${stale.length} session(s) of the migrated databases on the source before it takes writes again`);
        await terminate(c, stale.map((t) => t.pid));
        await setDefaultReadOnly(c, false);
        for (const o of this.dbs) this.markState(o, { quiesced: false });
        if (this.fencedAt > 0) this.timings.window = Date.now() - this.fencedAt;
        this.log.info(`cutover: the source takes writes again${this.fencedAt > 0 ? `; read-only window ${this.timings.window} ms` : ''}`);
      });
    }
    if (at('enable-reverse') && reverseOk) {
      reverseOk = await retry('enable-reverse', async () => {
        await this.vip.verify().catch((err: Error) => this.log.err(`cutover: the VIP swap does not read back as made: ${err.message}; check the VIP resources`));
        await this.eachDatabase('enabling reverse replication', (o) => enableReverse(this.plan, this.sessions, o));
        await this.eachDatabase('verifying reverse replication', (o) => verifyReverse(this.plan, this.sessions, o, 30_000));
        for (const o of this.dbs) this.markState(o, { reverse_prepared: true });
        this.log.info('cutover: reverse replication (target → source) flows in every database');
      });
    }
    if (at('drop-forward')) {
      await retry('drop-forward', () => dropForward(this));
    }
    await this.complete(reverseOk);
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
      [CUTOVER_KEY.state]: 'failed',
      [CUTOVER_KEY.step]: `rolled-back-at-${this.step}`,
      [CUTOVER_KEY.error]: error.slice(0, 500),
      [CUTOVER_KEY.endedAt]: new Date().toISOString(),
      [CUTOVER_KEY.timings]: JSON.stringify(this.timings),
    });
    this.log.err(`cutover rolled back: the source takes writes, forward replication runs again, VIPs untouched. Set cutover_ready=false, fix the cause, then true again to retry.`);
  }

  markState(o: DatabaseObjects, fields: Record<string, boolean>): void {
    try {
      updateStateFile(this.plan.stateDir, o.token, fields);
    } catch (err) {
      this.log.warn(`cannot update the state file of ${JSON.stringify(o.database)}: ${(err as Error).message}`);
    }
  }
}
