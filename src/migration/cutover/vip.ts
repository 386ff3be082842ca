/**
 * The production address, handed over (DESIGN §6, "never two writable
 * clusters"): the two VIP resources' addresses read before the fence, swapped
 * in ONE conditional CIB update (it applies only while this worker holds the
 * lease and both addresses are still as read, and records the step
 * `swapped` with them), then PROVEN to lead to the new side before that side
 * takes writes: a connection through the address reaches the new side's
 * server, or Pacemaker reports the new side's VIP resource started with
 * exactly its configured (swapped) parameters and the old side's stopped or
 * carrying the other address. No proof, no writes: the switch waits, then
 * reports itself blocked.
 */
import { CUTOVER_KEY } from './steps';
import type { CutoverContext } from './context';
import { CutoverAbort, LeaseLost } from './context';
import { sleep } from '../parallel';
import { readResourcesSection, requireAttribute, findAttribute, attributeCount, instanceParamsText, type AttributeRef } from '../../cluster/resources';
import { readStatus } from '../../cluster/crm-mon';
import { runState, lastOperation, readCib, type LastOperation, configuredDigest, startedWith, succeededStart, nodesIn, type ConfiguredDigest } from '../../cluster/running';
import { xmlEscape } from '../../ocf/xml-escape';
import type { XmlElement } from '../../cluster/xml';
import { connect } from '../../pg/connection';
import type { ClusterSide } from '../direction';

/** How long the address is still waited for once a stop of the resource arrived. */
const STOP_WAIT_MS = 5_000;

export interface Addresses {
  /** The production address, on the old side's VIP resource before the swap. */
  readonly production: string;
  /** The other address, on the new side's VIP resource before the swap. */
  readonly other: string;
}

/** How long a connection probe's answer stands for the address. */
const PROBE_FRESH_MS = 1_500;

interface ProbeResult {
  readonly reached: 'to' | 'from' | 'none';
  readonly address: string;
  readonly systemId?: string;
}

const digestKey = (rsc: string, node: string, params: string) => `${rsc}\0${node}\0${params}`;
const opSignature = (op: LastOperation) => `${op.operation}:${op.callId}:${op.digest ?? ''}`;

/**
 * A digest the proof may compare a start with: of a start (crm_resource
 * digests another operation where the last one on the node was a reload),
 * and, where it was asked with overrides, of parameters that carry them.
 */
export function usableDigest(d: ConfiguredDigest, overrides: Readonly<Record<string, string>>): boolean {
  if (d.task !== undefined && d.task !== 'start') return false;
  return Object.entries(overrides).every(([k, v]) => d.params === undefined || d.params[k] === v);
}

/**
 * The order the swap adds: the VIP resource giving up an address stops
 * before the other one starts with it, both ways (symmetrical: stop of the
 * second before start of the first). The two stops run at once, then the two
 * starts: one address never on two nodes, and two steps instead of four.
 */
export function vipOrderXml(id: string, first: string, then: string): string {
  return `<rsc_order id="${xmlEscape(id)}" first="${xmlEscape(first)}" first-action="stop" then="${xmlEscape(then)}" then-action="start" kind="Optional" symmetrical="true"/>`;
}

export class VipHandOver {
  private refs: { from: AttributeRef; to: AttributeRef } | undefined;
  private addresses: Addresses | undefined;

  constructor(private readonly ctx: CutoverContext) {}

  /** The VIP resource that goes with one cluster. */
  resourceOf(side: ClusterSide): string {
    const { cfg } = this.ctx.plan;
    return side === 'source' ? cfg.production_vip_resource : cfg.target_vip_resource;
  }

  get configured(): boolean {
    return Boolean(this.ctx.plan.cfg.production_vip_resource && this.ctx.plan.cfg.target_vip_resource);
  }

  /** Both addresses, recorded before the fence (the swap then needs no extra read). */
  async read(): Promise<Addresses> {
    const { cfg } = this.ctx.plan;
    const { move } = this.ctx;
    if (!this.configured) {
      throw new CutoverAbort('production_vip_resource and target_vip_resource must name the two VIP resources: the switch moves the production address between them');
    }
    // Configuration and status of one moment: the addresses, and where each VIP resource last started.
    const resources = await readCib(10_000);
    // The swap rewrites one nvpair per resource: where several sets name the address, the one in effect may be another.
    for (const rsc of [this.resourceOf(move.from), this.resourceOf(move.to)]) {
      const n = attributeCount(resources, rsc, cfg.vip_parameter);
      if (n > 1) throw new CutoverAbort(`${rsc} has ${cfg.vip_parameter} in ${n} instance attribute sets; the switch swaps one address per VIP resource: keep ${cfg.vip_parameter} in one set (crm configure edit ${rsc})`);
    }
    const from = requireAttribute(resources, this.resourceOf(move.from), cfg.vip_parameter);
    const to = requireAttribute(resources, this.resourceOf(move.to), cfg.vip_parameter);
    if (from.value === to.value) throw new CutoverAbort(`${from.resource} and ${to.resource} both have ${cfg.vip_parameter}=${from.value}; fix the VIP resources`);
    this.refs = { from, to };
    this.addresses = { production: from.value, other: to.value };
    this.before = this.operationsIn(resources);
    await this.precomputeDigests(resources);
    this.ctx.recordInBackground({ [CUTOVER_KEY.productionIp]: from.value, [CUTOVER_KEY.targetIp]: to.value });
    return this.addresses;
  }

  /**
   * Before the fence: the digest each VIP resource will have once its address
   * is swapped, on each node where it last started, asked now (crm_resource
   * with the new address as an override) so that the proof inside the
   * read-only window costs no crm_resource. Kept under the parameter text the
   * swap will produce: should anything else change, the proof asks afresh.
   */
  private async precomputeDigests(cib: XmlElement): Promise<void> {
    const { cfg } = this.ctx.plan;
    const { move } = this.ctx;
    const { production, other } = this.addresses!;
    const asked: Array<Promise<unknown>> = [];
    for (const [rsc, value] of [[this.resourceOf(move.to), production], [this.resourceOf(move.from), other]] as const) {
      const overrides = { [cfg.vip_parameter]: value };
      const params = instanceParamsText(cib, rsc, overrides);
      if (params === undefined) continue;
      for (const node of nodesIn(cib)) {
        if (!succeededStart(lastOperation(cib, rsc, node))) continue;
        this.overridden.add(digestKey(rsc, node, params));
        asked.push(this.digestOf(rsc, node, params, overrides));
      }
    }
    const answers = await Promise.all(asked);
    this.precomputed = answers.length > 0 && answers.every((a) => a !== undefined);
  }

  /** Every digest asked before the fence was answered (else the swap asks again, for the configuration then). */
  private precomputed = false;
  /** Digests asked with the swapped address as an override: asked again once should a restart not match. */
  private readonly overridden = new Set<string>();

  /** The addresses as the switch recorded them (after a takeover: from the CIB record). */
  restore(record: ReadonlyMap<string, string>): void {
    const production = record.get(CUTOVER_KEY.productionIp);
    const other = record.get(CUTOVER_KEY.targetIp);
    if (production && other) this.addresses = { production, other };
  }

  /**
   * The point of no return: both addresses and the step `swapped` in ONE
   * CIB update that applies only while this worker holds the lease and both
   * addresses are still as read; with an order constraint so that, where
   * the VIP resources restart on an address change, every stop finishes
   * before any start. An update whose outcome is unknown is resolved by
   * reading the CIB after a barrier, never assumed.
   */
  async swap(): Promise<void> {
    const { plan, move } = this.ctx;
    const { cfg } = plan;
    if (!this.refs || !this.addresses) await this.read();
    const { from, to } = this.refs!;
    const { production, other } = this.addresses!;
    const order = vipOrderXml(`pgtwin-migrate-${plan.instance}-vip-order`, cfg.production_vip_resource, cfg.target_vip_resource);
    const swappedAt = new Date().toISOString();
    const [outcome, lease] = await this.ctx.withLease(async (lease) => [
      await plan.state.casMany(
        {
          [CUTOVER_KEY.step]: 'swapped',
          [CUTOVER_KEY.swappedAt]: swappedAt,
          [CUTOVER_KEY.fenceLsn]: this.ctx.fenceLsn,
          [CUTOVER_KEY.fencedAt]: this.ctx.proof.fencedAt ?? '',
          [CUTOVER_KEY.fenceCompleteAt]: this.ctx.proof.fenceCompleteAt ?? '',
        },
        [{ name: CUTOVER_KEY.lease, value: lease }],
        {
        refs: [
          { ref: from, value: other },
          { ref: to, value: production },
        ],
        constraintsXml: [order],
        conditions: [
          { id: from.path[from.path.length - 1]![1], value: production },
          { id: to.path[to.path.length - 1]![1], value: other },
        ],
        },
      ),
      lease,
    ] as const);
    if (outcome === 'refused') {
      const record = await plan.state.readAll();
      if (record.get(CUTOVER_KEY.lease) !== lease) throw new LeaseLost('another worker holds the lease; the swap was not made');
      throw new CutoverAbort(`${from.resource} or ${to.resource} changed since the switch read them; the swap was not made`);
    }
    if (outcome === 'unknown') {
      this.ctx.log.warn(`${move.kind}: the CIB did not confirm the swap in time; reading it back after a barrier to learn whether it landed`);
      const record = await plan.state.barrier(CUTOVER_KEY.barrier);
      const resources = await readResourcesSection(10_000);
      const nowTo = requireAttribute(resources, to.resource, cfg.vip_parameter).value;
      if (record.get(CUTOVER_KEY.step) !== 'swapped' || nowTo !== production) {
        throw new CutoverAbort('the CIB update of the swap did not land (the CIB read back after a barrier shows the old addresses)');
      }
    }
    this.ctx.step = 'swapped';
    this.ctx.proof.swappedAt = swappedAt;
    if (!this.precomputed) this.prefetchDigests();
    this.ctx.log.info(`${move.kind}: addresses swapped in one CIB update: ${to.resource} now has ${production}, ${from.resource} has ${other}`);
  }

  /**
   * Waits until the production address provably leads to the new side (see
   * the file comment); returns how it was proven, or undefined after
   * `timeoutMs` without proof, or 5 s after a stop of the resource arrived
   * (the stop waits for this worker, and Pacemaker's next transition, the
   * one that may fix the VIP resource, waits for the stop).
   */
  async awaitAddress(timeoutMs: number): Promise<string | undefined> {
    const until = Date.now() + timeoutMs;
    let lastWhy = '';
    let lastReport = 0;
    let stopSeenAt: number | undefined;
    // While Pacemaker restarts the VIP resources a crm_mon only competes with it: the first
    // full look waits until the CIB shows it acted (or 2 s, to say why not). After a takeover,
    // with nothing to compare, the first look is a full one.
    if (this.before) this.lastFullProof = Date.now();
    for (;;) {
      const r = await this.proveAddress().catch((err: Error) => ({ proven: false as const, why: `cannot look: ${err.message}` }));
      if (r.proven) return r.how;
      lastWhy = r.why;
      if (this.ctx.stopRequested) stopSeenAt ??= Date.now();
      if (Date.now() > Math.min(until, (stopSeenAt ?? Infinity) + STOP_WAIT_MS)) {
        this.ctx.log.err(`${this.ctx.move.kind}: the production address is not proven to lead to the ${this.ctx.move.to}: ${lastWhy}`);
        return undefined;
      }
      if (Date.now() - lastReport > 5_000) {
        lastReport = Date.now();
        this.ctx.log.info(`${this.ctx.move.kind}: waiting for the production address to lead to the ${this.ctx.move.to}: ${lastWhy}`);
      }
      await sleep(50);
    }
  }

  /** Why the address is not proven yet, in one line (for the blocked state). */
  async whyNotProven(): Promise<string> {
    // The full look: between two full proofs the cheap one only says Pacemaker has not acted, not why.
    const r = await this.proveAddress(true);
    return r.proven ? '' : r.why;
  }

  /** The VIP resources' last start digests per node before the swap: a changed one shows Pacemaker acted. */
  private before: { to: Map<string, string>; from: Map<string, string> } | undefined;
  private lastFullProof = 0;

  /** Each VIP resource's last operation per node (kind, call id, digest), from a CIB status. */
  private operationsIn(cib: XmlElement): { to: Map<string, string>; from: Map<string, string> } {
    const digests = (rsc: string) => {
      const out = new Map<string, string>();
      for (const node of nodesIn(cib)) {
        const op = lastOperation(cib, rsc, node);
        if (op) out.set(node, opSignature(op));
      }
      return out;
    };
    return { to: digests(this.resourceOf(this.ctx.move.to)), from: digests(this.resourceOf(this.ctx.move.from)) };
  }

  /**
   * Whether the CIB status shows Pacemaker has acted on both VIP resources
   * since the swap: the new side's started again somewhere (a stop alone is
   * half way), the old side's changed or gone.
   */
  private pacemakerActed(cibStatus: XmlElement): boolean {
    if (!this.before) return true;
    const now = this.operationsIn(cibStatus);
    const changed = (a: Map<string, string>, b: Map<string, string>) => [...b].some(([node, v]) => a.get(node) !== v);
    this.acting ||= changed(this.before.to, now.to) || changed(this.before.from, now.from);
    const toStarted = [...now.to.keys()].some((node) => this.restartedSinceRead(cibStatus, 'to', node));
    return toStarted && (changed(this.before.from, now.from) || now.from.size === 0);
  }

  /** The CIB has shown an operation on either VIP resource since the addresses were read. */
  private acting = false;
  private statusInFlight: Promise<XmlElement> | undefined;

  /** crm_mon's view: the one being read when a read is in flight (never two at once), else a new one. */
  private statusOnce(): Promise<XmlElement> {
    if (!this.statusInFlight) {
      const p = readStatus(10_000).finally(() => {
        if (this.statusInFlight === p) this.statusInFlight = undefined;
      });
      // Handled here too: when the CIB read fails first, this one's failure must not go unheard.
      p.catch(() => undefined);
      this.statusInFlight = p;
    }
    return this.statusInFlight;
  }

  /**
   * The digests Pacemaker computes for the VIP resources' parameters, per
   * resource, node and parameter text: a digest is reused only while the
   * configured parameters are still the ones it was computed for (a
   * changed nic or netmask is asked again, never matched against a stale
   * answer). Asked before the fence for the swapped parameters (see
   * precomputeDigests), else at once after the swap, so that the proof,
   * once Pacemaker has acted, costs one crm_mon and one CIB read. The text
   * is of the primitive's own instance attributes: what else goes into a
   * digest (operation parameters, a group's attributes, rules) is covered by
   * asking once more when a restart after the swap does not match.
   */
  private digests = new Map<string, Promise<ConfiguredDigest | undefined>>();

  private digestOf(rsc: string, node: string, params: string, overrides: Readonly<Record<string, string>> = {}): Promise<ConfiguredDigest | undefined> {
    const k = digestKey(rsc, node, params);
    let d = this.digests.get(k);
    if (!d) {
      d = configuredDigest(rsc, node, 10_000, overrides)
        .then((v) => (v && usableDigest(v, overrides) ? v : undefined))
        .catch(() => undefined);
      // A failed answer is asked again next time.
      void d.then((v) => v === undefined && this.digests.delete(k));
      this.digests.set(k, d);
    }
    return d;
  }

  private prefetchDigests(): void {
    void readCib(10_000)
      .then((cib) => {
        for (const rsc of [this.resourceOf(this.ctx.move.to), this.resourceOf(this.ctx.move.from)]) {
          const params = instanceParamsText(cib, rsc);
          if (params === undefined) continue;
          for (const node of nodesIn(cib)) if (succeededStart(lastOperation(cib, rsc, node))) void this.digestOf(rsc, node, params);
        }
      })
      .catch(() => undefined);
  }

  /** Has Pacemaker started this VIP resource on `node` again since the addresses were read (before the fence)? */
  private restartedSinceRead(cib: XmlElement, which: 'to' | 'from', node: string): boolean {
    const rsc = this.resourceOf(which === 'to' ? this.ctx.move.to : this.ctx.move.from);
    const op = lastOperation(cib, rsc, node);
    if (!succeededStart(op) || !this.before) return false;
    return this.before[which].get(node) !== opSignature(op!);
  }

  /**
   * A digest answered with the swapped address (an override) stands again
   * for nothing once a restart after the swap does not match it: asked once
   * more, for the configuration as it is then.
   */
  private reaskOnce(rsc: string, node: string, params: string): boolean {
    const k = digestKey(rsc, node, params);
    if (!this.overridden.delete(k)) return false;
    this.digests.delete(k);
    return true;
  }

  private async proveAddress(force = false): Promise<{ proven: true; how: string } | { proven: false; why: string }> {
    const net = this.netLook();
    const pcmk = await this.pacemakerLook(force);
    if (net.reached === 'from') return { proven: false, why: `a connection to ${net.address} still reaches the ${this.ctx.move.from}` };
    if (net.reached === 'to') {
      // A connection reaching the new side does not show that the old side let go of the address:
      // with its VIP resource unmanaged, failed or blocked it may answer some clients still.
      const doubt = await readStatus(10_000).then(
        (status) => this.oldVipDoubt(status),
        (err: Error) => `cannot read Pacemaker's view: ${err.message}`,
      );
      if (doubt) return { proven: false, why: doubt };
      return { proven: true, how: `a connection to ${net.address} reached the ${this.ctx.move.to} (system identifier ${net.systemId})` };
    }
    return pcmk.proven ? { proven: true, how: pcmk.how } : { proven: false, why: pcmk.why };
  }

  /** Why the old side's VIP resource may still hold its address (undefined: nothing says so). */
  private oldVipDoubt(status: XmlElement): string | undefined {
    const fromRsc = this.resourceOf(this.ctx.move.from);
    const from = runState(status, fromRsc);
    if (!from) return undefined;
    if (!from.managed) return `${fromRsc} is unmanaged: its address is not known to have moved`;
    if (from.failed || from.blocked) return `${fromRsc} has failed${from.blocked ? ' and is blocked' : ''}: its address is not known to have moved`;
    if (from.failureIgnored) return `${fromRsc} has a failure Pacemaker ignores (on-fail=ignore): its address is not known to have moved`;
    return undefined;
  }

  /**
   * One look at Pacemaker: a CIB read (configuration and status at one
   * moment) says whether it has acted on both VIP resources since the swap;
   * only then (or every 2 s, to say why it does not hold, or when forced)
   * the full proof, which adds crm_mon's view. Once Pacemaker has begun to
   * act, crm_mon runs beside each CIB read, so that the proof need not wait
   * for one more process; a status that turns out older than the CIB read
   * (the proof fails on it) is read once more. A look that fails is no proof.
   */
  private async pacemakerLook(force: boolean): Promise<{ proven: true; how: string } | { proven: false; why: string }> {
    const due = force || Date.now() - this.lastFullProof > 2_000;
    const statusRead = due || this.acting ? this.statusOnce() : undefined;
    try {
      const cib = await readCib(10_000);
      const acted = due || this.pacemakerActed(cib);
      if (!acted) return { proven: false, why: 'Pacemaker has not restarted the VIP resources yet' };
      this.lastFullProof = Date.now();
      const first = await this.pacemakerProof(await (statusRead ?? readStatus(10_000)), cib);
      if (first.proven || due || !statusRead) return first;
      return await this.pacemakerProof(await readStatus(10_000), cib);
    } catch (err) {
      return { proven: false, why: `cannot read Pacemaker's view: ${(err as Error).message}` };
    }
  }

  /**
   * Pacemaker's word: the new side's VIP resource configured with the
   * production address and started with exactly its configured parameters,
   * the old one not carrying it.
   */
  private async pacemakerProof(status: XmlElement, cib: XmlElement): Promise<{ proven: true; how: string } | { proven: false; why: string }> {
    const { move } = this.ctx;
    const { cfg } = this.ctx.plan;
    const toRsc = this.resourceOf(move.to);
    const fromRsc = this.resourceOf(move.from);
    const production = this.addresses?.production;
    if (!production) return { proven: false, why: 'the production address is not known to this worker' };
    // What the CIB says now, not what the swap wrote: an administrator may have changed it since.
    const toAddress = findAttribute(cib, toRsc, cfg.vip_parameter);
    const fromAddress = findAttribute(cib, fromRsc, cfg.vip_parameter);
    if (typeof toAddress !== 'object' || toAddress.value !== production) {
      return { proven: false, why: `${toRsc} is not configured with the production address ${production} (${cfg.vip_parameter}=${typeof toAddress === 'object' ? toAddress.value : 'unset'}); give it back that address` };
    }
    if (typeof fromAddress === 'object' && fromAddress.value === production) return { proven: false, why: `${fromRsc} is configured with the production address ${production} too` };
    const to = runState(status, toRsc);
    const from = runState(status, fromRsc);
    if (!to) return { proven: false, why: `${toRsc} is not in the cluster status` };
    if (!to.managed) return { proven: false, why: `${toRsc} is unmanaged: Pacemaker does not move its address` };
    if (to.failed || to.blocked || to.failureIgnored) return { proven: false, why: `${toRsc} has failed${to.blocked ? ' and is blocked' : ''}; see crm_mon` };
    if (to.nodes.length !== 1) return { proven: false, why: `${toRsc} runs on ${to.nodes.length} node(s), not exactly one` };
    const doubt = this.oldVipDoubt(status);
    if (doubt) return { proven: false, why: doubt };
    const node = to.nodes[0]!;
    // Where the old VIP runs, by crm_mon, and by the CIB's own history (a node whose last
    // operation on it is a successful start): crm_mon's view may be of a moment before the CIB
    // read, and a start it has not seen yet must not pass for "stopped".
    const fromNodes = [...new Set([...(from?.nodes ?? []), ...nodesIn(cib).filter((n) => succeededStart(lastOperation(cib, fromRsc, n)))])];
    const toParams = instanceParamsText(cib, toRsc) ?? '';
    const fromParams = instanceParamsText(cib, fromRsc) ?? '';
    const [toDigest, ...fromDigests] = await Promise.all([this.digestOf(toRsc, node, toParams), ...fromNodes.map((n) => this.digestOf(fromRsc, n, fromParams))]);
    const toWhy = this.startedAsConfigured(cib, 'to', node, toParams, toDigest, production, `${toRsc} has not been started with its new address on ${node} yet`);
    if (toWhy) return { proven: false, why: toWhy };
    for (const [i, n] of fromNodes.entries()) {
      const fromWhy = this.startedAsConfigured(cib, 'from', n, fromParams, fromDigests[i], this.addresses?.other, `${fromRsc} still runs on ${n} with its old address`);
      if (fromWhy) return { proven: false, why: fromWhy };
    }
    return { proven: true, how: `Pacemaker reports ${toRsc} started on ${node} with its new address and ${fromRsc} ${fromNodes.length ? 'restarted with the other one' : 'stopped'}` };
  }

  /**
   * Whether one VIP resource's last start on `node` was with its configured
   * parameters (the digest of `params`); undefined when it was, else why not
   * (`notYet` when it simply has not restarted). The digest is of the
   * parameters of the moment it was asked: where crm_resource shows them,
   * they must carry `address`, else it is asked again.
   */
  private startedAsConfigured(
    cib: XmlElement,
    which: 'to' | 'from',
    node: string,
    params: string,
    digest: ConfiguredDigest | undefined,
    address: string | undefined,
    notYet: string,
  ): string | undefined {
    const { cfg } = this.ctx.plan;
    const rsc = this.resourceOf(which === 'to' ? this.ctx.move.to : this.ctx.move.from);
    const carried = digest?.params?.[cfg.vip_parameter];
    if (carried !== undefined && carried !== address) {
      this.digests.delete(digestKey(rsc, node, params));
      return `${rsc}'s configuration changed while it was being checked; looking again`;
    }
    if (startedWith(lastOperation(cib, rsc, node), digest?.hash)) return undefined;
    if (this.restartedSinceRead(cib, which, node) && this.reaskOnce(rsc, node, params)) return `${rsc} restarted, but not with the digest asked before the swap; asking again`;
    return notYet;
  }

  /**
   * The connection probe runs beside the looks at Pacemaker, never holding
   * them up: while an address is in motion a connection can take its whole
   * second to fail. A look uses the last probe's answer while it is fresh,
   * and starts the next probe when none is in flight.
   */
  private probing: Promise<void> | undefined;
  private lastProbe: { at: number; r: ProbeResult } | undefined;

  private netLook(): ProbeResult {
    if (!this.probing) {
      this.probing = this.probe()
        .then((r) => {
          this.lastProbe = { at: Date.now(), r };
        })
        .catch(() => undefined)
        .finally(() => {
          this.probing = undefined;
        });
    }
    const l = this.lastProbe;
    return l && Date.now() - l.at <= PROBE_FRESH_MS ? l.r : { reached: 'none', address: this.addresses?.production ?? '' };
  }

  /**
   * Connects through the production address to the new side's port (as the
   * agent connects anywhere: its TLS and password rules) and reads the
   * server's system identifier.
   */
  private async probe(): Promise<ProbeResult> {
    const { plan, move } = this.ctx;
    const address = this.addresses?.production ?? '';
    if (!address) return { reached: 'none', address };
    const ep = move.to === 'target' ? plan.targetPrimary : plan.sourcePrimary;
    const ids = await this.systemIds();
    try {
      const c = await connect({ ...ep, host: address, role: 'production address', moves: true }, this.ctx.dbs[0]!.database, { timeoutMs: 1_000, statementTimeoutMs: 1_000 });
      try {
        const { rows } = await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
        const id = rows[0]?.id;
        return { reached: id === ids.to ? 'to' : id === ids.from ? 'from' : 'none', address, systemId: id };
      } finally {
        await c.end().catch(() => undefined);
      }
    } catch {
      return { reached: 'none', address };
    }
  }

  private ids: { from: string; to: string } | undefined;

  private async systemIds(): Promise<{ from: string; to: string }> {
    if (!this.ids) {
      const o = this.ctx.dbs[0]!;
      const q = async (side: ClusterSide) =>
        (await (await this.ctx.sessions.get(o, side)).query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
      this.ids = { from: await q(this.ctx.move.from), to: await q(this.ctx.move.to) };
    }
    return this.ids;
  }
}
