/**
 * Brings the rig up once for the integration suite and down afterwards.
 * PGTWIN_RIG_REUSE=1 uses a rig that is already up (and leaves it up), for
 * quick local iteration.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { RIG_JSON } from './rig';

const rigScript = resolve(__dirname, '../../scripts/rig.sh');

export default function setup(): () => void {
  if (!existsSync(resolve(__dirname, '../../dist/pgtwin-migrate'))) {
    throw new Error('dist/pgtwin-migrate is missing: run `make binary` (make test does it)');
  }
  if (process.env.PGTWIN_RIG_REUSE === '1' && existsSync(RIG_JSON)) return () => {};
  execFileSync(rigScript, ['up'], { stdio: 'inherit' });
  return () => {
    execFileSync(rigScript, ['down'], { stdio: 'inherit' });
  };
}
