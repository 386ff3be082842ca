/** Pure parts of issue 9 item 6: one-line output, shell words, numbers of seconds, state text, parameters. */
import { describe, expect, it } from 'vitest';
import { escapeControls, shellWord } from '../../src/ocf/text';
import { formatExitReason } from '../../src/ocf/exit-reason';
import { parseState, formatState, MalformedState } from '../../src/migration/state-files';
import { readParams } from '../../src/ocf/config';
import { readOcfEnv, MAX_TIMER_MS } from '../../src/ocf/env';
import { seconds } from '../../src/cli/main';

describe('text that leaves the process', () => {
  it('makes control characters visible, so no value starts a new line or sends a terminal escape', () => {
    expect(escapeControls('a\nERROR: b\r\tc\u001b[2J\u007f\u2028')).toBe('a\\nERROR: b\\r\\tc\\x1b[2J\\x7f\\u2028');
    expect(escapeControls('é ü 日本')).toBe('é ü 日本');
  });

  it('keeps an exit reason on one line with its control characters visible', () => {
    expect(formatExitReason('x\n  y\u001b[31m')).toBe('x y\\x1b[31m');
  });

  it('quotes a shell word only when it needs it, and then safely', () => {
    expect(shellWord('myapp')).toBe('myapp');
    expect(shellWord('/var/lib/pgsql/.pgpass')).toBe('/var/lib/pgsql/.pgpass');
    expect(shellWord("a $(rm -rf /) 'b")).toBe(`'a $(rm -rf /) '\\''b'`);
    expect(shellWord('')).toBe("''");
  });
});

describe('numbers and settings from people and Pacemaker', () => {
  it('accepts seconds in range and says what to give otherwise', () => {
    expect(seconds('timeout', 1)('30')).toBe(30);
    expect(seconds('interval', 0.5)(2)).toBe(2);
    for (const bad of ['abc', '', '-5', '0', 'Infinity', '1e12']) {
      expect(() => seconds('timeout', 1)(bad)).toThrow(/^--timeout ".*" is not a number of seconds from 1 to 2147483; e\.g\. --timeout 2$/);
    }
  });

  it('caps an operation timeout at what a timer can hold', () => {
    expect(readOcfEnv({ OCF_RESKEY_CRM_meta_timeout: '99999999999999' }).timeoutMs).toBe(MAX_TIMER_MS);
    expect(readOcfEnv({ OCF_RESKEY_CRM_meta_timeout: '20000' }).timeoutMs).toBe(20000);
  });

  it('refuses text and path parameters holding a line break or another control character', () => {
    const base = { OCF_RESKEY_source_replication_vip: 'a', OCF_RESKEY_target_replication_vip: 'b' };
    expect(() => readParams({ ...base, OCF_RESKEY_source_host: 'db1\nx' })).toThrow('source_host contains a line break at position 4; remove it');
    expect(() => readParams({ ...base, OCF_RESKEY_metrics_file: '/var/x\u0007' })).toThrow('metrics_file contains the control character U+0007 at position 7; remove it');
  });

  it('names the line of a state file that is not what the agent writes', () => {
    expect(parseState(formatState({ a: 'x\ny', b: 1 }))).toEqual({ a: 'x\ny', b: '1' });
    expect(() => parseState('a=1\n"broken\n')).toThrow(MalformedState);
    expect(() => parseState('a=1\nb="unterminated\n')).toThrow('line 2: b holds a broken quoted value');
  });
});
