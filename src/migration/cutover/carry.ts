/**
 * Sequences carried from the old side to the new one once writes are fenced
 * (logical replication does not carry them), every value verified and
 * recorded in the proof.
 */
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import { proofOf } from './proof';
import { readSequences, writeSequences, sequenceMismatches } from '../../pg/sequences';

export async function copySequences(ctx: CutoverContext): Promise<void> {
  const { move } = ctx;
  let total = 0;
  await ctx.eachDatabase('copying sequences', async (o) => {
    const from = await ctx.sessions.get(o, move.from);
    const to = await ctx.sessions.get(o, move.to);
    const values = await readSequences(from);
    const missing = await writeSequences(to, values);
    if (missing.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence(s) missing on the ${move.to}: ${missing.slice(0, 5).join(', ')}`);
    const mismatched = sequenceMismatches(values, await readSequences(to));
    if (mismatched.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence values differ after the copy: ${mismatched.slice(0, 5).join(', ')}`);
    proofOf(ctx.proof, o.database).sequences = values.map((v) => ({ name: `${v.schema}.${v.name}`, lastValue: v.lastValue, isCalled: v.isCalled }));
    total += values.length;
  });
  ctx.log.info(`${move.kind}: ${total} sequence value(s) copied and verified`);
}
