/**
 * Entry point of the single executable. Pacemaker calls `pgtwin-migrate
 * <action>`; people call `pgtwin-migrate <command> [options]`. meta-data and
 * usage are answered before anything else is loaded or checked.
 */
import { metaDataXml } from './ocf/metadata';
import { OCF } from './ocf/exit-codes';
import { OCF_ACTIONS, CLI_COMMANDS, usageText } from './ocf/usage';
import { VERSION } from './version';

async function main(argv: string[]): Promise<void> {
  const action = argv[0] ?? '';
  if (action === 'meta-data') {
    process.stdout.write(metaDataXml(VERSION));
    process.exitCode = OCF.SUCCESS;
    return;
  }
  if (action === 'usage' || action === 'help') {
    process.stdout.write(usageText());
    process.exitCode = OCF.SUCCESS;
    return;
  }
  if ((OCF_ACTIONS as readonly string[]).includes(action)) {
    const { runAction } = await import('./ocf/run-action');
    await runAction(action);
    return;
  }
  if (action === 'cutover-worker') {
    const { runWorker } = await import('./migration/cutover/entry');
    await runWorker(argv.slice(1));
    return;
  }
  if ((CLI_COMMANDS as readonly string[]).includes(action) || action.startsWith('-')) {
    const { runCli } = await import('./cli/main');
    await runCli(argv);
    return;
  }
  process.stderr.write(usageText());
  process.stderr.write(`ocf-exit-reason:unknown action ${JSON.stringify(action).slice(0, 60)}; see usage\n`);
  process.exitCode = OCF.ERR_UNIMPLEMENTED;
}

void main(process.argv.slice(2));
