import { describe, expect, it } from 'vitest';
import { recoveryFor, shouldLaunch, shouldArm, CUTOVER_STEPS, FAILBACK_STEPS, pastPointOfNoReturn, pastBlockedStep } from '../../src/migration/cutover/steps';
import { decodeLease, encodeLease, judgeLease, processStart, LEASE_TTL_MS } from '../../src/migration/cutover/lease';
import { bytesBehind, lsnToBigInt } from '../../src/pg/lsn';
import { diffBaseline, parseBaseline } from '../../src/migration/cib-state';
import { formatState, parseState } from '../../src/migration/state-files';
import { labelValue, lagText, renderMetrics } from '../../src/migration/publish';

describe('the rule for an interrupted switch', () => {
  it('rolls a cutover back before the VIP swap and forward from it', () => {
    const decisions = CUTOVER_STEPS.map((s) => [s, recoveryFor(s, 'cutover')]);
    expect(decisions).toEqual([
      ['recheck', 'rollback'], ['prepare-reverse', 'rollback'], ['fence', 'rollback'], ['sync', 'rollback'],
      ['disable-forward', 'rollback'], ['sequences', 'rollback'], ['reverse-tables', 'rollback'], ['swap-vip', 'rollback'],
      ['swapped', 'roll-forward'], ['address', 'roll-forward'], ['final-proof', 'roll-forward'], ['lift', 'roll-forward'],
      ['enable-reverse', 'roll-forward'], ['drop-forward', 'roll-forward'], ['complete', 'nothing'],
    ]);
    expect(recoveryFor(undefined)).toBe('rollback');
    expect(recoveryFor('rolled-back-at-sync')).toBe('rollback');
    expect(pastPointOfNoReturn('swap-vip')).toBe(false);
    expect(pastPointOfNoReturn('swapped')).toBe(true);
  });

  it('applies the same rule to a failback, whose way back is prepared after the drain', () => {
    expect(FAILBACK_STEPS.map((s) => recoveryFor(s, 'failback'))).toEqual([
      ...Array(FAILBACK_STEPS.indexOf('swapped')).fill('rollback'),
      ...Array(FAILBACK_STEPS.length - FAILBACK_STEPS.indexOf('swapped') - 1).fill('roll-forward'),
      'nothing',
    ]);
    expect(FAILBACK_STEPS.indexOf('prepare-forward')).toBeLessThan(FAILBACK_STEPS.indexOf('swap-vip'));
    expect(FAILBACK_STEPS.indexOf('prepare-forward')).toBeGreaterThan(FAILBACK_STEPS.indexOf('disable-reverse'));
    // A step of the other kind is not a step of this one: roll back.
    expect(recoveryFor('enable-reverse', 'failback')).toBe('rollback');
  });

  it('launches only when asked, in a steady phase, once armed, and not while one runs or failed unacknowledged', () => {
    expect(shouldLaunch(true, 'forward', undefined, undefined)).toBe(true);
    expect(shouldLaunch(true, undefined, undefined, undefined)).toBe(true);
    expect(shouldLaunch(true, 'forward', 'reset', 'yes')).toBe(true);
    expect(shouldLaunch(true, 'reverse', 'complete', 'yes')).toBe(true);
    expect(shouldLaunch(false, 'forward', undefined, undefined)).toBe(false);
    expect(shouldLaunch(true, 'forward', 'failed', 'yes')).toBe(false);
    expect(shouldLaunch(true, 'forward', 'running', 'yes')).toBe(false);
    expect(shouldLaunch(true, 'reverse', 'blocked', 'yes')).toBe(false);
    // cutover_ready still true after a completed cutover does not fail back by itself.
    expect(shouldLaunch(true, 'reverse', 'complete', 'no')).toBe(false);
    expect(shouldLaunch(true, 'finished', 'complete', 'yes')).toBe(false);
    expect(shouldLaunch(true, 'cutover', undefined, undefined)).toBe(false);
  });

  it('arms the next switch when cutover_ready is seen false after one ended or failed', () => {
    expect(shouldArm(false, 'complete', 'no')).toBe(true);
    expect(shouldArm(false, 'failed', 'no')).toBe(true);
    expect(shouldArm(false, 'failed', undefined)).toBe(true);
    expect(shouldArm(true, 'failed', 'no')).toBe(false);
    expect(shouldArm(false, 'running', 'no')).toBe(false);
    expect(shouldArm(false, 'complete', 'yes')).toBe(false);
  });
});

describe('a retried blocked switch', () => {
  it('is running again only once it begins a step past the one it was blocked at', () => {
    // Blocked at the address: the address is still the blockage; the final proof is past it.
    expect(pastBlockedStep('cutover', 'address', 'address')).toBe(false);
    expect(pastBlockedStep('cutover', 'address', 'final-proof')).toBe(true);
    // Blocked at the lift (inside the window): beginning the lift again is not past it (no flapping to running).
    expect(pastBlockedStep('cutover', 'lift', 'lift')).toBe(false);
    expect(pastBlockedStep('cutover', 'lift', 'enable-reverse')).toBe(true);
    // Blocked at a step after the window: past it at the next one.
    expect(pastBlockedStep('cutover', 'enable-reverse', 'enable-reverse')).toBe(false);
    expect(pastBlockedStep('cutover', 'enable-reverse', 'drop-forward')).toBe(true);
    expect(pastBlockedStep('failback', 'lift', 'lift')).toBe(false);
    expect(pastBlockedStep('failback', 'lift', 'enable-forward')).toBe(true);
  });

  it('falls back, for a record without the blocked step, to the recorded one (swapped: past once it lifts)', () => {
    expect(pastBlockedStep('cutover', 'swapped', 'address')).toBe(false);
    expect(pastBlockedStep('cutover', 'swapped', 'final-proof')).toBe(false);
    expect(pastBlockedStep('cutover', 'swapped', 'lift')).toBe(true);
    expect(pastBlockedStep('failback', 'swapped', 'lift')).toBe(true);
  });
});

describe('the worker lease', () => {
  const lease = { node: 'pg-node.example', pid: 4242, start: '123456', nonce: 'n-1', seq: 7 };

  it('encodes node, pid, start time, nonce and sequence', () => {
    expect(decodeLease(encodeLease(lease))).toEqual(lease);
    expect(decodeLease('garbage')).toBeUndefined();
    expect(decodeLease('node1:123:1700000000000')).toBeUndefined();
  });

  it('expires on another node only after this node saw the same value for the TTL, by its own clock', () => {
    const value = encodeLease({ ...lease, node: 'other' });
    const first = judgeLease({ value, localNode: 'me', deadNodes: new Set(), seen: undefined, now: 1_000 });
    expect(first.verdict).toBe('held');
    const later = judgeLease({ value, localNode: 'me', deadNodes: new Set(), seen: first.sighting, now: 1_000 + LEASE_TTL_MS - 1 });
    expect(later.verdict).toBe('held');
    expect(judgeLease({ value, localNode: 'me', deadNodes: new Set(), seen: first.sighting, now: 1_000 + LEASE_TTL_MS }).verdict).toBe('expired');
    // A renewed lease (new sequence) starts the clock again, whatever the holder's clock says.
    const renewed = encodeLease({ ...lease, node: 'other', seq: 8 });
    expect(judgeLease({ value: renewed, localNode: 'me', deadNodes: new Set(), seen: first.sighting, now: 1_000 + 10 * LEASE_TTL_MS }).verdict).toBe('held');
  });

  it('expires at once when Pacemaker reports the holder node cleanly offline', () => {
    const value = encodeLease({ ...lease, node: 'other' });
    expect(judgeLease({ value, localNode: 'me', deadNodes: new Set(['other']), seen: undefined, now: 0 }).verdict).toBe('expired');
  });

  it('asks the process table on this node: PID and start time, so a reused PID is not the holder', () => {
    const me = { node: 'me', pid: process.pid, start: processStart(process.pid)!, nonce: 'x', seq: 0 };
    expect(judgeLease({ value: encodeLease(me), localNode: 'me', deadNodes: new Set(), seen: undefined, now: 0 }).verdict).toBe('held');
    expect(judgeLease({ value: encodeLease({ ...me, start: '1' }), localNode: 'me', deadNodes: new Set(), seen: undefined, now: 0 }).verdict).toBe('expired');
    expect(judgeLease({ value: encodeLease({ ...me, pid: 2 ** 30 }), localNode: 'me', deadNodes: new Set(), seen: undefined, now: 0 }).verdict).toBe('expired');
    expect(judgeLease({ value: '', localNode: 'me', deadNodes: new Set(), seen: undefined, now: 0 }).verdict).toBe('free');
  });
});

describe('WAL positions', () => {
  it('compares LSNs as numbers and measures bytes behind', () => {
    expect(lsnToBigInt('1/0') - lsnToBigInt('0/FFFFFFFF')).toBe(1n);
    expect(bytesBehind('0/100', '0/180')).toBe(128);
    expect(bytesBehind('0/200', '0/180')).toBe(0);
    expect(bytesBehind(null, '0/180')).toBeNull();
    expect(() => lsnToBigInt('nonsense')).toThrow();
  });
});

describe('the database list recorded at the first start', () => {
  it('names added and removed databases', () => {
    expect(diffBaseline(['postgres', 'myapp'], ['postgres', 'myapp', 'newdb'])).toEqual({ added: ['newdb'], removed: [] });
    expect(diffBaseline(['a', 'b'], ['b', 'a'])).toEqual({ added: [], removed: [] });
    expect(parseBaseline('["it\'s","x"]')).toEqual(["it's", 'x']);
    expect(parseBaseline('not json')).toBeUndefined();
  });
});

describe('state files and metrics text', () => {
  it('round-trips hostile values and writes unknown for null', () => {
    const text = formatState({ database: "it's a \"db\"\nwith=signs", lag: null, quiesced: false, tables: 3 });
    expect(text).toContain('lag=unknown\nquiesced=false\ntables=3\n');
    expect(parseState(text)).toEqual({ database: "it's a \"db\"\nwith=signs", lag: 'unknown', quiesced: 'false', tables: '3' });
  });

  it('shows the worst lag for people, coarsely enough not to change at every look', () => {
    expect([null, 0, 312, 1023, 16384, 16500, 5_300_000].map(lagText)).toEqual(['unknown', '0 B', '<1 KiB', '<1 KiB', '16 KiB', '16 KiB', '5.1 MiB']);
  });

  it('escapes label values as the exposition format wants', () => {
    expect(labelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const text = renderMetrics('mig', 'forward', new Map(), []);
    expect(text).toMatch(/^# HELP pgtwin_migrate_lag_bytes /m);
    expect(text).toContain('pgtwin_migrate_phase{resource="mig",phase="forward"} 1');
    expect(text).toContain('pgtwin_migrate_phase{resource="mig",phase="reverse"} 0');
  });
});
