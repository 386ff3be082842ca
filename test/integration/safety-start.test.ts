/**
 * What start must not trust or allow: a monitor's memory of a database
 * that start has just set up again (the monitor right after a successful
 * start reported it broken, and Pacemaker restarted the resource), and a
 * start of a migration whose record says it has ended.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { Migration, waitTablesSynchronised } from '../support/migration';
import { crm, sql } from '../support/rig';
import { leftoversOnBothSides, sweep } from '../support/checks';
import { markerPath } from '../../src/migration/state-files';

const SCHEMA = 'CREATE TABLE orders (id bigserial PRIMARY KEY, note text)';

describe('start after a monitor saw the migration missing', () => {
  const db = 'saf_start_memory';
  const m = new Migration({ instance: 'migration-saf-memory', databases: [db], schema: SCHEMA });
  beforeAll(async () => {
    await m.setUp();
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await m.untilStreaming();
  });
  afterAll(() => m.cleanup());

  it('the first monitor after a start that set the database up again sees it healthy', async () => {
    // The migration removed behind Pacemaker's back: the resource still counts as running here.
    const teardown = await m.cli(['teardown', '--yes']);
    expect(teardown.code, teardown.stderr).toBe(0);
    const seen = await m.run('monitor', {}, { interval: 10_000 });
    expect(seen.code).toBe(1);
    expect(seen.exitReason).toMatch(/is missing/);
    // Pacemaker recovers the resource: stop, then start, which sets everything up again.
    expect((await m.run('stop')).code).toBe(0);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    expect(start.stderr).toMatch(/1 set up now/);
    await waitTablesSynchronised(m.target, db);
    await sql(m.source, db, "INSERT INTO orders (note) VALUES ('after the start')");
    const first = await m.run('monitor', {}, { interval: 10_000 });
    expect(first.exitReason, first.stderr).toBeUndefined();
    expect(first.code).toBe(0);
  });
});

describe('start of a migration that has ended', () => {
  const db = 'saf_start_ended';
  const m = new Migration({ instance: 'migration-saf-ended', databases: [db], schema: SCHEMA });
  const setPhase = (phase: string) =>
    crm(['crm_attribute', '--type', 'crm_config', '--set-name', `pgtwin-migrate-${m.opts.instance}`, '--name', 'phase', '--update', phase]);
  beforeAll(() => m.setUp());
  afterAll(async () => {
    await m.cleanup();
    await sweep(m);
  });

  for (const phase of ['complete', 'finished']) {
    it(`is refused with the way out when the record says ${phase}, and creates nothing`, async () => {
      // The record outlives the primitive: a new primitive of the same id finds it.
      setPhase(phase);
      const r = await m.run('start');
      expect(r.code, r.stderr).toBe(6);
      expect(r.exitReason).toMatch(new RegExp(`^migration migration-saf-ended has ended \\(phase ${phase}\\).*run pgtwin-migrate teardown`));
      expect(r.stderr.split('\n').filter((l) => l.startsWith('ocf-exit-reason:'))).toHaveLength(1);
      expect(existsSync(markerPath(m.rscTmp, m.opts.instance))).toBe(false);
      expect(await leftoversOnBothSides(m)).toEqual([]);
      // And nothing runs here: a probe says so.
      expect((await m.run('monitor', {}, { interval: 0 })).code).toBe(7);
    });
  }
});
