/**
 * `status --watch`: on a terminal, the table redrawn in place with a progress
 * bar per database during the initial copy and the cutover step while one
 * runs; otherwise (a pipe, a log) one plain block per look.
 */
import type { Plan } from '../migration/plan';
import { collectStatus } from '../migration/status';
import { renderStatus } from './render';
import { sleep } from '../migration/parallel';

const CLEAR = '\x1b[H\x1b[2J';

export async function watchStatus(plan: Plan, opts: { json: boolean; intervalS: number }): Promise<number> {
  const tty = Boolean(process.stdout.isTTY) && !opts.json;
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
  });
  while (!stop) {
    const report = await collectStatus(plan);
    if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else if (tty) process.stdout.write(`${CLEAR}${new Date().toISOString()}  (every ${opts.intervalS} s, Ctrl-C ends)\n${renderStatus(report, { bars: true })}`);
    else process.stdout.write(`--- ${new Date().toISOString()}\n${renderStatus(report)}`);
    if (report.phase === 'finished' && !tty) break;
    await sleep(opts.intervalS * 1000);
  }
  return 0;
}
