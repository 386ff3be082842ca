/**
 * Brings the cluster rig up once for the cluster suite and down afterwards
 * (`scripts/rig.sh cluster down` also checks that nothing is left).
 * PGTWIN_CLUSTER_REUSE=1 uses a rig that is already up and leaves it up, for
 * quick local iteration (`make rig-cluster-up` first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CLUSTER_JSON } from './cluster';

const rigScript = resolve(__dirname, '../../scripts/rig.sh');

export default function setup(): () => void {
  if (!existsSync(resolve(__dirname, '../../dist/pgtwin-migrate'))) {
    throw new Error('dist/pgtwin-migrate is missing: run `make binary` (make test does it)');
  }
  if (process.env.PGTWIN_CLUSTER_REUSE === '1' && existsSync(CLUSTER_JSON)) {
    execFileSync(rigScript, ['cluster', 'install-agent'], { stdio: 'inherit' });
    return () => {};
  }
  try {
    execFileSync(rigScript, ['cluster', 'up'], { stdio: 'inherit' });
  } catch (err) {
    // A half-built rig is ended at once: no teardown runs after a failed setup.
    execFileSync(rigScript, ['cluster', 'down'], { stdio: 'inherit' });
    throw err;
  }
  return () => {
    execFileSync(rigScript, ['cluster', 'down'], { stdio: 'inherit' });
  };
}
