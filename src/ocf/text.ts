/**
 * Text that leaves the process in places where its shape matters: log and
 * syslog lines, exit reasons and status output must stay one line each
 * whatever a database, table or parameter holds; commands a DBA copies and
 * pastes must stay one shell word per value.
 */

/**
 * Control characters made visible (\n, \r, \t, \xNN), so that a name or a
 * value can neither start a forged log line nor send terminal escapes.
 */
export function escapeControls(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const hex = c.charCodeAt(0).toString(16);
    return hex.length <= 2 ? `\\x${hex.padStart(2, '0')}` : `\\u${hex}`;
  });
}

/** A value as one POSIX shell word: as it is when that is safe, else single-quoted. */
export function shellWord(v: string): string {
  return /^[A-Za-z0-9_.,:/=@%+-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}
