/**
 * A PostgreSQL server of the rig's kind, started for one test (wal_level,
 * capacity or availability the shared servers must not change), run by the
 * rig's unprivileged user and ended by PID.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, mkdirSync, appendFileSync } from 'node:fs';
import { rig, type RigServer } from './rig';
import { sql } from './rig';

export interface TempCluster {
  readonly server: RigServer;
  stop(): void;
  start(): void;
  destroy(): void;
}

let nextPort = 54400;

function asUser(args: string[], env: Record<string, string> = {}): string {
  const r = rig();
  return execFileSync('runuser', ['-u', r.user, '--', 'env', `HOME=${r.dir}/home`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface TempClusterOptions {
  major?: 17 | 18 | 15;
  settings?: Record<string, string>;
  /** A fixed TCP port, so test files running at the same time never pick the same one (default: 54400 upwards). */
  port?: number;
}

export async function startTempCluster(name: string, opts: TempClusterOptions = {}): Promise<TempCluster> {
  const r = rig();
  const base = r.servers[`pg${opts.major ?? 17}`];
  const dir = `${r.dir}/tmp/${name}`;
  const data = `${dir}/data`;
  const socket = `${dir}/run`;
  const port = opts.port ?? nextPort++;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(socket, { recursive: true });
  execFileSync('chown', ['-R', `${r.user}:`, dir]);
  asUser([`${base.bindir}/initdb`, '-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8']);
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${socket}'`,
    wal_level: 'logical',
    max_replication_slots: '40',
    max_wal_senders: '40',
    max_worker_processes: '40',
    max_logical_replication_workers: '30',
    shared_buffers: '16MB',
    fsync: 'off',
    ...opts.settings,
  };
  appendFileSync(`${data}/postgresql.conf`, Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
  const server: RigServer = { major: base.major, host: '127.0.0.1', port, socket, bindir: base.bindir, data, log: `${dir}/server.log` };
  const cluster: TempCluster = {
    server,
    start() {
      asUser([`${base.bindir}/pg_ctl`, '-D', data, '-l', server.log, '-w', '-t', '60', 'start'], { PGPASSFILE: r.serverPgpass });
    },
    stop() {
      if (!existsSync(`${data}/postmaster.pid`)) return;
      try {
        asUser([`${base.bindir}/pg_ctl`, '-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      } catch {
        const pid = Number(readFileSync(`${data}/postmaster.pid`, 'utf8').split('\n')[0]);
        if (pid > 0) process.kill(pid, 'SIGKILL');
      }
    },
    destroy() {
      cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cluster.start();
  const pw = readFileSync(r.passwordFile, 'utf8').trim();
  await sql(server, 'postgres', `SELECT 1`);
  await sql(server, 'postgres', `CREATE ROLE pgmigrate LOGIN SUPERUSER REPLICATION PASSWORD '${pw.replace(/'/g, "''")}'`);
  return cluster;
}
