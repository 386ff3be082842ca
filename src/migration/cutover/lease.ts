/**
 * The running switch worker's lease in the CIB: a lock taken and renewed by
 * compare-and-swap (ClusterState.casMany), so two workers never both hold it.
 *
 * The holder is named by node, PID and the process's start time (a PID the
 * kernel reused is not the holder), plus a nonce; every renewal increments a
 * sequence number. Expiry never compares the clocks of two nodes: on the
 * holder's own node the process table decides; elsewhere a lease is expired
 * when this node has seen the same value for LEASE_TTL_MS of its own clock,
 * or when Pacemaker reports the holder's node cleanly offline (fenced).
 * The holder stops acting when it could not renew for LEASE_TTL_MS / 2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const LEASE_TTL_MS = 30_000;
export const HEARTBEAT_MS = 2_000;
/** A holder that could not renew for this long stops acting (others take over only after LEASE_TTL_MS). */
export const SELF_FENCE_MS = LEASE_TTL_MS / 2;

export interface Lease {
  readonly node: string;
  /** 0: a launcher reserved the lease for a worker that has not taken it yet. */
  readonly pid: number;
  /** The process's start time (clock ticks since boot, /proc/<pid>/stat field 22). */
  readonly start: string;
  readonly nonce: string;
  readonly seq: number;
}

export function encodeLease(l: Lease): string {
  return JSON.stringify({ node: l.node, pid: l.pid, start: l.start, nonce: l.nonce, seq: l.seq });
}

export function decodeLease(value: string | undefined): Lease | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as Partial<Lease>;
    if (typeof v.node === 'string' && typeof v.pid === 'number' && typeof v.nonce === 'string' && typeof v.seq === 'number') {
      return { node: v.node, pid: v.pid, start: typeof v.start === 'string' ? v.start : '', nonce: v.nonce, seq: v.seq };
    }
  } catch {
    // an older record (node:pid:time) or garbage: no live holder can be told from it
  }
  return undefined;
}

/** The start time of process `pid`, or undefined when there is no such process. */
export function processStart(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined; // a zombie does nothing any more
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Is the holder a live process on this node (same PID and start time)? */
export function holderRunsHere(l: Lease): boolean {
  return l.pid > 0 && processStart(l.pid) === l.start;
}

/** What this node has seen of a lease value, and since when by its own clock. */
export interface Sighting {
  readonly value: string;
  readonly since: number;
}

export function sightingPath(rscTmp: string, instance: string): string {
  return join(rscTmp, `pgtwin-migrate-${instance}.lease-seen`);
}

export function readSighting(path: string): Sighting | undefined {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as Sighting;
    return typeof s.value === 'string' && typeof s.since === 'number' ? s : undefined;
  } catch {
    return undefined;
  }
}

export type LeaseVerdict = 'free' | 'held' | 'expired';

export interface LeaseFacts {
  readonly value: string | undefined;
  readonly localNode: string;
  /** Nodes Pacemaker reports offline and clean (fenced or shut down). */
  readonly deadNodes: ReadonlySet<string>;
  /** What this node saw before this look (see sightingPath). */
  readonly seen: Sighting | undefined;
  readonly now: number;
}

/**
 * Decides whether the lease is held, with the sighting to remember (the
 * caller stores it so that the next look can tell whether it still moves).
 */
export function judgeLease(f: LeaseFacts): { verdict: LeaseVerdict; sighting: Sighting | undefined } {
  const lease = decodeLease(f.value);
  if (!f.value || !lease) return { verdict: f.value ? 'expired' : 'free', sighting: undefined };
  const sighting: Sighting = f.seen?.value === f.value ? f.seen : { value: f.value, since: f.now };
  if (lease.node === f.localNode && lease.pid > 0) return { verdict: holderRunsHere(lease) ? 'held' : 'expired', sighting };
  if (f.deadNodes.has(lease.node)) return { verdict: 'expired', sighting };
  return { verdict: f.now - sighting.since >= LEASE_TTL_MS ? 'expired' : 'held', sighting };
}
