/**
 * The `ocf-exit-reason:` line Pacemaker shows in crm_mon's "Failed Resource
 * Actions". Pacemaker keeps 128 bytes of it, so the line is folded to one
 * line and cut at a character boundary, most useful words first.
 */
import { redact } from './redact';
import { escapeControls } from './text';

export const EXIT_REASON_PREFIX = 'ocf-exit-reason:';
export const EXIT_REASON_MAX_BYTES = 128;

export function formatExitReason(reason: string): string {
  const oneLine = escapeControls(redact(reason).replace(/\s*[\r\n]+\s*/g, ' ').trim());
  const bytes = Buffer.from(oneLine, 'utf8');
  if (bytes.length <= EXIT_REASON_MAX_BYTES) return oneLine;
  // Cut to 125 bytes plus "..." without splitting a multi-byte character.
  let end = EXIT_REASON_MAX_BYTES - 3;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}...`;
}

export function writeExitReason(reason: string, stream: NodeJS.WritableStream = process.stderr): void {
  stream.write(`${EXIT_REASON_PREFIX}${formatExitReason(reason)}\n`);
}
