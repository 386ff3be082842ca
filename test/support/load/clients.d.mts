/** Types of clients.mjs (plain JavaScript, shared with bench/). */

export declare const WRITER_SCHEMA: string;
export declare const WRITER_SEED: string;
export declare const PGBENCH_HISTORY_KEY: string;
export declare const PGBENCH_STATE_SQL: string;

export interface ServerIdentity {
  /** pg_control_system().system_identifier: the cluster (a primary and its standbys share it). */
  sysid: string;
  /** cluster_name: the node's server (the rig sets pg<major>-<node>). */
  name: string;
}

export interface WriteRecord {
  db: string;
  worker: number;
  op: 'insert' | 'update' | 'delete' | 'tx' | 'connect';
  seq?: number;
  token?: string;
  payload?: string;
  key?: number;
  rowCount?: number;
  sentAt: number;
  doneAt: number;
  ok: boolean;
  /** The connection was lost before the answer: the write may or may not have been done. */
  ambiguous: boolean;
  sqlstate?: string;
  message?: string;
  server: ServerIdentity | null;
}

export interface PgbenchLine {
  kind: 'tx' | 'segment';
  segment: number;
  doneAt?: number;
  client?: number;
  latencyUs?: number;
  startedAt?: number;
  endedAt?: number;
  code?: number | null;
  committed?: number;
  aborted?: number;
  /** Stuck far past its time and killed: its log (what it committed) is lost. */
  killed?: boolean;
  stderr?: string[];
}

export interface ClientProcess<R> {
  pid: number | undefined;
  records(): R[];
  /** SIGTERM, wait for the process to finish its current work, return everything it recorded. */
  stop(timeoutMs?: number): Promise<R[]>;
}

export interface StartOptions {
  /** Run in the network (and mount, UTS) namespace of this process. */
  namespacePid?: number;
  password?: string;
}

export interface WriterConfig {
  host: string;
  port: number;
  user: string;
  databases: string[];
  workers?: number;
  ratePerWorker?: number;
  out: string;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  /** Worker numbers start here (a second writer on the same tables). */
  workerBase?: number;
}

export interface PgbenchConfig {
  pgbench: string;
  host: string;
  port: number;
  user: string;
  database: string;
  clients?: number;
  rate?: number;
  segmentSeconds?: number;
  dir: string;
  out: string;
}

export interface WriterRows {
  items: Array<{ token: string; payload: string }>;
  events: Array<{ token: string }>;
  log: Array<{ token: string }>;
  counters: Array<{ key: number; n: string }>;
}

export interface PgbenchState {
  accounts: string;
  branches: string;
  tellers: string;
  history: string;
  transactions: string;
}

export interface Outage {
  db: string;
  ms: number;
  from: number | undefined;
  to: number | undefined;
}

export declare function readJsonl<T = unknown>(path: string): T[];
export declare function startWriter(cfg: WriterConfig, opts?: StartOptions): ClientProcess<WriteRecord>;
export declare function startPgbench(cfg: PgbenchConfig, opts?: StartOptions): ClientProcess<PgbenchLine>;
export declare function readWriterRows(query: (sql: string) => Promise<any[]>): Promise<WriterRows>;
export declare function writerProblems(records: WriteRecord[], db: string, rows: WriterRows): string[];
export declare function writerSummary(records: WriteRecord[]): {
  attempts: number;
  acknowledged: number;
  refused: number;
  inDoubt: number;
  connectFailures: number;
  byCluster: Record<string, number>;
};
export declare function twoWritableClusters(records: WriteRecord[]): string[];
export declare function outages(records: WriteRecord[]): Outage[];
export declare function pgbenchSummary(lines: PgbenchLine[]): {
  committed: number;
  inDoubt: number;
  segments: number;
  killed: number;
  longestGap: { ms: number; from: number | undefined; to: number | undefined };
};
export declare function pgbenchProblems(lines: PgbenchLine[], state: PgbenchState, before?: number): string[];
