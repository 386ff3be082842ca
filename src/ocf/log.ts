/**
 * Logging as resource-agents' ocf_log does it: syslog through `logger` when
 * HA_LOGFACILITY is set, appended to HA_LOGFILE when set, stderr when neither
 * is; debug lines only with HA_debug=1 (or cutover_debug). Every line is
 * redacted before it leaves the process.
 */
import { appendFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import type { OcfEnv } from './env';
import { redact } from './redact';
import { escapeControls } from './text';

export type Level = 'crit' | 'err' | 'warn' | 'info' | 'debug';

const LABEL: Record<Level, string> = { crit: 'CRIT', err: 'ERROR', warn: 'WARNING', info: 'INFO', debug: 'DEBUG' };
const SYSLOG_SEVERITY: Record<Level, number> = { crit: 2, err: 3, warn: 4, info: 6, debug: 7 };

export type Sink = (level: Level, line: string) => void;

function haDate(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())}_${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const RANK: Record<Level, number> = { crit: 0, err: 1, warn: 2, info: 3, debug: 4 };

export interface LoggerOptions {
  /** Least severe level written to stderr when neither syslog nor a log file is set (commands for people: warn). */
  readonly stderrLevel?: Level;
}

export class Logger {
  private syslog: ChildProcess | undefined;
  private syslogBroken = false;
  private readonly sinks: Sink[] = [];
  private debugEnabled: boolean;
  readonly tag: string;

  constructor(
    private readonly env: Pick<OcfEnv, 'instance' | 'debug' | 'logFacility' | 'logFile' | 'debugLogFile'>,
    private readonly options: LoggerOptions = {},
  ) {
    this.tag = `pgtwin-migrate(${env.instance})[${process.pid}]`;
    this.debugEnabled = env.debug;
  }

  enableDebug(on = true): void {
    this.debugEnabled = this.debugEnabled || on;
  }

  addSink(sink: Sink): void {
    this.sinks.push(sink);
  }

  crit(msg: string): void { this.write('crit', msg); }
  err(msg: string): void { this.write('err', msg); }
  warn(msg: string): void { this.write('warn', msg); }
  info(msg: string): void { this.write('info', msg); }
  debug(msg: string): void { if (this.debugEnabled) this.write('debug', msg); }

  private write(level: Level, msg: string): void {
    // One line per message: a name or value with a newline cannot forge another.
    const text = escapeControls(redact(`${LABEL[level]}: ${msg}`));
    for (const sink of this.sinks) sink(level, text);
    const stamped = `${this.tag}:\t${haDate()} ${text}\n`;
    if (level === 'debug' && this.env.debugLogFile) this.append(this.env.debugLogFile, stamped);
    if (this.env.logFacility) this.toSyslog(level, text);
    if (this.env.logFile) this.append(this.env.logFile, stamped);
    const quiet = this.options.stderrLevel !== undefined && RANK[level] > RANK[this.options.stderrLevel] && !this.debugEnabled;
    if (!this.env.logFacility && !this.env.logFile && !quiet) process.stderr.write(stamped);
  }

  private append(file: string, line: string): void {
    try {
      appendFileSync(file, line, { mode: 0o640 });
    } catch {
      process.stderr.write(line);
    }
  }

  /** One `logger` child per process; each line carries its own severity prefix. */
  private toSyslog(level: Level, text: string): void {
    if (this.syslogBroken) {
      process.stderr.write(`${this.tag}: ${text}\n`);
      return;
    }
    if (!this.syslog) {
      this.syslog = spawn('logger', ['-t', this.tag, '--prio-prefix', '-p', `${this.env.logFacility}.info`], {
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { ...process.env, LC_ALL: 'C' },
      });
      this.syslog.on('error', () => {
        this.syslogBroken = true;
      });
      this.syslog.stdin?.on('error', () => {
        this.syslogBroken = true;
      });
    }
    for (const line of text.split('\n')) this.syslog.stdin?.write(`<${SYSLOG_SEVERITY[level]}>${line}\n`);
  }

  /** Hands every pending syslog line to `logger` and waits (bounded) for it to exit. */
  async flush(timeoutMs = 2000): Promise<void> {
    const child = this.syslog;
    if (!child) return;
    this.syslog = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, timeoutMs);
      timer.unref();
      child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin?.end();
    });
  }
}

let current: Logger | undefined;

/** The process-wide logger; the dispatcher creates it from the OCF environment. */
export function log(): Logger {
  if (!current) current = new Logger({ instance: 'pgtwin-migrate', debug: false, logFacility: undefined, logFile: undefined, debugLogFile: undefined });
  return current;
}

export function setLogger(logger: Logger): void {
  current = logger;
}
