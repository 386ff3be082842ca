/**
 * Where the production address leads, as the network would say it on the
 * single-node rig: to the server whose VIP resource actually holds the
 * address now (the VipDummy stand-in's state file), and nowhere while
 * neither does. An application that follows the address writes there.
 */
import { readFileSync } from 'node:fs';
import type { RigServer } from './rig';

export interface Router {
  /** The server the production address leads to now (undefined while no VIP resource holds it). */
  readonly route: () => RigServer | undefined;
  stop(): Promise<void>;
}

function holds(resource: string, address: string): boolean {
  try {
    return readFileSync(`/run/resource-agents/VipDummy-${resource}.state`, 'utf8').trim() === address;
  } catch {
    return false;
  }
}

/** Follows `address` every 20 ms: postgres-vip leads to `source`, postgres-vip-18 to `target`. */
export function followAddress(address: string, source: RigServer, target: RigServer): Router {
  let production: RigServer | undefined = holds('postgres-vip', address) ? source : holds('postgres-vip-18', address) ? target : undefined;
  let running = true;
  const loop = (async () => {
    while (running) {
      production = holds('postgres-vip-18', address) ? target : holds('postgres-vip', address) ? source : undefined;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    route: () => production,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
