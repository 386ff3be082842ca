/**
 * The proof of one switch: what the worker saw that made it safe, per
 * database and in time — the fence position, each drained slot's confirmed
 * position, the empty-slot checks, every sequence value carried over, how
 * the production address was proven to lead to the new side, and when
 * writes were refused and accepted again. Gathered as the switch runs (no
 * extra work in the read-only window), kept in the CIB (compressed, so any
 * node can show it) once the switch has ended.
 */
import { gzipSync, gunzipSync } from 'node:zlib';
import type { SwitchKind, ClusterSide, Direction } from '../direction';

export interface SequenceCarried {
  readonly name: string;
  readonly lastValue: string;
  readonly isCalled: boolean;
}

export interface DatabaseProof {
  readonly database: string;
  /** The old side's WAL insert position right after this database was fenced. */
  fenceLsn?: string;
  /** The drained slot's confirmed_flush_lsn when it had caught up with the fence. */
  slotConfirmedLsn?: string;
  /** Changes found in the drained slot after the subscription was disabled (must be 0). */
  pendingAtProof?: number;
  /** Changes found again after the address moved, and carried over to the new side. */
  carriedOver?: number;
  /** Tables published and subscribed when the fence was in place. */
  tables?: number;
  sequences?: SequenceCarried[];
}

export interface Proof {
  readonly kind: SwitchKind;
  readonly from: ClusterSide;
  readonly to: ClusterSide;
  readonly drained: Direction;
  startedAt?: string;
  /** The old side refused its first write. */
  fencedAt?: string;
  /** Writes in flight were over; no write was accepted on the old side after this. */
  fenceCompleteAt?: string;
  /** The old side's WAL insert position after every database was fenced. */
  fenceLsn?: string;
  swappedAt?: string;
  addressProvenAt?: string;
  /** How the address was proven to lead to the new side. */
  addressProof?: string;
  /** The new side accepted writes (its fence lifted). */
  firstWriteAt?: string;
  completedAt?: string;
  /** The read-only window: fencedAt to firstWriteAt, in ms. */
  windowMs?: number;
  /** How the new side's synchronous standbys were proven to have every replicated change (durable.ts). */
  durable?: string;
  /** Per-step durations, ms. */
  timings?: Record<string, number>;
  readonly databases: DatabaseProof[];
}

export function newProof(kind: SwitchKind, from: ClusterSide, to: ClusterSide, drained: Direction, databases: readonly string[]): Proof {
  return { kind, from, to, drained, databases: databases.map((database) => ({ database })) };
}

export function proofOf(p: Proof, database: string): DatabaseProof {
  const d = p.databases.find((x) => x.database === database);
  if (!d) throw new Error(`no proof entry for database ${JSON.stringify(database)}`);
  return d;
}

/** Compact form for the CIB: gzip, then base64. */
export function encodeProof(p: Proof): string {
  return gzipSync(Buffer.from(JSON.stringify(p))).toString('base64');
}

export function decodeProof(value: string | undefined): Proof | undefined {
  if (!value) return undefined;
  try {
    return JSON.parse(gunzipSync(Buffer.from(value, 'base64')).toString('utf8')) as Proof;
  } catch {
    return undefined;
  }
}
