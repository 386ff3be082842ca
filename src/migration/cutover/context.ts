/**
 * What the cutover's steps share: the plan, the cutover's own sessions, the
 * CIB records in order, and the fence. The worker (worker.ts) is the one
 * implementation; the steps (database-steps.ts, vip.ts) see only this.
 */
import type { Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Sessions } from './sessions';
import type { Step } from './steps';
import type { Logger } from '../../ocf/log';

/** Raised when the cutover must stop (a check failed, a stop arrived). */
export class CutoverAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CutoverAbort';
  }
}

export interface CutoverContext {
  readonly plan: Plan;
  readonly sessions: Sessions;
  readonly log: Logger;
  readonly dbs: readonly DatabaseObjects[];
  /** A stop of the resource arrived: before the swap the cutover rolls back. */
  readonly stopRequested: boolean;
  /** The step reached (recovery reads the recorded one; the swap sets `swapped`). */
  step: Step;
  /** The source's WAL position once writes were fenced, and when the fence began. */
  fenceLsn: string;
  fencedAt: number;
  /** Runs fn for every database in parallel; the first failure aborts the cutover. */
  eachDatabase(what: string, fn: (o: DatabaseObjects) => Promise<void>): Promise<void>;
  /** Writes values (and the lease) to the CIB, after every earlier record. */
  record(values: Record<string, string>): Promise<void>;
  /** Queues a record not waited for. */
  recordInBackground(values: Record<string, string>): void;
  /** Resolves once every queued record has been written. */
  recorded(): Promise<void>;
  /** This worker's lease, as recorded with every CIB write. */
  lease(): string;
  /** Updates one database's state file (a failure is logged, not raised). */
  markState(o: DatabaseObjects, fields: Record<string, boolean>): void;
}
