/**
 * Pre-flight findings that protect the cutover and the way back: a
 * replication VIP that the VIP swap would move to the other cluster, and
 * unbounded WAL retention on the target, which publishes the way back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { leftoversOnBothSides } from '../support/checks';

const DB = 'saf_preflight';

describe('pre-flight before a cutover can break', () => {
  const m = new Migration({
    instance: 'migration-saf-preflight',
    databases: [DB],
    schema: 'CREATE TABLE orders (id bigserial PRIMARY KEY, note text)',
    params: { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18' },
  });
  beforeAll(() => m.setUp());
  afterAll(() => m.cleanup());

  it('a replication VIP equal to a VIP resource\'s address is refused at pre-flight, naming both', async () => {
    const vips = vipAddresses(await cibQuery());
    const cases: Array<{ extra: Record<string, string>; line: string }> = [
      { extra: { source_replication_vip: vips.production! }, line: `source_replication_vip ${vips.production}: is the address (ip) of VIP resource postgres-vip, which the cutover moves to the other cluster; set source_replication_vip to an address that always leads to the source cluster` },
      { extra: { target_replication_vip: vips.target! }, line: `target_replication_vip ${vips.target}: is the address (ip) of VIP resource postgres-vip-18, which the cutover moves to the other cluster; set target_replication_vip to an address that always leads to the target cluster` },
      { extra: { source_replication_vip: vips.target! }, line: `source_replication_vip ${vips.target}: is the address (ip) of VIP resource postgres-vip-18` },
    ];
    for (const c of cases) {
      const pf = await m.cli(['preflight'], c.extra);
      expect(pf.code, pf.stdout + pf.stderr).toBe(1);
      expect(pf.stdout).toContain(`ERROR   ${c.line}`);
      const start = await m.run('start', c.extra);
      expect(start.code, start.stderr).toBe(6);
      expect(start.stderr).toContain(c.line);
    }
    // Refused before anything was created.
    expect(await leftoversOnBothSides(m)).toEqual([]);
    // The rig's own replication address passes.
    const ok = await m.cli(['preflight']);
    expect(ok.stdout).not.toMatch(/replication_vip/);
  });

  it('unbounded WAL retention on the target, which publishes the way back after the cutover, is warned about like the source\'s', async () => {
    const pf = await m.cli(['preflight']);
    expect(pf.stdout).toMatch(/^WARNING source primary [^ ]+: max_slot_wal_keep_size is unlimited/m);
    expect(pf.stdout).toMatch(
      /^WARNING target primary [^ ]+: max_slot_wal_keep_size is unlimited: after the cutover the target publishes the way back, and a stalled reverse subscription retains WAL until the disk is full; set max_slot_wal_keep_size \(e\.g\. 50GB\) on the target to bound it$/m,
    );
  });
});
