/**
 * Identifiers and literals reach SQL only through node-postgres' own
 * escaping; values go as $n parameters wherever the statement allows them.
 */
import pg from 'pg';

export const ident = (name: string): string => pg.escapeIdentifier(name);
export const literal = (value: string): string => pg.escapeLiteral(value);
export const qualified = (schema: string, name: string): string => `${ident(schema)}.${ident(name)}`;

/** The agent's own schema in every migrated database, on both clusters. */
export const AGENT_SCHEMA = 'pgtwin_migrate';
