import { describe, expect, it } from 'vitest';
import { withoutEntries } from '../../src/pg/schema';

// pg_restore --list prints one entry per line: "dumpId; catalog oid DESC namespace tag owner".
const LIST = [
  ';',
  '; Archive created at 2026-12-01 14:00:00 UTC',
  '215; 1259 16390 TABLE public orders app',
  '3301; 2620 16420 TRIGGER public orders pgtwin_migrate_fence app',
  '3302; 3466 16430 EVENT TRIGGER - pgtwin_migrate_fence_ddl postgres',
  '3303; 2620 16421 TRIGGER public pgtwin_migrate_fence pgtwin_migrate_fence app',
  '3304; 0 0 COMMENT public TABLE orders app',
].join('\n');

describe("the schema copy's table of contents", () => {
  it("leaves out exactly the agent's entries, by catalog and object oid", () => {
    const out = withoutEntries(LIST, new Set(['2620 16420', '3466 16430'])).split('\n');
    expect(out).toContain('215; 1259 16390 TABLE public orders app');
    expect(out).toContain('3303; 2620 16421 TRIGGER public pgtwin_migrate_fence pgtwin_migrate_fence app');
    expect(out).toContain('3304; 0 0 COMMENT public TABLE orders app');
    expect(out.some((l) => l.includes('16420') || l.includes('16430'))).toBe(false);
    expect(out.filter((l) => l.startsWith(';'))).toHaveLength(2);
  });

  it('never takes a name for an entry: a name that looks like one changes nothing', () => {
    const tricky = '216; 1259 16391 TABLE public 3301; 2620 16420 x app';
    expect(withoutEntries(tricky, new Set(['2620 16420']))).toBe(tricky);
  });
});
