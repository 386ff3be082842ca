/**
 * Sequence values (bare, serial and identity sequences alike) carried from
 * source to target: logical replication does not replicate them.
 */
import type pg from 'pg';

export interface SequenceValue {
  readonly schema: string;
  readonly name: string;
  /** null: never used (nextval will return its start value). */
  readonly lastValue: string | null;
}

export async function readSequences(c: pg.Client): Promise<SequenceValue[]> {
  const { rows } = await c.query<{ schemaname: string; sequencename: string; last_value: string | null }>(
    `SELECT schemaname, sequencename, last_value::text FROM pg_sequences
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
  );
  return rows.map((r) => ({ schema: r.schemaname, name: r.sequencename, lastValue: r.last_value }));
}

/**
 * Sets every given sequence on the target to the source's value (a sequence
 * the source never used is reset to its start) and returns the ones the
 * target does not have.
 */
export async function writeSequences(c: pg.Client, values: readonly SequenceValue[]): Promise<string[]> {
  if (values.length === 0) return [];
  const { rows: missing } = await c.query<{ n: string }>(
    `SELECT format('%I.%I', s, n) AS n FROM unnest($1::text[], $2::text[]) AS x(s, n)
      WHERE to_regclass(format('%I.%I', s, n)) IS NULL`,
    [values.map((v) => v.schema), values.map((v) => v.name)],
  );
  const absent = new Set(missing.map((m) => m.n));
  await c.query(
    `SELECT CASE WHEN v IS NULL
                 THEN setval(format('%I.%I', s, n)::regclass, (SELECT start_value FROM pg_sequences WHERE schemaname = s AND sequencename = n), false)
                 ELSE setval(format('%I.%I', s, n)::regclass, v::bigint, true) END
       FROM unnest($1::text[], $2::text[], $3::text[]) AS x(s, n, v)
      WHERE to_regclass(format('%I.%I', s, n)) IS NOT NULL`,
    [values.map((v) => v.schema), values.map((v) => v.name), values.map((v) => v.lastValue)],
  );
  return [...absent];
}

/** Sequences whose target value differs from the source's: empty when the copy is proven. */
export function sequenceMismatches(source: readonly SequenceValue[], target: readonly SequenceValue[]): string[] {
  const t = new Map(target.map((s) => [`${s.schema}.${s.name}`, s.lastValue]));
  return source.filter((s) => t.get(`${s.schema}.${s.name}`) !== s.lastValue).map((s) => `${s.schema}.${s.name}`);
}
