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
  const running = phase === 'reverse' || phase === 'finishing' ? runState(await readStatus(15_000), plan.instance) : undefined;
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
  const where = running.nodes.join(', ');
  if (phase === 'reverse') {
    await setInstanceAttribute(plan.instance, 'finish', 'true', 10_000);
    out(`finish=true set on ${plan.instance} (running on ${where}); Pacemaker finishes through reload-agent`);
  } else {
    out(`a finish is under way; ${plan.instance}'s monitor on ${where} carries it on`);
  }
  const t0 = Date.now();
  const until = t0 + waitSeconds * 1000;
  let last: string | undefined = phase;
  while (Date.now() < until) {
    await sleep(1_000);
    let now: string;
    try {
      now = phaseOf(await plan.state.readAll()) ?? 'forward';
    } catch {
      continue; // one unreadable CIB is no answer; the finish goes on
    }
    if (now === 'finished') {
      out('migration finished: nothing of it is left on either cluster; the resource stops');
      return 0;
    }
    if (now !== last) out(`${new Date().toISOString()} phase ${now}`);
    last = now;
    if (now !== 'reverse' && now !== 'finishing') {
      out(`finish was not carried out: the migration is in phase ${now} now (the agent sets finish=false then); see pgtwin-migrate status`);
      return 1;
    }
    if (now === 'reverse' && Date.now() - t0 > 60_000) {
      out(`Pacemaker has not begun the finish within 60 s (phase still reverse): is ${plan.instance} running and managed? (crm_mon -1); finish=true stays set and acts when it runs`);
      return 1;
    }
  }
  out(`finish under way but not done after ${waitSeconds} s (phase ${last}): the resource's monitor on ${where} carries it on and its log names what is left; pgtwin-migrate status shows the phase`);
  return 1;
}
