import { describe, expect, it } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parameterTableMarkdown, manPage } from '../../src/ocf/docs';
import { withParameterTable } from '../../scripts/gen-docs';
import { PARAMS } from '../../src/ocf/params';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('documentation generated from the parameter table', () => {
  it('the README parameter table is current (run `make docs` after changing src/ocf/params.ts)', () => {
    expect(withParameterTable(readme)).toBe(readme);
  });

  it('the README table lists every parameter, its default and whether a change reloads or restarts', () => {
    const table = parameterTableMarkdown();
    for (const p of PARAMS) {
      const row = table.split('\n').find((l) => l.startsWith(`| \`${p.name}\` |`));
      expect(row, p.name).toBeDefined();
      expect(row).toContain(p.default === '' ? '(empty)' : `\`${p.default}\``);
      expect(row).toContain('reloadable' in p && p.reloadable ? '| yes |' : '| restart |');
    }
  });

  it('the man page renders with man(1) and describes every parameter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgtwin-man-'));
    writeFileSync(join(dir, 'pgtwin-migrate.7'), manPage('1.2.3', '2026-11-25'));
    const r = spawnSync('man', ['-l', join(dir, 'pgtwin-migrate.7')], { encoding: 'utf8', env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '200', LC_ALL: 'C.UTF-8' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^PGTWIN-MIGRATE\(7\)/);
    for (const p of PARAMS) expect(r.stdout).toContain(p.name);
    expect(r.stdout).toContain('pgtwin-migrate 1.2.3');
  });
});
