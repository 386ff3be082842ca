import { describe, expect, it } from 'vitest';
import { parseSequenceRow, sequenceMismatches, type SequenceValue } from '../../src/pg/sequences';

const seq = (name: string, lastValue: string, isCalled: boolean): SequenceValue => ({ schema: 'public', name, lastValue, isCalled });

describe('sequence state', () => {
  it('reads the value and is_called from the row query_to_xml gives', () => {
    const xml = '<row xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n  <last_value>5000</last_value>\n  <is_called>false</is_called>\n</row>\n\n';
    expect(parseSequenceRow(xml, 'public.s')).toEqual({ lastValue: '5000', isCalled: false });
    expect(parseSequenceRow('<row><last_value>-9223372036854775808</last_value><is_called>true</is_called></row>', 'x')).toEqual({
      lastValue: '-9223372036854775808',
      isCalled: true,
    });
  });

  it('refuses a row it cannot read rather than guessing', () => {
    expect(() => parseSequenceRow('<row><last_value>12</last_value></row>', 'public.s')).toThrow(/cannot read the state of sequence public.s/);
  });

  it('a sequence set back with setval(…, false) differs from the same value handed out', () => {
    expect(sequenceMismatches([seq('a', '5000', false)], [seq('a', '5000', true)])).toEqual(['public.a']);
    expect(sequenceMismatches([seq('a', '5000', false)], [seq('a', '1', false)])).toEqual(['public.a']);
    expect(sequenceMismatches([seq('a', '5000', false), seq('b', '7', true)], [seq('b', '7', true), seq('a', '5000', false)])).toEqual([]);
  });

  it('a sequence missing on the target is a mismatch', () => {
    expect(sequenceMismatches([seq('a', '1', false)], [])).toEqual(['public.a']);
  });
});
