/**
 * What the switch's steps share: the plan, the move (which side production
 * leaves, which direction drains, which opens), the switch's own sessions,
 * the CIB records in order, the proof being gathered. The worker
 * (worker.ts) is the one implementation; the steps see only this.
 */
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Move } from '../direction';
import type { Sessions } from './sessions';
import type { Step } from './steps';
import type { Proof } from './proof';
import type { Logger } from '../../ocf/log';

/** Raised when the switch must stop (a check failed, a stop arrived). */
export class CutoverAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CutoverAbort';
  }
}

/** Raised when this worker lost its lease: another worker owns the switch now; do nothing more. */
export class LeaseLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLost';
  }
}

export interface CutoverContext {
  readonly plan: Plan;
  readonly move: Move;
  readonly sessions: Sessions;
  readonly log: Logger;
  readonly dbs: readonly DatabaseObjects[];
  readonly proof: Proof;
  /** A stop of the resource arrived: before the swap the switch rolls back. */
  readonly stopRequested: boolean;
  /** This worker took the switch over from another: past the swap, the new side may have taken writes already. */
  readonly tookOver: boolean;
  /** The step reached (recovery reads the recorded one; the swap sets `swapped`). */
  step: Step;
  /** The old side's WAL insert position once every database was fenced, and when the fence began. */
  fenceLsn: string;
  fencedAt: number;
  /** Runs fn for every database in parallel; the first failure aborts the switch. */
  eachDatabase(what: string, fn: (o: DatabaseObjects) => Promise<void>): Promise<void>;
  /** Writes values to the CIB if this worker still holds the lease, after every earlier record. */
  record(values: Record<string, string>): Promise<void>;
  /** Queues a record not waited for. */
  recordInBackground(values: Record<string, string>): void;
  /** Resolves once every queued record has been written. */
  recorded(): Promise<void>;
  /** This worker's lease value now (the CIB must hold exactly this for its updates to apply). */
  leaseValue(): string;
  /** Renews the lease now and throws LeaseLost when another worker holds it. */
  assertLease(): Promise<void>;
  /** Runs a CIB update of its own in the record's queue (no renewal in between), given the lease value it must hold. */
  withLease<T>(fn: (leaseValue: string) => Promise<T>): Promise<T>;
  /** Updates one database's state file (a failure is logged, not raised). */
  markState(o: DatabaseObjects, fields: Record<string, boolean | string>): void;
}
