/**
 * Sequence values (bare, serial and identity sequences alike) carried from
 * source to target: logical replication does not replicate them.
 *
 * A sequence's state is two facts, read from the sequence relation itself:
 * its last value and whether that value was handed out (is_called). After
 * setval(s, v, false) or ALTER SEQUENCE … RESTART the next nextval returns v
 * itself; pg_sequences shows such a sequence's last_value as NULL, which
 * cannot tell v from "never used" — copying it from there reset the target
 * to its start value and duplicated keys after the cutover.
 */
import type pg from 'pg';

export interface SequenceValue {
  readonly schema: string;
  readonly name: string;
  /** The sequence's last_value (a bigint, as text). */
  readonly lastValue: string;
  /** false: nextval returns lastValue itself (new, setval(…, false), RESTART); true: it returns the next one. */
  readonly isCalled: boolean;
}

/**
 * Every sequence of the database in ONE query (the cutover reads them in its
 * read-only window), with no round trip per sequence. A sequence whose value
 * was handed out is read by pg_sequence_last_value (cheap); only the others
 * go through query_to_xml, which runs `SELECT last_value, is_called` on the
 * sequence inside the server. Its text is parsed here, so the server needs
 * no XML support beyond producing it. 1,000 sequences: about as fast as
 * pg_sequences was (see the sequences test).
 */
export async function readSequences(c: pg.Client): Promise<SequenceValue[]> {
  const { rows } = await c.query<{ nspname: string; relname: string; called_value: string | null; x: string | null }>(
    `SELECT n.nspname, c.relname, v.called_value,
            CASE WHEN v.called_value IS NULL
                 THEN query_to_xml(format('SELECT last_value, is_called FROM %I.%I', n.nspname, c.relname), false, true, '')::text END AS x
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      CROSS JOIN LATERAL (SELECT pg_sequence_last_value(c.oid)::text AS called_value) v
      WHERE c.relkind = 'S'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp%'
      ORDER BY 1, 2`,
  );
  return rows.map((r) => ({
    schema: r.nspname,
    name: r.relname,
    ...(r.called_value !== null ? { lastValue: r.called_value, isCalled: true } : parseSequenceRow(r.x ?? '', `${r.nspname}.${r.relname}`)),
  }));
}

/** The one row query_to_xml gives for `SELECT last_value, is_called FROM <sequence>`. */
export function parseSequenceRow(xml: string, what: string): { lastValue: string; isCalled: boolean } {
  const value = /<last_value>(-?\d+)<\/last_value>/.exec(xml)?.[1];
  const called = /<is_called>(true|false)<\/is_called>/.exec(xml)?.[1];
  if (value === undefined || called === undefined) throw new Error(`cannot read the state of sequence ${what} (got ${JSON.stringify(xml.slice(0, 200))})`);
  return { lastValue: value, isCalled: called === 'true' };
}

/**
 * Sets every given sequence on the target to the source's state, exactly
 * (setval(seq, last_value, is_called)), in one statement, and returns the
 * ones the target does not have (schema.name).
 */
export async function writeSequences(c: pg.Client, values: readonly SequenceValue[]): Promise<string[]> {
  if (values.length === 0) return [];
  const { rows } = await c.query<{ missing: string | null }>(
    `SELECT CASE WHEN s.oid IS NULL THEN format('%s.%s', x.schema, x.name) END AS missing,
            CASE WHEN s.oid IS NOT NULL THEN setval(s.oid, x.v, x.called) END
       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[]) AS x(schema, name, v, called)
       LEFT JOIN pg_namespace n ON n.nspname = x.schema
       LEFT JOIN pg_class s ON s.relnamespace = n.oid AND s.relname = x.name AND s.relkind = 'S'`,
    [values.map((v) => v.schema), values.map((v) => v.name), values.map((v) => v.lastValue), values.map((v) => v.isCalled)],
  );
  return rows.map((r) => r.missing).filter((m): m is string => m !== null);
}

/** Sequences whose target state (value or is_called) differs from the source's: empty when the copy is proven. */
export function sequenceMismatches(source: readonly SequenceValue[], target: readonly SequenceValue[]): string[] {
  const t = new Map(target.map((s) => [`${s.schema}.${s.name}`, s]));
  return source
    .filter((s) => {
      const other = t.get(`${s.schema}.${s.name}`);
      return other === undefined || other.lastValue !== s.lastValue || other.isCalled !== s.isCalled;
    })
    .map((s) => `${s.schema}.${s.name}`);
}
