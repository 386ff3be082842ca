/**
 * What the address proof and the swap read of a VIP resource in the CIB:
 * how many attribute sets name the address (the swap rewrites one), and the
 * parameter text a cached digest is tied to.
 */
import { describe, expect, it } from 'vitest';
import { parseXml } from '../../src/cluster/xml';
import { attributeCount, findAttribute, instanceParamsText } from '../../src/cluster/resources';

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
