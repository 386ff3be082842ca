/**
 * The running cutover worker's lease in the CIB: which node and process
 * run it and when it last said so. Another node takes over only once the
 * lease has expired, so two workers never act at once.
 */
import { readFileSync } from 'node:fs';

export const LEASE_TTL_MS = 15_000;
export const HEARTBEAT_MS = 2_000;

export interface Lease {
  readonly node: string;
  readonly pid: number;
  readonly at: number;
}

export function encodeLease(l: Lease): string {
  return `${l.node}:${l.pid}:${l.at}`;
}

export function decodeLease(value: string | undefined): Lease | undefined {
  const m = /^(.+):(\d+):(\d+)$/.exec(value ?? '');
  return m ? { node: m[1]!, pid: Number(m[2]), at: Number(m[3]) } : undefined;
}

export function expired(l: Lease, now = Date.now()): boolean {
  return now - l.at > LEASE_TTL_MS;
}

/** Is `pid` on this node a pgtwin-migrate cutover worker still running? */
export function workerAlive(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('cutover-worker');
  } catch {
    return false;
  }
}

/**
 * Does the lease holder still run? On this node the process table says; on
 * another node only the heartbeat can.
 */
export function holderAlive(l: Lease, localNode: string, now = Date.now()): boolean {
  // pid 0: a monitor recorded the launch and the worker has not taken the lease yet.
  if (l.node === localNode) return l.pid === 0 ? !expired(l, now) : workerAlive(l.pid);
  return !expired(l, now);
}
