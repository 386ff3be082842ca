/**
 * The two directions of replication and the two switches between them.
 *
 * forward: source → target (publication, slot and DDL capture on the source,
 *          subscription on the target), while production is on the source;
 * reverse: target → source, the way back, while production is on the target.
 *
 * A switch moves production from one cluster to the other in one atomic
 * operation (DESIGN §6): the cutover (source → target) drains the forward
 * direction and opens the reverse one; the failback (target → source) drains
 * the reverse direction and opens the forward one again. Both are the same
 * code, read through these tables.
 */
import type { DatabaseObjects } from './names';
import type { Endpoint } from '../pg/connection';

export type ClusterSide = 'source' | 'target';
export type Direction = 'forward' | 'reverse';
export type SwitchKind = 'cutover' | 'failback';

export interface DirectionObjects {
  readonly pub: string;
  readonly sub: string;
  readonly slot: string;
  /** The event trigger that captures DDL on the publisher. */
  readonly ddlTrigger: string;
}

export function objectsOf(o: DatabaseObjects, d: Direction): DirectionObjects {
  return d === 'forward'
    ? { pub: o.forwardPub, sub: o.forwardSub, slot: o.forwardSlot, ddlTrigger: o.forwardDdlTrigger }
    : { pub: o.reversePub, sub: o.reverseSub, slot: o.reverseSlot, ddlTrigger: o.reverseDdlTrigger };
}

export const publisherOf = (d: Direction): ClusterSide => (d === 'forward' ? 'source' : 'target');
export const subscriberOf = (d: Direction): ClusterSide => (d === 'forward' ? 'target' : 'source');
export const otherSide = (s: ClusterSide): ClusterSide => (s === 'source' ? 'target' : 'source');

/** Where a direction's objects live. */
export interface DirectionEndpoints {
  readonly publisher: Endpoint;
  /** Where its slots are: the publisher, or the source standby (source_node_role=Unpromoted). */
  readonly slots: Endpoint;
  readonly subscriber: Endpoint;
}

export function endpointsOf(plan: { sourcePrimary: Endpoint; targetPrimary: Endpoint; slotHost: Endpoint }, d: Direction): DirectionEndpoints {
  return d === 'forward'
    ? { publisher: plan.sourcePrimary, slots: plan.slotHost, subscriber: plan.targetPrimary }
    : { publisher: plan.targetPrimary, slots: plan.targetPrimary, subscriber: plan.sourcePrimary };
}

export interface Move {
  readonly kind: SwitchKind;
  /** The cluster production leaves: fenced at the start, and stays fenced. */
  readonly from: ClusterSide;
  /** The cluster production moves to: its fence is lifted once the address leads there. */
  readonly to: ClusterSide;
  /** The direction that must be empty before the swap. */
  readonly drain: Direction;
  /** The direction opened for the way back. */
  readonly back: Direction;
}

export const MOVES: Readonly<Record<SwitchKind, Move>> = {
  cutover: { kind: 'cutover', from: 'source', to: 'target', drain: 'forward', back: 'reverse' },
  failback: { kind: 'failback', from: 'target', to: 'source', drain: 'reverse', back: 'forward' },
};

/** Production is on the source in phase forward and on the target in phase reverse. */
export function productionSide(phase: 'forward' | 'reverse'): ClusterSide {
  return phase === 'forward' ? 'source' : 'target';
}

/** The switch that leaves a phase. */
export function switchFrom(phase: 'forward' | 'reverse'): Move {
  return phase === 'forward' ? MOVES.cutover : MOVES.failback;
}
