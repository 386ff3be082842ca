/**
 * `pgtwin-migrate finish --yes`. While the migration resource runs, finish is
 * the resource's own act: the command sets finish=true on it and Pacemaker
 * applies it with reload-agent, serialised with the monitor on the
 * resource's node, so that no monitor that read phase `reverse` a moment
 * earlier "repairs" the fences finish has just removed. The command follows
 * it to phase `finished`. Only where the resource runs nowhere does the
 * command finish by itself (no monitor runs then).
 */
import type { Plan } from '../migration/plan';
import { finish } from '../migration/finish';
import { phaseOf } from '../migration/cib-state';
import { readStatus } from '../cluster/crm-mon';
import { runState } from '../cluster/running';
import { setInstanceAttribute } from '../cluster/resources';
import { sleep } from '../migration/parallel';
import { escapeControls } from '../ocf/text';

const out = (line: string) => process.stdout.write(`${escapeControls(line)}\n`);

export async function finishCommand(plan: Plan, waitSeconds: number): Promise<number> {
  const phase = phaseOf(await plan.state.readAll());
  const running = phase === 'reverse' ? runState(await readStatus(15_000), plan.instance) : undefined;
  if (!running || running.nodes.length === 0) {
    // Stopped (or not in phase reverse, where finish says why it cannot): done here.
    const report = await finish(plan);
    for (const r of report.removed) out(`removed ${r}`);
    for (const l of report.leftovers) out(`NOT REMOVED ${l}`);
    out(
      report.finished
        ? 'migration finished: nothing of it is left on either cluster; the resource stops'
        : `finish incomplete: ${report.leftovers.length} object(s) left; run it again when both clusters are reachable`,
    );
    return report.finished ? 0 : 1;
  }
  await setInstanceAttribute(plan.instance, 'finish', 'true', 10_000);
  out(`finish=true set on ${plan.instance} (running on ${running.nodes.join(', ')}); Pacemaker finishes through reload-agent`);
  const until = Date.now() + waitSeconds * 1000;
  while (Date.now() < until) {
    await sleep(1_000);
    if (phaseOf(await plan.state.readAll()) === 'finished') {
      out('migration finished: nothing of it is left on either cluster; the resource stops');
      return 0;
    }
  }
  out(`not finished after ${waitSeconds} s: the resource's monitor keeps trying; see pgtwin-migrate status and its log on ${running.nodes.join(', ')}`);
  return 1;
}
