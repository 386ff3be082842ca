/**
 * What the address proof and the swap read of a VIP resource in the CIB:
 * how many attribute sets name the address (the swap rewrites one), and the
 * parameter text a cached digest is tied to.
 */
import { describe, expect, it } from 'vitest';
import { parseXml, findFirst } from '../../src/cluster/xml';
import { attributeCount, findAttribute, instanceParamsText } from '../../src/cluster/resources';
import { runState } from '../../src/cluster/running';
import { usableDigest, vipOrderXml } from '../../src/migration/cutover/vip';

const cib = (vip: string) =>
  parseXml(`<cib><configuration><resources>
    <primitive id="postgres-vip" class="ocf" provider="heartbeat" type="IPaddr2">${vip}</primitive>
    <clone id="c"><primitive id="other" class="ocf" provider="heartbeat" type="Dummy"/></clone>
  </resources></configuration><status/></cib>`);

describe('VIP resource attributes', () => {
  it('counts the instance attribute sets that name the address', () => {
    const one = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.100"/><nvpair id="a-nic" name="nic" value="eth0"/></instance_attributes>');
    expect(attributeCount(one, 'postgres-vip', 'ip')).toBe(1);
    const two = cib(
      '<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.100"/></instance_attributes>' +
        '<instance_attributes id="b" score="10"><nvpair id="b-ip" name="ip" value="192.0.2.101"/></instance_attributes>',
    );
    expect(attributeCount(two, 'postgres-vip', 'ip')).toBe(2);
    expect(attributeCount(two, 'missing', 'ip')).toBe(0);
    expect(attributeCount(two, 'postgres-vip', 'nic')).toBe(0);
  });

  it('ties a digest to the whole parameter text, in a stable order', () => {
    const a = cib('<instance_attributes id="a"><nvpair id="a-nic" name="nic" value="eth0"/><nvpair id="a-ip" name="ip" value="192.0.2.100"/></instance_attributes>');
    const b = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.100"/><nvpair id="a-nic" name="nic" value="eth0"/></instance_attributes>');
    const c = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.100"/><nvpair id="a-nic" name="nic" value="eth1"/></instance_attributes>');
    expect(instanceParamsText(a, 'postgres-vip')).toBe(instanceParamsText(b, 'postgres-vip'));
    expect(instanceParamsText(a, 'postgres-vip')).not.toBe(instanceParamsText(c, 'postgres-vip'));
    expect(instanceParamsText(a, 'missing')).toBeUndefined();
    // The address as the proof reads it from the whole CIB, not only the resources section.
    const ip = findAttribute(a, 'postgres-vip', 'ip');
    expect(typeof ip === 'object' && ip.value).toBe('192.0.2.100');
  });
});

describe('the swap as the address proof prepares it', () => {
  it('gives the parameter text the swap will produce, so a digest asked before it is found after it', () => {
    const before = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.100"/><nvpair id="a-nic" name="nic" value="eth0"/></instance_attributes>');
    const after = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.101"/><nvpair id="a-nic" name="nic" value="eth0"/></instance_attributes>');
    expect(instanceParamsText(before, 'postgres-vip', { ip: '192.0.2.101' })).toBe(instanceParamsText(after, 'postgres-vip'));
    // Anything else changed too: another text, so the digest is asked again.
    const renic = cib('<instance_attributes id="a"><nvpair id="a-ip" name="ip" value="192.0.2.101"/><nvpair id="a-nic" name="nic" value="eth1"/></instance_attributes>');
    expect(instanceParamsText(before, 'postgres-vip', { ip: '192.0.2.101' })).not.toBe(instanceParamsText(renic, 'postgres-vip'));
  });

  it('uses a digest only of a start, and only where it carries the overridden address', () => {
    const d = (task: string | undefined, ip: string | undefined) => ({ hash: 'h', task, params: ip === undefined ? undefined : { ip } });
    expect(usableDigest(d('start', '192.0.2.101'), { ip: '192.0.2.101' })).toBe(true);
    expect(usableDigest(d(undefined, undefined), { ip: '192.0.2.101' })).toBe(true);
    expect(usableDigest(d('monitor', '192.0.2.101'), { ip: '192.0.2.101' })).toBe(false);
    expect(usableDigest(d('start', '192.0.2.100'), { ip: '192.0.2.101' })).toBe(false);
    expect(usableDigest(d('start', '192.0.2.100'), {})).toBe(true);
  });

  it('orders stop before start both ways: the two stops together, then the two starts', () => {
    const el = findFirst(parseXml(`<constraints>${vipOrderXml('o', 'postgres-vip', 'postgres-vip-18')}</constraints>`), (e) => e.tag === 'rsc_order')!;
    expect(el.attrs).toMatchObject({ first: 'postgres-vip', 'first-action': 'stop', then: 'postgres-vip-18', 'then-action': 'start', kind: 'Optional', symmetrical: 'true' });
  });

  it('reads a failure Pacemaker was told to ignore, and an unmanaged or blocked resource, from crm_mon', () => {
    const status = parseXml(`<pacemaker-result><resources>
      <resource id="postgres-vip" resource_agent="ocf:heartbeat:IPaddr2" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="true" nodes_running_on="0"/>
      <resource id="postgres-vip-18" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" orphaned="false" blocked="true" managed="false" failed="false" failure_ignored="false" nodes_running_on="1"><node name="n2" id="2" cached="true"/></resource>
    </resources></pacemaker-result>`);
    expect(runState(status, 'postgres-vip')).toMatchObject({ nodes: [], failureIgnored: true, managed: true });
    expect(runState(status, 'postgres-vip-18')).toMatchObject({ nodes: ['n2'], failureIgnored: false, managed: false, blocked: true });
  });
});
