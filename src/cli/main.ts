/**
 * Human commands (yargs): status, preflight, teardown, cutover. They call
 * the same library functions as the OCF actions; parameters come from the
 * migration resource in the CIB or from OCF_RESKEY_* variables.
 */
import yargs from 'yargs';
import { BUILD } from '../version';
import { cliContext } from './context';
import { resolvePlan } from '../migration/plan';
import { collectStatus, collectProofs } from '../migration/status';
import { preflight, formatFinding } from '../migration/preflight';
import { teardown } from '../migration/teardown';
import { phaseOf } from '../migration/cib-state';
import { renderStatus, renderProofs } from './render';
import { switchCommand } from './switch';
import { finishCommand } from './finish';
import { watchStatus } from './watch';
import { reportFailure } from '../ocf/run-action';
import { log } from '../ocf/log';
import { finish, guardExit } from '../ocf/watchdog';
import { escapeControls } from '../ocf/text';
import { OCF } from '../ocf/exit-codes';

type Common = { resource?: string; timeout: number };

/** The longest wait a timer can hold (2^31 - 1 ms), in seconds. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A number of seconds for `option`, or a one-line error that says what to give. */
export function seconds(option: string, min: number) {
  return (raw: unknown): number => {
    const v = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (String(raw).trim() === '' || !Number.isFinite(v) || v < min || v > MAX_SECONDS) {
      throw new Error(`--${option} ${JSON.stringify(String(raw))} is not a number of seconds from ${min} to ${MAX_SECONDS}; e.g. --${option} ${Math.max(min, 2)}`);
    }
    return v;
  };
}

async function guarded(action: string, fn: () => Promise<number>): Promise<void> {
  guardExit();
  let code: number;
  try {
    code = await fn();
  } catch (err) {
    code = reportFailure(err, log(), action);
  }
  await log().flush();
  finish(code);
}

function switchOptions<T>(y: import('yargs').Argv<T>) {
  return y
    .option('retry', { type: 'boolean', default: false, describe: 'after a failed switch: set cutover_ready=false, then true' })
    .option('wait', { type: 'boolean', default: false, describe: 'follow the switch until it completes or fails' })
    .option('wait-seconds', { type: 'string', default: 900, describe: 'how long --wait follows it', coerce: seconds('wait-seconds', 1) });
}

export async function runCli(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('pgtwin-migrate')
    .usage('$0 <command> [options]\n\nOCF actions: $0 {start|stop|monitor|reload-agent|validate-all|meta-data}, parameters from OCF_RESKEY_*')
    .option('resource', { alias: 'r', type: 'string', describe: 'migration resource id in the CIB (default: the only pgtwin-migrate resource)' })
    .option('timeout', { type: 'string', default: 120, describe: 'seconds the command may take', coerce: seconds('timeout', 1) })
    .command(
      'status',
      'per-database state: phase, subscription, tables, copy progress, lag',
      (y) =>
        y
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
          .option('watch', { alias: 'w', type: 'boolean', default: false, describe: 'redraw every --interval seconds (Ctrl-C ends)' })
          .option('interval', { type: 'string', default: 2, describe: 'seconds between two looks with --watch', coerce: seconds('interval', 0.5) })
          .option('proof', { type: 'boolean', default: false, describe: 'the proof of every completed cutover and failback (with --json: the whole record)' }),
      (args) =>
        guarded('status', async () => {
          const timeout = args.watch ? Number.MAX_SAFE_INTEGER / 1000 : args.timeout;
          const ctx = await cliContext('status', { ...(args as Common), timeout });
          const plan = await resolvePlan(ctx, { lenient: true });
          if (args.proof) {
            const proofs = await collectProofs(plan);
            process.stdout.write(args.json ? `${JSON.stringify(proofs, null, 2)}\n` : renderProofs(proofs));
            return 0;
          }
          if (args.watch) return watchStatus(plan, { json: args.json, intervalS: Math.max(0.5, args.interval) });
          const report = await collectStatus(plan);
          process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report, { bars: process.stdout.isTTY }));
          return report.databases.some((d) => d.state === 'broken') || report.reverse.some((d) => d.state === 'broken') ? 1 : 0;
        }),
    )
    .command(
      'preflight',
      'check both clusters for this migration (validate-all at depth 10)',
      (y) => y,
      (args) =>
        guarded('preflight', async () => {
          const ctx = await cliContext('preflight', args as Common);
          const { findings } = await preflight(await resolvePlan(ctx));
          for (const f of findings) process.stdout.write(`${f.level === 'error' ? 'ERROR  ' : 'WARNING'} ${escapeControls(formatFinding(f))}\n`);
          const errors = findings.filter((f) => f.level === 'error').length;
          process.stdout.write(`${errors} error(s), ${findings.length - errors} warning(s)\n`);
          return errors > 0 ? 1 : 0;
        }),
    )
    .command(
      'teardown',
      'remove every object of the migration from both clusters',
      (y) =>
        y
          .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'confirm: replication stops and a new start copies everything again' })
          .option('force', { type: 'boolean', default: false, describe: 'also in phase reverse or during a switch (both clusters end up taking writes)' }),
      (args) =>
        guarded('teardown', async () => {
          if (!args.yes) {
            process.stderr.write('teardown removes all replication of this migration from both clusters; a new start copies every table again.\nRun it again with --yes to go ahead.\n');
            return 2;
          }
          const ctx = await cliContext('teardown', args as Common);
          const plan = await resolvePlan(ctx, { lenient: true });
          // Past a cutover (or during a switch) the old side is fenced for a reason: production is on the other one.
          const phase = phaseOf(await plan.state.readAll());
          if (!args.force && (phase === 'reverse' || phase === 'finishing' || phase === 'cutover' || phase === 'failback')) {
            process.stderr.write(
              `teardown refused: migration ${plan.instance} is in phase ${phase}; removing the write fences now would let both clusters take writes. ` +
                `${phase === 'reverse' ? 'End the way back with pgtwin-migrate finish --yes' : phase === 'finishing' ? 'A finish is under way: pgtwin-migrate finish --yes carries it on' : 'Let the switch end (pgtwin-migrate status)'}, or add --force\n`,
            );
            return 1;
          }
          const report = await teardown(plan);
          for (const r of report.removed) process.stdout.write(`removed ${escapeControls(r)}\n`);
          for (const l of report.leftovers) process.stdout.write(`NOT REMOVED ${escapeControls(l)}\n`);
          process.stdout.write(
            report.leftovers.length === 0
              ? `teardown complete: ${report.removed.length} object(s) removed\n`
              : `teardown incomplete: ${report.leftovers.length} object(s) could not be reached; run it again when both clusters are up\n`,
          );
          return report.leftovers.length === 0 ? 0 : 1;
        }),
    )
    .command(
      'cutover',
      'move production to the target: the atomic cutover of all databases (cutover_ready=true)',
      (y) => switchOptions(y),
      (args) =>
        guarded('cutover', async () => {
          const ctx = await cliContext('cutover', { ...(args as Common), timeout: Math.max(args.timeout, args['wait-seconds'] + 60) });
          return switchCommand(await resolvePlan(ctx, { lenient: true }), 'cutover', { retry: args.retry, wait: args.wait, waitSeconds: args['wait-seconds'] });
        }),
    )
    .command(
      'failback',
      'move production back to the source: the same atomic operation the other way (cutover_ready false, then true)',
      (y) => switchOptions(y),
      (args) =>
        guarded('failback', async () => {
          const ctx = await cliContext('failback', { ...(args as Common), timeout: Math.max(args.timeout, args['wait-seconds'] + 60) });
          return switchCommand(await resolvePlan(ctx, { lenient: true }), 'failback', { retry: args.retry, wait: args.wait, waitSeconds: args['wait-seconds'] });
        }),
    )
    .command(
      'finish',
      'end the way back after a cutover: remove reverse replication and every object of the migration from both clusters',
      (y) =>
        y
          .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'confirm: failback is no longer possible afterwards' })
          .option('wait-seconds', { type: 'string', default: 600, describe: 'how long to follow a finish the running resource carries out', coerce: seconds('wait-seconds', 1) }),
      (args) =>
        guarded('finish', async () => {
          if (!args.yes) {
            process.stderr.write('finish removes the way back (reverse replication) and every object of the migration from both clusters; failback is impossible afterwards.\nRun it again with --yes to go ahead.\n');
            return 2;
          }
          const ctx = await cliContext('finish', { ...(args as Common), timeout: Math.max(args.timeout, args['wait-seconds'] + 60) });
          return finishCommand(await resolvePlan(ctx, { lenient: true }), args['wait-seconds']);
        }),
    )
    .version('version', 'print the version stamped at build time', `pgtwin-migrate ${BUILD}`)
    .alias('version', 'V')
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    // A wrong option or value: one line, no usage dump, no stack trace.
    .fail((msg, err) => {
      const text = (msg || err?.message || 'invalid command line').split('\n')[0];
      process.stderr.write(`pgtwin-migrate: ${escapeControls(text ?? '')}; see pgtwin-migrate --help\n`);
      process.exit(OCF.ERR_ARGS);
    })
    .parseAsync();
}
