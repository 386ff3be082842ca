/** Human commands (yargs). Filled in by the operator-facing issues. */
import { BUILD } from '../version';

export async function runCli(argv: string[]): Promise<void> {
  if (argv[0] === '--version' || argv[0] === '-V') {
    process.stdout.write(`pgtwin-migrate ${BUILD}\n`);
    return;
  }
  process.stderr.write(`unknown command ${argv[0] ?? ''}\n`);
  process.exitCode = 3;
}
