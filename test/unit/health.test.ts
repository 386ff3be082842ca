import { describe, expect, it } from 'vitest';
import { assessDatabase, monitorVerdict, summaryLine, copyFraction, type DatabaseHealth } from '../../src/migration/health';
import type { DatabaseView, SourceView, TargetView } from '../../src/migration/observe';
import type { SubscriptionInfo } from '../../src/pg/subscription';
import type { SlotInfo } from '../../src/pg/slots';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';
import { PgFailure } from '../../src/pg/errors';
import { OCF } from '../../src/ocf/exit-codes';

const objects = objectNames('myapp', DEFAULT_PREFIXES);
const slot = (over: Partial<SlotInfo> = {}): SlotInfo => ({
  name: objects.forwardSlot, database: 'myapp', active: true, activePid: 1, confirmedFlushLsn: '0/100', walStatus: 'reserved',
  invalidated: null, walLsn: '0/100', lagBytes: 120, replayLagSeconds: null, ...over,
});
const sub = (over: Partial<SubscriptionInfo> = {}): SubscriptionInfo => ({
  oid: 1, name: objects.forwardSub, enabled: true, slotName: objects.forwardSlot, conninfo: '', publications: [], workerPid: 42,
  lastMsgReceiptTime: null, latestEndTime: null, tablesTotal: 3, tablesReady: 3, copyBytes: 0, applyErrorCount: 0, syncErrorCount: 0,
  unsubscribedTables: 0, ...over,
});
function view(s: Partial<SourceView> | PgFailure = {}, t: Partial<TargetView> | PgFailure = {}, extra: Partial<DatabaseView> = {}): DatabaseView {
  return {
    objects,
    direction: 'forward',
    source: s instanceof PgFailure ? { ok: false, error: s } : { ok: true, value: { publication: true, slot: slot(), publishedCount: 3, publishedBytes: undefined, tableBytes: undefined, ...s } },
    target: t instanceof PgFailure ? { ok: false, error: t } : { ok: true, value: { subscription: sub(), ddl: { notReplayed: 0, latest: undefined }, unsubscribedTables: 0, ...t } },
    drift: undefined,
    sourceDetails: true,
    targetDetails: true,
    observedAt: new Date(),
    ...extra,
  };
}
const opts = { expectEnabled: true, lagThreshold: 1024 };

describe('database health', () => {
  it('is streaming when everything is in place, with publisher-side lag', () => {
    const h = assessDatabase(view(), opts);
    expect(h.state).toBe('streaming');
    expect(h.lagBytes).toBe(120);
    expect(h.lagSeconds).toBe(0);
  });

  it.each([
    ['the subscription is missing', view({}, { subscription: undefined }), /subscription pgtwin_migrate_forward_sub_myapp is missing on the target/],
    ['the publication is missing', view({ publication: false }), /publication pgtwin_migrate_forward_pub_myapp is missing on the source/],
    ['the slot is lost', view({ slot: undefined }), /replication slot pgtwin_migrate_forward_slot_myapp is missing on the source \(slot lost\)/],
    ['the slot is invalidated', view({ slot: slot({ invalidated: 'wal_removed' }) }), /was invalidated \(wal_removed\)/],
    ['the subscription is disabled', view({}, { subscription: sub({ enabled: false }) }), /subscription pgtwin_migrate_forward_sub_myapp is disabled/],
    ['the worker is not running', view({}, { subscription: sub({ workerPid: null, applyErrorCount: 2 }) }), /apply worker of .* is not running \(2 apply\/sync errors/],
    ['the source is unreachable', view(new PgFailure('unreachable', 'source primary a:1 database "myapp": connection refused (ECONNREFUSED)')), /^source primary a:1 database "myapp": connection refused/],
  ])('is broken when %s, naming the database and what was seen', (_what, v, reason) => {
    const h = assessDatabase(v, opts);
    expect(h.state).toBe('broken');
    expect(h.problem).toMatch(reason);
    expect(h.problem).toContain('myapp');
  });

  it('is paused, not broken, when a cutover has disabled the subscription', () => {
    expect(assessDatabase(view({}, { subscription: sub({ enabled: false }) }), { ...opts, expectEnabled: false }).state).toBe('paused');
  });

  it('is copying while tables are not ready, and counts copy failures since the last monitor', () => {
    const v = view({}, { subscription: sub({ tablesReady: 1, syncErrorCount: 5 }) });
    expect(assessDatabase(v, { ...opts, previousErrors: { apply: 0, sync: 3 } })).toMatchObject({ state: 'copying', copyFailures: 2 });
    expect(assessDatabase(v, { ...opts, previousErrors: { apply: 0, sync: 5 } }).copyFailures).toBe(0);
    // Nothing recorded yet: every failure counts.
    expect(assessDatabase(v, opts).copyFailures).toBe(5);
  });

  it('is broken when the apply worker failed since the last monitor, but not for old failures or a statistics reset', () => {
    const v = view({}, { subscription: sub({ applyErrorCount: 4 }) });
    expect(assessDatabase(v, { ...opts, previousErrors: { apply: 3, sync: 0 } }).problem).toMatch(/failed 1 time\(s\) since the last monitor/);
    expect(assessDatabase(v, { ...opts, previousErrors: { apply: 4, sync: 0 } }).state).toBe('streaming');
    expect(assessDatabase(v, { ...opts, previousErrors: { apply: 9, sync: 0 } }).state).toBe('streaming');
    expect(assessDatabase(v, opts).state).toBe('streaming');
  });

  it('remembers what the last look at the source found while it is not read', () => {
    const lean = view({ publication: undefined }, {}, { sourceDetails: false });
    expect(assessDatabase(lean, { ...opts, remembered: { publication: false } }).state).toBe('broken');
    const missing = [{ schema: 'public', table: 'events' }];
    expect(assessDatabase(lean, { ...opts, remembered: { missingOnTarget: missing } }).missingOnTarget).toEqual(missing);
    expect(assessDatabase(view(), { ...opts, remembered: { missingOnTarget: missing } }).missingOnTarget).toEqual([]);
  });

  it('needs a refresh when the publication has tables the subscription lacks and the target has them', () => {
    const drift = { notSubscribed: [{ schema: 'public', table: 'events' }], missingOnTarget: [], noLongerPublished: [] };
    expect(assessDatabase(view({}, {}, { drift }), opts).needsRefresh).toBe(true);
    const blocked = { ...drift, missingOnTarget: drift.notSubscribed };
    expect(assessDatabase(view({}, {}, { drift: blocked }), opts)).toMatchObject({ needsRefresh: false, missingOnTarget: blocked.notSubscribed });
  });

  it('estimates copy progress from the tables done and the bytes in flight', () => {
    const h = { state: 'copying', copyBytes: 25, copyDoneBytes: 50, copyTotalBytes: 100, tablesReady: 1, tablesTotal: 2 } as const;
    expect(copyFraction(h)).toBe(0.75);
    expect(copyFraction({ ...h, copyTotalBytes: null })).toBe(0.5);
    expect(copyFraction({ ...h, state: 'streaming' })).toBe(1);
  });
});

describe('monitor verdict', () => {
  const healthy = assessDatabase(view(), opts);
  const broken = assessDatabase(view({ slot: undefined }), opts);
  it('is 0 when all are healthy, 1 naming the first broken database', () => {
    expect(monitorVerdict([healthy, healthy])).toEqual({ code: OCF.SUCCESS, reason: undefined });
    const v = monitorVerdict([healthy, broken, broken]);
    expect(v.code).toBe(OCF.ERR_GENERIC);
    expect(v.reason).toMatch(/^2 of 3 databases broken; "myapp": replication slot/);
    expect(monitorVerdict([broken]).reason).toMatch(/^"myapp": replication slot/);
  });

  it('is degraded (190) for DDL not replayed, a failing copy, or a table missing on the target', () => {
    const ddl: DatabaseHealth = { ...healthy, ddlNotReplayed: 2, ddlLatest: 'CREATE TABLE: run inside a DO block' };
    expect(monitorVerdict([ddl])).toEqual({ code: OCF.DEGRADED, reason: '"myapp": 2 DDL statement(s) not replayed on the target (latest CREATE TABLE: run inside a DO block)' });
    expect(monitorVerdict([{ ...healthy, copyFailures: 3 }]).reason).toMatch(/initial table copy failing \(3 error\(s\)\)/);
    expect(monitorVerdict([{ ...healthy, missingOnTarget: [{ schema: 'public', table: 't' }] }]).reason).toMatch(/new table\(s\) missing on the target, not replicated: public\.t/);
  });

  it('summarises in one line', () => {
    expect(summaryLine([healthy, broken])).toBe('2 database(s): 1 streaming, 1 broken; worst lag 120 B ("myapp")');
  });
});
