/** `pgtwin-migrate cutover-worker --kind cutover|failback --reservation <lease> [--recover]`: the detached switch process. */
import { readOcfEnv } from '../../ocf/env';
import { Logger, setLogger } from '../../ocf/log';
import { Deadline } from '../../ocf/deadline';
import { loadConfig, parseBoolean } from '../../ocf/config';
import { guardExit, finish } from '../../ocf/watchdog';
import { localNodeName } from '../../cluster/attributes';
import { resolvePlan } from '../plan';
import { CutoverRun } from './worker';
import { openCutoverLog } from './cutover-log';

function option(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runWorker(argv: readonly string[]): Promise<void> {
  guardExit();
  const env = readOcfEnv(process.env);
  const log = new Logger(env);
  setLogger(log);
  let code = 0;
  try {
    const cfg = loadConfig(process.env);
    if (cfg.cutover_debug || parseBoolean(process.env.OCF_RESKEY_cutover_debug ?? '')) log.enableDebug();
    // The worker is not bound by the launching monitor's timeout; its steps have their own.
    const deadline = new Deadline(6 * 3600_000);
    const plan = await resolvePlan({ cfg, env, log, deadline }, { lenient: true });
    const cutoverLog = openCutoverLog(plan.stateDir);
    log.addSink(cutoverLog.sink);
    const kind = option(argv, '--kind') === 'failback' ? 'failback' : 'cutover';
    const run = new CutoverRun(plan, await localNodeName(10_000), cutoverLog.path, kind, { reservation: option(argv, '--reservation') ?? '' });
    process.on('SIGTERM', () => {
      log.warn(`${kind}: stop requested`);
      run.requestStop();
    });
    try {
      const outcome = argv.includes('--recover') ? await run.recover() : await run.run();
      log.info(`${kind} worker ends: ${outcome}`);
    } finally {
      await run.close();
    }
  } catch (err) {
    log.err(`switch worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    code = 1;
  }
  await log.flush();
  finish(code);
}
