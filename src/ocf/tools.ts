/** Finding the programs the agent needs, on PATH, without a shell. */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const PACEMAKER_TOOLS = ['crm_mon', 'crm_resource', 'crm_attribute', 'crm_node', 'cibadmin', 'attrd_updater'] as const;

export function which(program: string, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | undefined {
  if (program.includes('/')) return isExecutable(program) ? program : undefined;
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function missingTools(tools: readonly string[] = PACEMAKER_TOOLS): string[] {
  return tools.filter((t) => which(t) === undefined);
}
