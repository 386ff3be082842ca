#!/usr/bin/env node
/**
 * PostgreSQL's own pgbench (TPC-B) as a second, independent client, run as its
 * own process (on the cluster rig: inside the client namespace, through the
 * production address). pgbench gives up on a client at its first error and
 * exits when none is left, so it runs in short segments, started again at
 * once until SIGTERM/SIGINT; the segment running then is let finish (its
 * transaction log is complete only when pgbench exits by itself).
 *
 *   node pgbench-loop.mjs CONFIG_JSON      (password in PGPASSWORD)
 *
 * CONFIG_JSON: { pgbench, host, port, user, database, clients, rate, segmentSeconds, dir, out }.
 * Every committed transaction (from pgbench's --log) and every segment (exit
 * code, clients aborted = transactions left in doubt, killed when stuck far
 * past its time) becomes a JSON line in `out`.
 */
import { spawn } from 'node:child_process';
import { openSync, writeSync, closeSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = openSync(cfg.out, 'a');
const record = (r) => writeSync(out, `${JSON.stringify(r)}\n`);
let running = true;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => (running = false));
mkdirSync(cfg.dir, { recursive: true });

/**
 * The connection as a conninfo string (pgbench expands its database argument):
 * a connection to an address nobody holds, or one whose server vanished
 * without a reset, fails in seconds instead of TCP's minutes.
 */
const conninfo = [
  `host=${cfg.host}`, `port=${cfg.port}`, `user=${cfg.user}`, `dbname=${cfg.database}`,
  'connect_timeout=2', 'tcp_user_timeout=4000', 'keepalives=1', 'keepalives_idle=2', 'keepalives_interval=1', 'keepalives_count=2',
].join(' ');

function segment(n) {
  const prefix = join(cfg.dir, `seg${n}`);
  const seconds = cfg.segmentSeconds ?? 2;
  const args = [
    '-n', '-c', String(cfg.clients ?? 2), '-j', '1',
    '-T', String(seconds),
    ...(cfg.rate ? ['-R', String(cfg.rate)] : []),
    '-l', `--log-prefix=${prefix}`,
    conninfo,
  ];
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cfg.pgbench, args, { cwd: cfg.dir, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killed = false;
    // A segment far past its time is stuck (a server that vanished without a trace): end it.
    // Its log is lost with it, so what it committed is unknown (the checks allow for it).
    const watchdog = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, (seconds + 20) * 1000);
    child.stdout.on('data', () => undefined);
    child.stderr.on('data', (d) => (stderr += d.toString()));
    child.on('close', (code) => {
      clearTimeout(watchdog);
      let committed = 0;
      for (const f of readdirSync(cfg.dir).filter((x) => x.startsWith(`seg${n}.`))) {
        for (const line of readFileSync(join(cfg.dir, f), 'utf8').split('\n')) {
          // client_id transaction_no time script_no time_epoch time_us [schedule_lag]
          const p = line.trim().split(/\s+/);
          if (p.length < 6 || p[2] === 'failed' || p[2] === 'skipped') continue;
          record({ kind: 'tx', segment: n, client: Number(p[0]), doneAt: Number(p[4]) * 1000 + Math.floor(Number(p[5]) / 1000), latencyUs: Number(p[2]) });
          committed++;
        }
        rmSync(join(cfg.dir, f), { force: true });
      }
      const aborted = (stderr.match(/client \d+ aborted/g) ?? []).length;
      const connectFailed = /connection to server .* failed|could not connect/.test(stderr) && committed === 0 ? 1 : 0;
      record({ kind: 'segment', segment: n, startedAt, endedAt: Date.now(), code, killed, committed, aborted, connectFailed, stderr: stderr.split('\n').filter((l) => /aborted|error|fatal/i.test(l)).slice(0, 5) });
      resolve(undefined);
    });
  });
}

for (let n = 0; running; n++) {
  const t0 = Date.now();
  await segment(n);
  // A segment that failed at once (no server on the address) is tried again soon, not in a tight loop.
  if (running && Date.now() - t0 < 200) await new Promise((r) => setTimeout(r, 200));
}
closeSync(out);
