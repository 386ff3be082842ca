/**
 * Secret hygiene. Every line that leaves the process (log, exit reason, state
 * file, cutover log) goes through `redact`, which removes passwords the agent
 * has read (registered when a password file is read) and password-looking
 * fragments of connection strings a server or library may echo back.
 */
const secrets = new Set<string>();

export function registerSecret(secret: string): void {
  // Very short values would redact ordinary words; such passwords are still
  // never written by the agent itself, only not scrubbed from foreign text.
  if (secret.length >= 4) secrets.add(secret);
}

const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  // conninfo keyword form: password=secret or password='se cret'
  [/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1****'],
  // URI form: postgres://user:secret@host
  [/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1****@'],
];

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('****');
  for (const [re, to] of PATTERNS) out = out.replace(re, to);
  return out;
}
