/**
 * Transient node attributes (attrd): cheap, kept in memory by Pacemaker's
 * attribute manager, shown by `crm_mon -A`, gone at reboot. The monitor
 * publishes the migration's headline facts there, so a DBA sees them in
 * Pacemaker's own view without a CIB write per database.
 */
import { run, firstLine } from '../ocf/exec';
import { log } from '../ocf/log';

export async function setNodeAttribute(name: string, value: string, timeoutMs: number): Promise<void> {
  const r = await run('attrd_updater', ['--name', name, '--update', value], { timeoutMs });
  if (r.code !== 0) log().warn(`cannot publish node attribute ${name} (attrd_updater exit ${r.code}: ${firstLine(r)})`);
}

export async function deleteNodeAttribute(name: string, timeoutMs: number): Promise<void> {
  await run('attrd_updater', ['--name', name, '--delete'], { timeoutMs }).catch(() => undefined);
}
