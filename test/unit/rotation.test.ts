/**
 * The monitor's rotation (dueForLook, recordLooks): every database gets its
 * full look (details and write fences) about once a minute, at most a sixth
 * of them per monitor and never more than four (past 24 databases the cycle
 * grows: every ceil(n/4) monitors), whatever the looks find. A look that keeps failing must
 * not hold up the others' turns (the rotation turns on when a database was
 * picked, not on when a look succeeded).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dueForLook, recordLooks, LOOKS_PER_MONITOR } from '../../src/migration/report';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';
import type { Plan } from '../../src/migration/plan';

function planOf(n: number): Plan {
  const objects = Array.from({ length: n }, (_, i) => objectNames(`db${i}`, DEFAULT_PREFIXES));
  const log = { warn: () => undefined, info: () => undefined, debug: () => undefined, err: () => undefined };
  return { cfg: { objects }, stateDir: mkdtempSync(join(tmpdir(), 'pgtwin-rotation-')), log } as unknown as Plan;
}

/** Monitors every 10 s for `minutes`: the longest time each database waited for its turn, and the most picked at once. */
function simulate(plan: Plan, minutes: number): { longestGapMs: number; mostAtOnce: number } {
  const last = new Map<string, number>();
  let longestGapMs = 0;
  let mostAtOnce = 0;
  const start = Date.now();
  for (let t = 0; t <= minutes * 60_000; t += 10_000) {
    vi.setSystemTime(start + t);
    const due = dueForLook(plan, 'forward');
    recordLooks(plan, due, 'forward');
    mostAtOnce = Math.max(mostAtOnce, due.size);
    for (const token of due) {
      if (last.has(token)) longestGapMs = Math.max(longestGapMs, start + t - last.get(token)!);
      last.set(token, start + t);
    }
  }
  expect(last.size, 'every database was looked at').toBe(plan.cfg.objects.length);
  return { longestGapMs, mostAtOnce };
}

describe('the monitor rotation', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.useRealTimers();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it.each([1, 3, 6, 7, 12, 24])('gives each of %i databases its turn about once a minute, a sixth at a time', (n) => {
    vi.useFakeTimers();
    const plan = planOf(n);
    dirs.push(plan.stateDir);
    const { longestGapMs, mostAtOnce } = simulate(plan, n > 10 ? 5 : 20);
    expect(mostAtOnce).toBeLessThanOrEqual(Math.ceil(n / 6));
    expect(longestGapMs).toBeLessThanOrEqual(70_000);
  }, 60_000);

  it.each([25, 100, 250])('never looks at more than four of %i databases per monitor, and gives each its turn every ceil(n/4) monitors', (n) => {
    vi.useFakeTimers();
    const plan = planOf(n);
    dirs.push(plan.stateDir);
    const cycle = Math.ceil(n / LOOKS_PER_MONITOR);
    const { longestGapMs, mostAtOnce } = simulate(plan, Math.ceil((3 * cycle * 10) / 60));
    expect(mostAtOnce).toBe(LOOKS_PER_MONITOR);
    expect(longestGapMs).toBeLessThanOrEqual(cycle * 10_000);
  }, 60_000);

  it('starts over after a switch: the other direction has not been looked at yet', () => {
    vi.useFakeTimers();
    const plan = planOf(6);
    dirs.push(plan.stateDir);
    simulate(plan, 2);
    expect(dueForLook(plan, 'reverse').size).toBe(1);
    expect([...dueForLook(plan, 'forward')].length).toBeLessThanOrEqual(1);
  });
});
