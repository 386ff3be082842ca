/**
 * The one way this agent runs another program: execFile with an argument
 * list (never a shell), LC_ALL=C, and a timeout. Non-zero exits are results,
 * not exceptions; a program that cannot be started is.
 */
import { execFile } from 'node:child_process';
import { log } from './log';

export interface ExecResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface ExecOptions {
  readonly timeoutMs: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly cwd?: string;
  readonly maxBuffer?: number;
}

export class ProgramMissingError extends Error {
  constructor(readonly program: string) {
    super(`${program} not found on PATH`);
    this.name = 'ProgramMissingError';
  }
}

export function run(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024,
        env: { ...(opts.env ?? process.env), LC_ALL: 'C' },
        cwd: opts.cwd,
        encoding: 'utf8',
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        const elapsed = Date.now() - started;
        const err = error as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string; signal?: NodeJS.Signals }) | null;
        if (err && err.code === 'ENOENT') {
          reject(new ProgramMissingError(file));
          return;
        }
        if (err && typeof err.code === 'string') {
          reject(err);
          return;
        }
        const timedOut = Boolean(err?.killed) && elapsed >= opts.timeoutMs - 5;
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        log().debug(`exec ${file} ${args.join(' ')} -> ${timedOut ? 'timeout' : (code ?? err?.signal)} in ${elapsed} ms`);
        resolve({ code, signal: err?.signal ?? null, stdout, stderr, timedOut });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** First non-empty line of a program's stderr (or stdout), for one-line messages. */
export function firstLine(result: Pick<ExecResult, 'stderr' | 'stdout'>): string {
  const line = [...result.stderr.split('\n'), ...result.stdout.split('\n')].map((l) => l.trim()).find((l) => l !== '');
  return line ?? 'no output';
}
