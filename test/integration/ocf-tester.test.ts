/** resource-agents' own conformance test, on the built executable, against the rig. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { AGENT } from '../support/rig';
import { Migration } from '../support/migration';

describe('ocf-tester', () => {
  const m = new Migration({
    instance: 'migration-ocft',
    databases: ['ocft_a', 'ocft_b'],
    schema: 'CREATE TABLE items (id bigint PRIMARY KEY, v text)',
    sourceData: "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g",
  });
  beforeAll(() => m.setUp());
  afterAll(() => m.cleanup());

  it('passes every check: meta-data as nobody, validate-all, probe, start twice, monitor, stop twice', () => {
    const args = ['-n', 'migration-ocft'];
    for (const [k, v] of Object.entries(m.params)) args.push('-o', `${k}=${v}`);
    const r = spawnSync('/usr/sbin/ocf-tester', [...args, AGENT], { encoding: 'utf8', env: { ...process.env, HA_RSCTMP: m.rscTmp }, timeout: 240_000 });
    expect(r.stdout).toMatch(/\/pgtwin-migrate passed all tests/);
    expect(r.status).toBe(0);
  });
});
