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
import { dueForLook, recordLooks, fencesDue, fenceQuota, lookQuota, recordTargetLook, previousErrors, LOOKS_PER_MONITOR, FENCE_OVERDUE_MS } from '../../src/migration/report';
import { updateStateFile } from '../../src/migration/state-files';
import type { SubscriptionInfo } from '../../src/pg/subscription';
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

describe('the fences’ turn', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.useRealTimers();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Monitors every `intervalMs` for `minutes` after the phase began: the oldest any fence got, and the most checked at once. */
  function simulateFences(plan: Plan, intervalMs: number, minutes: number): { worstAgeMs: number; worstBothMs: number; mostAtOnce: number } {
    const checked = new Map<string, number>();
    const both = new Map<string, number>();
    let worstAgeMs = 0;
    let worstBothMs = 0;
    let mostAtOnce = 0;
    const start = Date.now();
    for (let t = 0; t <= minutes * 60_000; t += intervalMs) {
      vi.setSystemTime(start + t);
      const look = dueForLook(plan, 'forward');
      recordLooks(plan, look, 'forward');
      const fences = fencesDue(plan, 'forward', false, look, intervalMs);
      if (t > 0) mostAtOnce = Math.max(mostAtOnce, fences.length);
      for (const { o, onlyFenced } of fences) {
        checked.set(o.token, start + t);
        if (!onlyFenced) both.set(o.token, start + t);
        // Only the full looks check both clusters (beside the first monitor of a phase).
        if (t > 0) expect(onlyFenced).toBe(!look.has(o.token));
      }
      for (const o of plan.cfg.objects) {
        worstAgeMs = Math.max(worstAgeMs, start + t - (checked.get(o.token) ?? start));
        worstBothMs = Math.max(worstBothMs, start + t - (both.get(o.token) ?? start));
      }
    }
    return { worstAgeMs, worstBothMs, mostAtOnce };
  }

  it.each([
    [6, 10_000],
    [24, 10_000],
    [100, 10_000],
    [6, 30_000],
    [24, 30_000],
    [100, 30_000],
    [300, 10_000],
  ])('keeps every fence of %i databases checked within 90 s and one interval (%i ms), no more at once than that needs beside the looks', (n, intervalMs) => {
    vi.useFakeTimers();
    const plan = planOf(n);
    dirs.push(plan.stateDir);
    const { worstAgeMs, worstBothMs, mostAtOnce } = simulateFences(plan, intervalMs, 15);
    expect(worstAgeMs).toBeLessThanOrEqual(FENCE_OVERDUE_MS + intervalMs);
    // The side that takes writes: at each full look.
    expect(worstBothMs).toBeLessThanOrEqual(Math.max(60_000, Math.ceil(n / lookQuota(n)) * intervalMs) + intervalMs);
    expect(mostAtOnce).toBeLessThanOrEqual(LOOKS_PER_MONITOR + fenceQuota(n, intervalMs));
  }, 60_000);

  it('checks every fence on both clusters at the first monitor of a phase', () => {
    const plan = planOf(30);
    dirs.push(plan.stateDir);
    const fences = fencesDue(plan, 'reverse', false, new Set(), 10_000);
    expect(fences.length).toBe(30);
    expect(fences.every((f) => !f.onlyFenced)).toBe(true);
  });

  it('start’s look at a database forgets the counters of a file last written for the way back', () => {
    const plan = planOf(1);
    dirs.push(plan.stateDir);
    const token = plan.cfg.objects[0]!.token;
    updateStateFile(plan.stateDir, token, { direction: 'reverse', apply_errors: 0, sync_errors: 0 });
    const sub = { tablesReady: 1, tablesTotal: 1, unsubscribedTables: 0, applyErrorCount: 5, syncErrorCount: 1 } as SubscriptionInfo;
    recordTargetLook(plan, token, sub, { notReplayed: 0, latest: undefined });
    expect(previousErrors(plan, token, 'forward')).toBeUndefined();
    // A file of the same direction keeps the last monitor's counters (a restart compares with them).
    updateStateFile(plan.stateDir, token, { apply_errors: 2, sync_errors: 0 });
    recordTargetLook(plan, token, sub, { notReplayed: 0, latest: undefined });
    expect(previousErrors(plan, token, 'forward')).toEqual({ apply: 2, sync: 0 });
  });
});
