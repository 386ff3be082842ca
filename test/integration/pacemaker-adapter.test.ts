/** The Pacemaker adapter against the rig's real single-node cluster. */
import { vipOrderXml } from '../../src/migration/cutover/vip';
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readStatus, cloneNodes, lastStarts } from '../../src/cluster/crm-mon';
import { ClusterState, localNodeName } from '../../src/cluster/attributes';
import { readResourcesSection, findAttribute, setAttributesAtomically, setMetaAttribute } from '../../src/cluster/resources';
import { parseXml, findAll, findFirst, byTagId } from '../../src/cluster/xml';
import { rig } from '../support/rig';

const exec = promisify(execFile);
const cibQueryXml = async () => parseXml((await exec('cibadmin', ['--query'])).stdout);
const T = 10_000;

describe('Pacemaker adapter on the real cluster', () => {
  const state = new ClusterState('adapter-test', () => T);
  afterAll(async () => {
    await state.clear();
    await exec('cibadmin', ['--delete', '--xml-text', '<rsc_order id="adapter-test-order"/>']).catch(() => undefined);
  });

  it('finds the Promoted and Unpromoted nodes of the stand-in clones', async () => {
    const status = await readStatus(T);
    const node = rig().node;
    expect(cloneNodes(status, 'postgres-clone')).toEqual({ promoted: [node], unpromoted: [node] });
    expect(cloneNodes(status, 'postgres-clone-18')).toEqual({ promoted: [node], unpromoted: [] });
    expect(cloneNodes(status, 'no-such-clone')).toBeUndefined();
    expect(await localNodeName(T)).toBe(node);
  });

  it('gets, sets and deletes cluster attributes of one resource instance, with unset as undefined', async () => {
    expect(await state.get('phase')).toBeUndefined();
    await state.set('phase', 'streaming with spaces & <xml>');
    expect(await state.get('phase')).toBe('streaming with spaces & <xml>');
    await state.setMany({ 'cutover-step': 'fence', 'cutover-lease': 'vm:123:456' });
    expect(Object.fromEntries(await state.readAll())).toEqual({
      phase: 'streaming with spaces & <xml>',
      'cutover-step': 'fence',
      'cutover-lease': 'vm:123:456',
    });
    await state.delete('phase');
    await state.delete('phase');
    expect(await state.get('phase')).toBeUndefined();
    const other = new ClusterState('adapter-test-other', () => T);
    expect(await other.get('cutover-step')).toBeUndefined();
  });

  it('keeps live keys on the resource and the lasting ones in crm_config, written in one update, restarting nothing', async () => {
    // The VIP stand-in plays the migration resource: it must not restart when its record changes.
    const live = new ClusterState('postgres-vip-18', () => T, (name) => name.startsWith('cutover-'));
    const startsBefore = lastStarts(await readStatus(T, { operations: true }), 'postgres-vip-18');
    const epochOf = async () => Number(parseXml((await exec('cibadmin', ['--query'])).stdout).attrs.epoch);
    try {
      const before = await epochOf();
      await live.setMany({ phase: 'forward', 'cutover-step': 'fence', 'cutover-lease': 'vm:1:2' });
      expect(await epochOf()).toBe(before + 1);
      expect(Object.fromEntries(await live.readAll())).toEqual({ phase: 'forward', 'cutover-step': 'fence', 'cutover-lease': 'vm:1:2' });
      const cib = parseXml((await exec('cibadmin', ['--query'])).stdout);
      const metaSet = findFirst(findFirst(cib, byTagId('primitive', 'postgres-vip-18'))!, byTagId('meta_attributes', 'pgtwin-migrate-postgres-vip-18-live'));
      expect(metaSet?.children.map((n) => n.attrs.name).sort()).toEqual(['cutover-lease', 'cutover-step']);
      const propertySet = findFirst(cib, byTagId('cluster_property_set', 'pgtwin-migrate-postgres-vip-18'));
      expect(propertySet?.children.map((n) => n.attrs.name)).toEqual(['phase']);
      await live.set('cutover-step', 'sync');
      expect(await live.get('cutover-step')).toBe('sync');
      await live.delete('cutover-lease');
      expect(await live.get('cutover-lease')).toBeUndefined();
      // Pacemaker had time to act on the changes: the resource was not restarted.
      await new Promise((r) => setTimeout(r, 1500));
      expect(lastStarts(await readStatus(T, { operations: true }), 'postgres-vip-18')).toEqual(startsBefore);
    } finally {
      await live.clear();
    }
    expect(await live.readAll()).toEqual(new Map());
    // Run by hand for an id that is no resource: the live keys stay in crm_config.
    const byHand = new ClusterState('adapter-test-no-resource', () => T, (name) => name.startsWith('cutover-'));
    await byHand.setMany({ phase: 'forward', 'cutover-step': 'fence' });
    const set = findFirst(await cibQueryXml(), byTagId('cluster_property_set', 'pgtwin-migrate-adapter-test-no-resource'));
    expect(set?.children.map((n) => n.attrs.name).sort()).toEqual(['cutover-step', 'phase']);
    expect(Object.fromEntries(await byHand.readAll())).toEqual({ phase: 'forward', 'cutover-step': 'fence' });
    await byHand.clear();
  });

  it('reads and sets instance and meta parameters of resources', async () => {
    const resources = await readResourcesSection(T);
    const ref = findAttribute(resources, 'postgres-vip', 'ip');
    expect(ref).toMatchObject({ resource: 'postgres-vip', value: expect.stringMatching(/^127\.0\.2\./) });
    expect(findAttribute(resources, 'postgres-vip', 'nope')).toBeUndefined();
    expect(findAttribute(resources, 'nope', 'ip')).toBe('no-resource');
    await setMetaAttribute('postgres-vip', 'description', 'adapter test', T);
    const after = await readResourcesSection(T);
    expect(findAttribute(after, 'postgres-vip', 'description', 'meta_attributes')).toMatchObject({ value: 'adapter test' });
  });

  it('swaps the addresses of two VIPs in one CIB update that no sample of the CIB sees half done', async () => {
    const ipOf = (cib: string) => {
      const doc = parseXml(cib);
      const get = (id: string) => findFirst(findFirst(doc, byTagId('primitive', id))!, (e) => e.tag === 'nvpair' && e.attrs.name === 'ip')!.attrs.value;
      return { a: get('postgres-vip'), b: get('postgres-vip-18'), epoch: Number(doc.attrs.epoch) };
    };
    const start = ipOf((await exec('cibadmin', ['--query'])).stdout);
    const pair = [start.a, start.b].sort();
    let sampling = true;
    const samples: Array<{ a?: string; b?: string; epoch: number }> = [];
    const sampler = (async () => {
      while (sampling) samples.push(ipOf((await exec('cibadmin', ['--query'])).stdout));
    })();
    const swaps = 6;
    let a = start.a!;
    let b = start.b!;
    const epochs: number[] = [];
    for (let i = 0; i < swaps; i++) {
      const order = vipOrderXml('adapter-test-order', 'postgres-vip', 'postgres-vip-18');
      const e0 = ipOf((await exec('cibadmin', ['--query'])).stdout).epoch;
      await setAttributesAtomically(
        [
          { resource: 'postgres-vip', name: 'ip', value: b, expect: a },
          { resource: 'postgres-vip-18', name: 'ip', value: a, expect: b },
        ],
        [order],
        T,
      );
      epochs.push(ipOf((await exec('cibadmin', ['--query'])).stdout).epoch - e0);
      [a, b] = [b, a];
    }
    sampling = false;
    await sampler;
    expect(samples.length).toBeGreaterThan(swaps);
    for (const s of samples) {
      expect(s.a).not.toBe(s.b);
      expect([s.a, s.b].sort()).toEqual(pair);
    }
    // Each swap is one configuration change: the epoch moves by exactly one.
    expect(epochs).toEqual(Array(swaps).fill(1));
    const constraints = findAll(parseXml((await exec('cibadmin', ['--query', '--scope', 'constraints'])).stdout), (e) => e.tag === 'rsc_order');
    expect(constraints.filter((c) => c.attrs.id === 'adapter-test-order')).toHaveLength(1);
  });

  it('refuses the swap when the CIB no longer holds the expected value, changing nothing', async () => {
    const before = findAttribute(await readResourcesSection(T), 'postgres-vip', 'ip');
    await expect(
      setAttributesAtomically([{ resource: 'postgres-vip', name: 'ip', value: '198.51.100.1', expect: '203.0.113.9' }], [], T),
    ).rejects.toThrow(/expected 203\.0\.113\.9; the CIB changed underneath, nothing was updated/);
    expect(findAttribute(await readResourcesSection(T), 'postgres-vip', 'ip')).toEqual(before);
  });
});
