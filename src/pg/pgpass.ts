/**
 * Password lookup in a libpq password file, per connection (the source and
 * target clusters may use different files), with the `pgpass` package's own
 * parsing, matching and permission rules. Passwords found are registered
 * for redaction and never leave this process.
 */
import { readFileSync, statSync } from 'node:fs';
import helper from 'pgpass/lib/helper';
import { registerSecret } from '../ocf/redact';
import { shellWord } from '../ocf/text';

export interface PassLookup {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
}

export type PassResult =
  | { readonly ok: true; readonly password: string }
  | { readonly ok: false; readonly problem: 'missing-file' | 'insecure-file' | 'no-entry'; readonly message: string };

type Loaded = { ok: true; lines: string[] } | Extract<PassResult, { ok: false }>;

// One read per file and process: an action connects to many databases.
const files = new Map<string, Loaded>();

function load(file: string): Loaded {
  let stats;
  try {
    stats = statSync(file);
  } catch {
    return { ok: false, problem: 'missing-file', message: `password file ${file} does not exist; create it (mode 0600)` };
  }
  // Silence the library's own console warnings: the agent reports the problem itself.
  helper.warnTo(null);
  if (!helper.usePgPass(stats, file)) {
    return { ok: false, problem: 'insecure-file', message: `password file ${file} is not a plain file of mode 0600; chmod 600 ${shellWord(file)}` };
  }
  return { ok: true, lines: readFileSync(file, 'utf8').split(/\r?\n/) };
}

export function lookupPassword(file: string, q: PassLookup): PassResult {
  let loaded = files.get(file);
  if (!loaded) {
    loaded = load(file);
    files.set(file, loaded);
  }
  if (!loaded.ok) return loaded;
  const wanted = { host: q.host, port: String(q.port), database: q.database, user: q.user };
  for (const line of loaded.lines) {
    if (line.trimStart().startsWith('#')) continue;
    const entry = helper.parseLine(line);
    if (entry && helper.isValidEntry(entry) && helper.match(wanted, entry)) {
      registerSecret(entry.password);
      return { ok: true, password: entry.password };
    }
  }
  return {
    ok: false,
    problem: 'no-entry',
    message: `no entry for ${q.host}:${q.port}:${q.database}:${q.user} in ${file}; add one (see README, .pgpass)`,
  };
}
