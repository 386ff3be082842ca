/** Runs the built executable the way Pacemaker's executor does. */
import { spawn } from 'node:child_process';
import { AGENT } from './rig';

export interface AgentResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The last ocf-exit-reason line, as Pacemaker would keep it. */
  exitReason: string | undefined;
  ms: number;
}

export interface AgentOptions {
  instance?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  bin?: string;
  /** Pass no environment but the OCF variables (like `env -i`). */
  clean?: boolean;
  interval?: number;
}

export function runAgent(action: string, params: Record<string, string>, opts: AgentOptions = {}): Promise<AgentResult> {
  const env: NodeJS.ProcessEnv = {
    ...(opts.clean ? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } : process.env),
    OCF_ROOT: '/usr/lib/ocf',
    OCF_RA_VERSION_MAJOR: '1',
    OCF_RA_VERSION_MINOR: '1',
    OCF_RESOURCE_INSTANCE: opts.instance ?? 'migration-test',
    OCF_RESKEY_CRM_meta_timeout: String(opts.timeoutMs ?? 60_000),
    OCF_RESKEY_CRM_meta_interval: String(opts.interval ?? 0),
    ...opts.env,
  };
  for (const [k, v] of Object.entries(params)) env[`OCF_RESKEY_${k}`] = v;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(opts.bin ?? AGENT, [action], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const reasons = stderr.split('\n').filter((l) => l.startsWith('ocf-exit-reason:'));
      const last = reasons[reasons.length - 1];
      resolve({ code, stdout, stderr, exitReason: last?.slice('ocf-exit-reason:'.length), ms: Date.now() - started });
    });
  });
}
