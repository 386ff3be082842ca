/**
 * The VIP hand-over (DESIGN §6, step 7 and what must follow it): the
 * addresses read and recorded before the fence, swapped in ONE CIB update
 * with the step `swapped`, then followed until Pacemaker has restarted both
 * VIP resources with their new addresses, and read back.
 */
import { CUTOVER_KEY } from './steps';
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import { sleep } from '../parallel';
import { readResourcesSection, requireAttribute, setAttributesAtomically, verifyAttributes } from '../../cluster/resources';
import { readStatus, lastStarts, restartedSince } from '../../cluster/crm-mon';
import { xmlEscape } from '../../ocf/xml-escape';

export class VipHandOver {
  private vips: { prod: string; tgt: string } | undefined;
  /** The VIP resources' latest starts before the swap, to see them take their new addresses. */
  private startsBefore: Map<string, Map<string, number>> | undefined;

  constructor(private readonly ctx: CutoverContext) {}

  get configured(): boolean {
    return Boolean(this.ctx.plan.cfg.production_vip_resource && this.ctx.plan.cfg.target_vip_resource);
  }

  /** Both VIP addresses, recorded in the CIB before the fence (the swap then needs no extra write). */
  async read(): Promise<{ prod: string; tgt: string }> {
    const { cfg } = this.ctx.plan;
    const resources = await readResourcesSection(10_000);
    const prod = requireAttribute(resources, cfg.production_vip_resource, cfg.vip_parameter).value;
    const tgt = requireAttribute(resources, cfg.target_vip_resource, cfg.vip_parameter).value;
    if (prod === tgt) throw new CutoverAbort(`${cfg.production_vip_resource} and ${cfg.target_vip_resource} both have ${cfg.vip_parameter}=${prod}; fix the VIP resources`);
    await this.ctx.record({ [CUTOVER_KEY.productionIp]: prod, [CUTOVER_KEY.targetIp]: tgt });
    const status = await readStatus(10_000, { operations: true });
    this.startsBefore = new Map([cfg.production_vip_resource, cfg.target_vip_resource].map((r) => [r, lastStarts(status, r)]));
    this.vips = { prod, tgt };
    return this.vips;
  }

  /**
   * The swap is in the CIB; wait until Pacemaker has (re)started both VIP
   * resources with their new addresses, so the old source no longer answers
   * on the production address before it takes writes again.
   */
  async waitMoved(timeoutMs = 30_000): Promise<void> {
    const before = this.startsBefore;
    if (!before) return;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const status = await readStatus(10_000, { operations: true });
      const pending = [...before].filter(([rsc, starts]) => !restartedSince(status, rsc, starts)).map(([rsc]) => rsc);
      if (pending.length === 0) return;
      if (Date.now() > until) {
        this.ctx.log.warn(`cutover: ${pending.join(' and ')} did not restart within ${timeoutMs / 1000} s of the swap; making the source read-write anyway`);
        return;
      }
      await sleep(50);
    }
  }

  /** After the window: the swap reads back as made. */
  async verify(): Promise<void> {
    const { cfg } = this.ctx.plan;
    if (!this.vips || !cfg.production_vip_resource || !cfg.target_vip_resource) return;
    await verifyAttributes(
      [
        { resource: cfg.production_vip_resource, name: cfg.vip_parameter, value: this.vips.tgt },
        { resource: cfg.target_vip_resource, name: cfg.vip_parameter, value: this.vips.prod },
      ],
      10_000,
    );
  }

  /**
   * The point of no return: both VIP addresses and the step `swapped` in ONE
   * CIB update, with an order constraint so that, where the VIP resources
   * restart on an address change, every stop finishes before any start.
   */
  async swap(): Promise<void> {
    const { cfg } = this.ctx.plan;
    if (!cfg.production_vip_resource || !cfg.target_vip_resource) {
      this.ctx.log.warn('cutover: production_vip_resource or target_vip_resource is empty; the VIP is not moved (move it yourself)');
      await this.ctx.plan.state.setMany({ [CUTOVER_KEY.step]: 'swapped', [CUTOVER_KEY.lease]: this.ctx.lease() });
      this.ctx.step = 'swapped';
      return;
    }
    const { prod, tgt } = this.vips ?? (await this.read());
    await this.ctx.recorded();
    const order = `<rsc_order id="${xmlEscape(`pgtwin-migrate-${this.ctx.plan.instance}-vip-order`)}" first="${xmlEscape(cfg.production_vip_resource)}" then="${xmlEscape(cfg.target_vip_resource)}" kind="Optional" symmetrical="true"/>`;
    await setAttributesAtomically(
      [
        { resource: cfg.production_vip_resource, name: cfg.vip_parameter, value: tgt, expect: prod },
        { resource: cfg.target_vip_resource, name: cfg.vip_parameter, value: prod, expect: tgt },
      ],
      [order],
      10_000,
      await this.ctx.plan.state.fragment({ [CUTOVER_KEY.step]: 'swapped', [CUTOVER_KEY.lease]: this.ctx.lease() }),
      false, // read back after the window (verify)
    );
    this.ctx.step = 'swapped';
    this.ctx.log.info(`cutover: VIPs swapped in one CIB update: ${cfg.target_vip_resource} now has ${prod}, ${cfg.production_vip_resource} has ${tgt}`);
  }
}
