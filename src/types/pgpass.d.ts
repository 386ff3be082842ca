declare module 'pgpass/lib/helper' {
  interface Entry {
    host: string;
    port: string;
    database: string;
    user: string;
    password: string;
  }
  const helper: {
    warnTo(stream: NodeJS.WritableStream | null): void;
    usePgPass(stats: import('node:fs').Stats, fname?: string): boolean;
    parseLine(line: string): Entry | null;
    isValidEntry(entry: Entry): boolean;
    match(connInfo: Partial<Record<'host' | 'port' | 'database' | 'user', string>>, entry: Entry): boolean;
  };
  export default helper;
}
