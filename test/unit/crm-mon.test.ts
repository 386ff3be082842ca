import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { cloneNodes, clusterSummary, normaliseRole } from '../../src/cluster/crm-mon';
import { parseXml } from '../../src/cluster/xml';

const fixture = (name: string) => parseXml(readFileSync(new URL(`../fixtures/crm_mon/${name}`, import.meta.url), 'utf8'));

describe('crm_mon status', () => {
  it('finds the Promoted and Unpromoted nodes in the current --output-as=xml document', () => {
    const status = fixture('rig-2.1.5-output-as.xml');
    const source = cloneNodes(status, 'postgres-clone')!;
    expect(source.promoted).toHaveLength(1);
    expect(source.unpromoted).toEqual(source.promoted);
    expect(cloneNodes(status, 'postgres-clone-18')).toEqual({ promoted: source.promoted, unpromoted: [] });
    expect(clusterSummary(status).hasQuorum).toBe(true);
  });

  it("reads Pacemaker 2.0's legacy --as-xml document with Master/Slave words", () => {
    const status = fixture('legacy-2.0-as-xml.xml');
    expect(cloneNodes(status, 'postgres-clone')).toEqual({ promoted: ['pgtwin01'], unpromoted: ['pgtwin02'] });
    expect(clusterSummary(status)).toEqual({ hasQuorum: true, dc: 'pgtwin01' });
  });

  it('finds the roles of a clone of a group', () => {
    expect(cloneNodes(fixture('legacy-2.0-as-xml.xml'), 'postgres-clone-18')).toEqual({ promoted: ['pgtwin11'], unpromoted: ['pgtwin12'] });
  });

  it('tells a stopped clone from a missing one', () => {
    const status = fixture('legacy-2.0-as-xml.xml');
    expect(cloneNodes(status, 'stopped-clone')).toEqual({ promoted: [], unpromoted: [] });
    expect(cloneNodes(status, 'no-such-clone')).toBeUndefined();
    expect(cloneNodes(status, 'postgres-vip')).toBeUndefined();
  });

  it('maps every role word', () => {
    expect(['Promoted', 'Master', 'Unpromoted', 'Slave', 'Started', 'Stopped', undefined].map(normaliseRole)).toEqual([
      'Promoted', 'Promoted', 'Unpromoted', 'Unpromoted', undefined, undefined, undefined,
    ]);
  });

  it('refuses a malformed document rather than guessing', () => {
    expect(() => parseXml('<crm_mon><resources><clone id="x">')).toThrow();
  });
});
