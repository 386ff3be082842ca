/**
 * Forward replication of one database: adopt what exists, create what is
 * missing, never copy a database again whose subscription exists. A
 * database set up anew is set up completely or not at all: every object
 * created in this attempt is removed again when a later step fails.
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions, replicationConninfo } from './plan';
import type { DatabaseObjects } from './names';
import type { DatabaseFacts } from './preflight';
import { connect, describe } from '../pg/connection';
import { assertOwnPublication, createPublication, dropPublication, publicationExists, publishPartitionsAsThemselves } from '../pg/publication';
import {
  createSubscription,
  dropSubscription,
  readSubscription,
  setSubscriptionConnection,
  setSubscriptionEnabled,
  setSubscriptionOrigin,
  subscriptionOrigin,
} from '../pg/subscription';
import { slotExists, readSlot } from '../pg/slots';
import { installDdlSchema, ensureCaptureTrigger, dropCaptureTrigger, dropAgentSchema, hasAgentSchema, clearDdlLog } from '../pg/ddl-replication';
import { findPgDump, copySchema, agentObjectIds } from '../pg/schema';
import { PgFailure, publisherFailure } from '../pg/errors';
import { serverMajor } from '../pg/server';
import { sleep } from './parallel';
import { withStandbySnapshots } from './standby-snapshots';

export type SetupOutcome = 'created' | 'adopted';

interface Undo {
  readonly what: string;
  readonly run: () => Promise<unknown>;
}

/** Sets up or adopts forward replication of one database. */
export async function setupForward(plan: Plan, objects: DatabaseObjects, facts: DatabaseFacts | undefined): Promise<SetupOutcome> {
  const db = objects.database;
  const source = await connect(plan.sourcePrimary, db, connectOptions(plan, 60_000));
  let target: pg.Client | undefined;
  try {
    target = await connect(plan.targetPrimary, db, connectOptions(plan, 60_000));
    const targetMajor = await serverMajor(target);
    const existing = await readSubscription(target, objects.forwardSub, targetMajor);
    if (existing) {
      await adopt(plan, objects, source, target, existing, targetMajor);
      return 'adopted';
    }
    await create(plan, objects, source, target, targetMajor, facts);
    return 'created';
  } finally {
    await Promise.all([source.end().catch(() => undefined), target?.end().catch(() => undefined)]);
  }
}

async function adopt(
  plan: Plan,
  objects: DatabaseObjects,
  source: pg.Client,
  target: pg.Client,
  sub: NonNullable<Awaited<ReturnType<typeof readSubscription>>>,
  targetMajor: number,
): Promise<void> {
  const { log, cfg } = plan;
  const db = JSON.stringify(objects.database);
  if (!(await publicationExists(source, objects.forwardPub))) {
    log.warn(`${db}: publication ${objects.forwardPub} was missing on the source; created it again`);
    await createPublication(source, objects.forwardPub);
  }
  await assertOwnPublication(source, objects.forwardPub);
  await publishPartitions(plan, objects, source);
  const slotClient = plan.slotHost === plan.sourcePrimary ? source : await connect(plan.slotHost, objects.database, connectOptions(plan));
  try {
    if (!(await slotExists(slotClient, objects.forwardSlot))) {
      throw new PgFailure(
        'sql',
        `${db}: slot ${objects.forwardSlot} is gone from ${describe(plan.slotHost)}; the subscription cannot resume: run pgtwin-migrate teardown, empty the target tables and start again`,
      );
    }
    const slot = await readSlot(slotClient, objects.forwardSlot, await serverMajor(slotClient));
    if (slot?.invalidated) {
      throw new PgFailure('sql', `${db}: slot ${objects.forwardSlot} was invalidated (${slot.invalidated}); run pgtwin-migrate teardown, empty the target tables and start again`);
    }
  } finally {
    if (slotClient !== source) await slotClient.end().catch(() => undefined);
  }
  const conninfo = replicationConninfo(plan, objects, 'forward', targetMajor);
  if (sub.conninfo !== conninfo) {
    log.info(`${db}: subscription ${objects.forwardSub} connection changed; updating it (replication continues from its slot)`);
    await setSubscriptionConnection(target, objects.forwardSub, conninfo);
  }
  if ((await subscriptionOrigin(target, objects.forwardSub, targetMajor)) === 'none') {
    // Set by versions before this one: rows the source received by its own logical replication were skipped.
    log.warn(
      `${db}: subscription ${objects.forwardSub} had origin = none, which skips rows the source receives by logical replication; now any (rows received that way before now are not on the target: compare those tables)`,
    );
    await setSubscriptionOrigin(target, objects.forwardSub, 'any');
  }
  if (!sub.enabled) {
    log.info(`${db}: subscription ${objects.forwardSub} was disabled; enabling it`);
    await setSubscriptionEnabled(target, objects.forwardSub, true);
  }
  if (cfg.ddl_replication) {
    await installDdlSchema(source, 'source');
    await ensureCaptureTrigger(source, objects.forwardDdlTrigger, true);
    await installDdlSchema(target, 'target');
  } else if (await dropCaptureTrigger(source, objects.forwardDdlTrigger)) {
    log.info(`${db}: ddl_replication=false; removed the DDL capture trigger`);
  }
}

async function create(
  plan: Plan,
  objects: DatabaseObjects,
  source: pg.Client,
  target: pg.Client,
  targetMajor: number,
  facts: DatabaseFacts | undefined,
): Promise<void> {
  const { cfg, log } = plan;
  const db = JSON.stringify(objects.database);
  const undo: Undo[] = [];
  try {
    const targetHadSchema = await hasAgentSchema(target);
    if (cfg.ddl_replication) {
      // The target's log table must exist before the subscription copies the source's.
      await installDdlSchema(target, 'target');
      if (!targetHadSchema) undo.push({ what: 'agent schema on the target', run: () => dropAgentSchema(target) });
    }

    const missing = facts?.missingOnTarget ?? [];
    if (missing.length > 0) {
      const dump = await findPgDump(cfg.target_pg_bindir, plan.deadline.stepMs(5_000));
      if (!dump) throw new PgFailure('sql', `${db}: the target lacks ${missing.length} table(s) and no pg_dump is available; set target_pg_bindir`);
      log.info(`${db}: copying the schema (${missing.length} table(s) missing on the target) with ${dump.path}`);
      const exclude = await agentObjectIds(source);
      await copySchema(dump, plan.sourcePrimary, plan.targetPrimary, objects.database, exclude, plan.deadline.stepMs(300_000));
    }

    if (await createPublication(source, objects.forwardPub)) {
      undo.push({ what: `publication ${objects.forwardPub}`, run: () => dropPublication(source, objects.forwardPub) });
    }
    await publishPartitions(plan, objects, source);

    if (cfg.ddl_replication) {
      const sourceHadSchema = await hasAgentSchema(source);
      await installDdlSchema(source, 'source');
      await clearDdlLog(source);
      if (!sourceHadSchema) undo.push({ what: 'agent schema on the source', run: () => dropAgentSchema(source) });
      await ensureCaptureTrigger(source, objects.forwardDdlTrigger, true);
      undo.push({ what: `event trigger ${objects.forwardDdlTrigger}`, run: () => dropCaptureTrigger(source, objects.forwardDdlTrigger) });
    }

    if (cfg.source_node_role === 'Unpromoted') await waitForStandbyPublication(plan, objects);

    undo.push({
      what: `subscription ${objects.forwardSub} and its slot`,
      run: async () => {
        const r = await dropSubscription(target, objects.forwardSub, describe(plan.targetPrimary, objects.database));
        if (r.remoteSlotLeft) log.warn(`${db}: slot ${r.remoteSlotLeft} is left on the source: ${r.publisherError}`);
      },
    });
    await withStandbySnapshots(plan, objects.database, async () =>
      createSubscription(target, {
        name: objects.forwardSub,
        conninfo: replicationConninfo(plan, objects, 'forward', targetMajor),
        publication: objects.forwardPub,
        slot: objects.forwardSlot,
        enabled: true,
        copyData: true,
        createSlot: true,
        subscriberMajor: targetMajor,
        // Rows that reach the source through its own logical replication belong to it too.
        origin: 'any',
      }).catch((err: unknown) => {
        if (!/publisher|could not connect|connection to server/i.test(String((err as Error)?.message))) throw err;
        const failure = publisherFailure(err, `${db}: the target's server`, `the source at ${cfg.source_replication_vip}:${cfg.sourcePort}`);
        throw new PgFailure(failure.kind, `${failure.message}; check source_replication_vip and the target server's .pgpass`, failure.sqlstate);
      }),
    );
    log.info(`${db}: forward replication created (${objects.forwardPub} → ${objects.forwardSub}, slot ${objects.forwardSlot}); initial copy running`);
  } catch (err) {
    for (const u of undo.reverse()) {
      try {
        await u.run();
        log.info(`${db}: removed ${u.what} after the failure`);
      } catch (undoErr) {
        log.err(`${db}: could not remove ${u.what} after the failure: ${(undoErr as Error).message}`);
      }
    }
    throw err;
  }
}

/** Partitions published as themselves, also by a publication an earlier version made (see publishPartitionsAsThemselves). */
async function publishPartitions(plan: Plan, objects: DatabaseObjects, source: pg.Client): Promise<void> {
  const db = JSON.stringify(objects.database);
  const how = await publishPartitionsAsThemselves(source, objects.forwardPub, await serverMajor(source));
  if (how === 'switched') plan.log.info(`${db}: publication ${objects.forwardPub} now publishes partitions as themselves (it published no partitioned table)`);
  if (how === 'via-root') {
    plan.log.warn(
      `${db}: publication ${objects.forwardPub} publishes partitioned tables through their root (made by an earlier version): a TRUNCATE of one partition is not replicated and a DETACHed partition would be copied again; to change it, run pgtwin-migrate teardown, empty the target tables and start again`,
    );
  }
}

/** On a standby the publication appears once the standby has replayed it. */
async function waitForStandbyPublication(plan: Plan, objects: DatabaseObjects): Promise<void> {
  const c = await connect(plan.slotHost, objects.database, connectOptions(plan));
  try {
    const until = Date.now() + plan.deadline.stepMs(30_000);
    while (!(await publicationExists(c, objects.forwardPub))) {
      if (Date.now() > until) throw new PgFailure('timeout', `${describe(plan.slotHost, objects.database)}: the standby has not replayed publication ${objects.forwardPub}; is it streaming from the primary?`);
      await sleep(100);
    }
  } finally {
    await c.end().catch(() => undefined);
  }
}
