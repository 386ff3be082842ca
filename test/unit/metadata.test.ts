import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metaDataXml, ACTIONS } from '../../src/ocf/metadata';
import { PARAMS } from '../../src/ocf/params';
import { VERSION } from '../../src/version';
import { parseXml, findAll } from '../../src/cluster/xml';

const xml = metaDataXml(VERSION);
const RA_DIR = '/usr/share/resource-agents';

describe('meta-data', () => {
  it('is the checked-in agent-metadata/pgtwin-migrate.xml (run `make metadata` after changing the table)', () => {
    expect(readFileSync(new URL('../../agent-metadata/pgtwin-migrate.xml', import.meta.url), 'utf8')).toBe(xml);
  });

  it('is OCF 1.1 with every parameter of the table, typed and defaulted', () => {
    const doc = parseXml(xml);
    expect(findAll(doc, (e) => e.tag === 'version')[0]?.text).toBe('1.1');
    const params = findAll(doc, (e) => e.tag === 'parameter');
    expect(params.map((p) => p.attrs.name)).toEqual(PARAMS.map((p) => p.name));
    for (const p of params) {
      const spec = PARAMS.find((s) => s.name === p.attrs.name)!;
      const content = p.children.find((c) => c.tag === 'content')!;
      expect(content.attrs.type).toBe(spec.type);
      expect(content.attrs.default).toBe(spec.default);
      expect(p.children.find((c) => c.tag === 'longdesc')!.text.length).toBeGreaterThan(20);
      expect(p.children.find((c) => c.tag === 'shortdesc')!.text.length).toBeGreaterThan(5);
    }
  });

  it('marks cutover_ready and the other live-tunable parameters reloadable, and nothing that shapes replication', () => {
    const reloadable = findAll(parseXml(xml), (e) => e.tag === 'parameter' && e.attrs.reloadable === '1').map((e) => e.attrs.name);
    expect(reloadable).toContain('cutover_ready');
    expect(reloadable).toEqual(expect.arrayContaining(['cutover_debug', 'lag_threshold', 'sync_timeout', 'quiesce_timeout', 'teardown_on_stop']));
    for (const structural of ['databases', 'source_cluster', 'target_cluster', 'source_replication_vip', 'publication_name', 'sslmode', 'ddl_replication']) {
      expect(reloadable).not.toContain(structural);
    }
  });

  it('marks pgdatabase deprecated in favour of databases, and the seed-required parameters required', () => {
    const doc = parseXml(xml);
    const pgdatabase = findAll(doc, (e) => e.tag === 'parameter' && e.attrs.name === 'pgdatabase')[0]!;
    expect(pgdatabase.children.find((c) => c.tag === 'shortdesc')!.text).toMatch(/deprecated: use databases/);
    const required = findAll(doc, (e) => e.tag === 'parameter' && e.attrs.required === '1').map((e) => e.attrs.name);
    expect(required).toEqual(['source_cluster', 'target_cluster', 'source_replication_vip', 'target_replication_vip']);
  });

  it('announces the actions with their timeouts', () => {
    const actions = findAll(parseXml(xml), (e) => e.tag === 'action').map((a) => `${a.attrs.name}:${a.attrs.timeout}:${a.attrs.interval ?? ''}:${a.attrs.depth ?? ''}`);
    expect(actions).toEqual(['start:600s::', 'stop:60s::', 'monitor:30s:10s:0', 'reload-agent:30s::', 'meta-data:5s::', 'validate-all:30s::0', 'validate-all:120s::10']);
    expect(ACTIONS).toHaveLength(7);
  });

  it('validates against resource-agents ra-api-1.dtd with xmllint --valid', () => {
    const r = spawnSync('xmllint', ['--noout', '--valid', '-'], { input: xml, cwd: RA_DIR, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('meets resource-agents metadata.rng in everything but the OCF 1.1 reloadable attribute it predates', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgtwin-md-'));
    writeFileSync(join(dir, 'md.xml'), xml);
    const strict = spawnSync('xmllint', ['--noout', '--relaxng', `${RA_DIR}/metadata.rng`, join(dir, 'md.xml')], { encoding: 'utf8' });
    const errors = strict.stderr.split('\n').filter((l) => /validity error/.test(l));
    const reloadableCount = PARAMS.filter((p) => 'reloadable' in p && p.reloadable).length;
    expect(errors).toHaveLength(reloadableCount);
    for (const e of errors) expect(e).toMatch(/Invalid attribute reloadable for element parameter/);
    // The installed schema plus exactly one optional attribute accepts it whole.
    const rng = readFileSync(`${RA_DIR}/metadata.rng`, 'utf8').replace(
      /(<element name="parameter">\s*<attribute name="name" \/>)/,
      '$1<optional><attribute name="reloadable"><ref name="boolean-values" /></attribute></optional>',
    );
    writeFileSync(join(dir, 'ocf-1.1.rng'), rng);
    const extended = execFileSync('xmllint', ['--noout', '--relaxng', join(dir, 'ocf-1.1.rng'), join(dir, 'md.xml')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(extended).toBe('');
  });
});
