import { describe, expect, it } from 'vitest';
import { recoveryFor, shouldLaunch, shouldReset, STEPS, pastPointOfNoReturn } from '../../src/migration/cutover/steps';
import { decodeLease, encodeLease, expired, holderAlive, LEASE_TTL_MS } from '../../src/migration/cutover/lease';
import { bytesBehind, lsnToBigInt } from '../../src/pg/lsn';
import { diffBaseline, parseBaseline } from '../../src/migration/cib-state';
import { formatState, parseState } from '../../src/migration/state-files';
import { labelValue, lagText, renderMetrics } from '../../src/migration/publish';

describe('the rule for an interrupted cutover', () => {
  it('rolls back before the VIP swap and forward from it', () => {
    const decisions = STEPS.map((s) => [s, recoveryFor(s)]);
    expect(decisions).toEqual([
      ['recheck', 'rollback'], ['prepare-reverse', 'rollback'], ['fence', 'rollback'], ['sync', 'rollback'],
      ['disable-forward', 'rollback'], ['sequences', 'rollback'], ['swap-vip', 'rollback'],
      ['swapped', 'roll-forward'], ['source-read-write', 'roll-forward'], ['enable-reverse', 'roll-forward'],
      ['drop-forward', 'roll-forward'], ['complete', 'nothing'],
    ]);
    expect(recoveryFor(undefined)).toBe('rollback');
    expect(recoveryFor('rolled-back-at-sync')).toBe('rollback');
    expect(pastPointOfNoReturn('swap-vip')).toBe(false);
    expect(pastPointOfNoReturn('swapped')).toBe(true);
  });

  it('launches only when asked, during forward replication, and not again after a failure until acknowledged', () => {
    expect(shouldLaunch(true, 'forward', undefined)).toBe(true);
    expect(shouldLaunch(true, 'forward', 'reset')).toBe(true);
    expect(shouldLaunch(false, 'forward', undefined)).toBe(false);
    expect(shouldLaunch(true, 'forward', 'failed')).toBe(false);
    expect(shouldLaunch(true, 'forward', 'running')).toBe(false);
    expect(shouldLaunch(true, 'complete', 'complete')).toBe(false);
    expect(shouldLaunch(true, 'cutover', undefined)).toBe(false);
    expect(shouldReset(false, 'failed')).toBe(true);
    expect(shouldReset(true, 'failed')).toBe(false);
    expect(shouldReset(false, 'complete')).toBe(false);
  });
});

describe('the worker lease', () => {
  it('encodes node, pid and heartbeat and expires after the TTL', () => {
    const l = { node: 'pg-node.example', pid: 4242, at: 1_000_000 };
    expect(decodeLease(encodeLease(l))).toEqual(l);
    expect(decodeLease('garbage')).toBeUndefined();
    expect(expired(l, l.at + LEASE_TTL_MS)).toBe(false);
    expect(expired(l, l.at + LEASE_TTL_MS + 1)).toBe(true);
  });

  it('trusts the heartbeat of another node, and the process table of this one', () => {
    const remote = { node: 'other', pid: 1, at: 1_000 };
    expect(holderAlive(remote, 'me', 1_000 + LEASE_TTL_MS - 1)).toBe(true);
    expect(holderAlive(remote, 'me', 1_000 + LEASE_TTL_MS + 1)).toBe(false);
    expect(holderAlive({ node: 'me', pid: 2 ** 30, at: Date.now() }, 'me')).toBe(false);
    expect(holderAlive({ node: 'me', pid: 0, at: Date.now() }, 'me')).toBe(true);
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
    expect(text).toContain('pgtwin_migrate_phase{resource="mig",phase="complete"} 0');
  });
});
