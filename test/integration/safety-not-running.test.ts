/**
 * Pacemaker asks "is it running here?" (a probe) and stops resources that
 * are not running, with whatever parameters the configuration holds now. A
 * wrong answer there is worse than the wrong parameter: a probe that fails
 * blocks the resource everywhere, a stop that fails gets the node fenced.
 * So: stop of a stopped resource is 0, a probe of it 7, whatever the
 * parameters; only actions that would act check them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgent } from '../support/agent';

// Every kind of wrong value: an empty database item, a port that is no number, a
// boolean that is none, an unknown choice, a threshold with a unit.
const GARBAGE = {
  databases: 'app,,billing',
  pgport: 'five',
  cutover_ready: 'perhaps',
  source_node_role: 'Leader',
  lag_threshold: '10MB',
  sslmode: 'sometimes',
};

describe('a resource that is not running, with garbage parameters', () => {
  const rscTmp = mkdtempSync(join(tmpdir(), 'pgtwin-saf-notrunning-'));
  const run = (action: string, interval = 0) =>
    runAgent(action, GARBAGE, { instance: 'migration-saf-garbage', interval, env: { HA_RSCTMP: rscTmp } });
  afterAll(() => rmSync(rscTmp, { recursive: true, force: true }));

  it('the parameters are garbage: start and validate-all refuse them (6)', async () => {
    for (const action of ['start', 'validate-all']) {
      const r = await run(action);
      expect(r.code, `${action}: ${r.stderr}`).toBe(6);
      expect(r.exitReason).toMatch(/databases: item 2 of "app,,billing" is empty/);
    }
  });

  it('stop of a stopped resource succeeds (0) whatever its parameters, so the node is never fenced for it', async () => {
    const r = await run('stop');
    expect(r.code, r.stderr).toBe(0);
    expect(r.exitReason).toBeUndefined();
    expect(r.stderr).toMatch(/not running here/);
  });

  it('a probe of a stopped resource answers "not running" (7) whatever its parameters', async () => {
    const probe = await run('monitor', 0);
    expect(probe.code, probe.stderr).toBe(7);
    expect(probe.exitReason).toBeUndefined();
    const recurring = await run('monitor', 10_000);
    expect(recurring.code, recurring.stderr).toBe(7);
  });

  it('reload-agent of a resource that is not running changes nothing and succeeds (0)', async () => {
    const r = await run('reload-agent');
    expect(r.code, r.stderr).toBe(0);
    expect(r.exitReason).toBeUndefined();
  });
});
