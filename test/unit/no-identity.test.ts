import { describe, expect, it } from 'vitest';
import { assessDatabase, monitorVerdict } from '../../src/migration/health';
import type { DatabaseView } from '../../src/migration/observe';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';
import { OCF } from '../../src/ocf/exit-codes';
import type { TableName } from '../../src/pg/publication';

const objects = objectNames('shop', DEFAULT_PREFIXES);
const audit = { schema: 'public', table: 'audit_log' };

function view(noIdentity: readonly TableName[] | undefined, sourceDetails = true): DatabaseView {
  return {
    objects,
    direction: 'forward',
    source: {
      ok: true,
      value: {
        publication: sourceDetails ? true : undefined,
        slot: { name: objects.forwardSlot, database: 'shop', active: true, activePid: 1, confirmedFlushLsn: '0/1', walStatus: 'reserved', invalidated: null, walLsn: '0/1', lagBytes: 0, replayLagSeconds: null },
        publishedCount: sourceDetails ? 2 : undefined,
        publishedBytes: undefined,
        tableBytes: undefined,
        noIdentity,
      },
    },
    target: {
      ok: true,
      value: {
        subscription: {
          oid: 1, name: objects.forwardSub, enabled: true, slotName: null, conninfo: '', publications: [], workerPid: 7, lastMsgReceiptTime: null,
          latestEndTime: null, tablesTotal: 2, tablesReady: 2, copyBytes: 0, applyErrorCount: 0, syncErrorCount: 0, unsubscribedTables: 0,
        },
        ddl: { notReplayed: 1, latest: { id: '1', command: 'CREATE TABLE x()', reason: 'in a DO block' } },
        unsubscribedTables: 0,
      },
    },
    drift: undefined,
    sourceDetails,
    targetDetails: true,
    observedAt: new Date(),
  };
}
const opts = { expectEnabled: true, lagThreshold: 1024 };

describe('a published table without primary key or replica identity', () => {
  it('makes the monitor degraded, naming the database and the table, before a DDL statement not replayed', () => {
    const h = assessDatabase(view([audit]), opts);
    expect(h.state).toBe('streaming');
    expect(h.noIdentity).toEqual([audit]);
    const v = monitorVerdict([h]);
    expect(v.code).toBe(OCF.DEGRADED);
    expect(v.reason).toBe('"shop": UPDATE/DELETE fail on the source for public.audit_log (no primary key or replica identity); add a primary key or REPLICA IDENTITY FULL');
  });

  it('is remembered from the last look while the source details are not read', () => {
    const h = assessDatabase(view(undefined, false), { ...opts, remembered: { noIdentity: [audit] } });
    expect(h.noIdentity).toEqual([audit]);
    expect(monitorVerdict([h]).code).toBe(OCF.DEGRADED);
  });

  it('is forgotten once a look finds none, and a broken database still comes first', () => {
    const fixed = assessDatabase(view([], true), { ...opts, remembered: { noIdentity: [audit] } });
    expect(fixed.noIdentity).toEqual([]);
    const broken = assessDatabase({ ...view([audit]), target: { ok: true, value: { subscription: undefined, ddl: undefined, unsubscribedTables: 0 } } }, opts);
    expect(monitorVerdict([broken]).code).toBe(OCF.ERR_GENERIC);
  });

  it('names at most three tables and counts the rest', () => {
    const many = ['a', 'b', 'c', 'd', 'e'].map((t) => ({ schema: 's', table: t }));
    expect(monitorVerdict([assessDatabase(view(many), opts)]).reason).toMatch(/for s\.a, s\.b, s\.c \(\+2 more\) \(no primary key/);
  });
});
