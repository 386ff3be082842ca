import { describe, expect, it } from 'vitest';
import { loadConfig, parseBoolean, parseDatabaseList } from '../../src/ocf/config';
import { OcfError, OCF } from '../../src/ocf/exit-codes';
import { databaseToken, DEFAULT_PREFIXES, objectNames, tokenBudget } from '../../src/migration/names';

const BASE = {
  OCF_RESKEY_source_replication_vip: '192.0.2.104',
  OCF_RESKEY_target_replication_vip: '192.0.2.105',
};

function load(extra: Record<string, string>) {
  return loadConfig({ ...BASE, ...extra });
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OcfError);
    expect((err as OcfError).code).toBe(OCF.ERR_CONFIGURED);
    const message = (err as OcfError).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a configuration error');
}

const budget = tokenBudget(DEFAULT_PREFIXES);
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

describe('database list', () => {
  it('trims items and keeps their order', () => {
    expect(load({ OCF_RESKEY_databases: ' postgres , myapp,analytics ' }).databaseList).toEqual(['postgres', 'myapp', 'analytics']);
  });

  it('falls back to the legacy pgdatabase only when databases is empty', () => {
    const legacy = load({ OCF_RESKEY_pgdatabase: 'legacy_db' });
    expect(legacy.databaseList).toEqual(['legacy_db']);
    expect(legacy.usesLegacyPgdatabase).toBe(true);
    const both = load({ OCF_RESKEY_pgdatabase: 'legacy_db', OCF_RESKEY_databases: 'a,b' });
    expect(both.databaseList).toEqual(['a', 'b']);
    expect(both.usesLegacyPgdatabase).toBe(false);
    expect(load({ OCF_RESKEY_databases: '   ' }).databaseList).toEqual(['postgres']);
  });

  it.each([
    ['a,,b', /item 2 of "a,,b" is empty/],
    [',a', /item 1 of ",a" is empty/],
    ['a,', /item 2 of "a," is empty/],
    ['a, ,b', /item 2 of "a, ,b" is empty/],
    ['a,a', /"a" is listed twice \(items 1 and 2\)/],
    [' app , app', /"app" is listed twice/],
    ['App,x,App', /"App" is listed twice \(items 1 and 3\)/],
    [`ok,${'a'.repeat(64)}`, /is 64 bytes long; PostgreSQL names hold at most 63/],
    ['é'.repeat(32), /is 64 bytes long/],
    ['数'.repeat(22), /is 66 bytes long/],
  ])('refuses %j naming the offending item', (value, reason) => {
    expect(configError(() => load({ OCF_RESKEY_databases: value }))).toMatch(reason);
  });

  it('refuses a NUL byte in a name', () => {
    expect(configError(() => parseDatabaseList('a,b\0c'))).toMatch(/"b\\u0000c" contains a NUL byte/);
  });

  const hostile = [
    'my-app',
    'Tenant.1',
    'with space',
    "it's",
    'semi;colon',
    'back\\slash',
    '"quoted"',
    'dollar$1',
    'per%cent',
    'ünïcödé',
    '数据库',
    'emoji😀',
    'select',
    'DROP TABLE x; --',
    'tab\tinside',
    'a'.repeat(63),
    'é'.repeat(31) + 'x',
    'App',
    'app',
    'APP',
  ];

  it.each(hostile)('accepts %j and gives it a valid, deterministic token', (name) => {
    const cfg = load({ OCF_RESKEY_databases: name });
    expect(cfg.databaseList).toEqual([name]);
    const [o] = cfg.objects;
    expect(o?.token).toBe(databaseToken(name, budget));
    for (const objectName of [o!.forwardPub, o!.forwardSub, o!.forwardSlot, o!.reverseSub, o!.reverseSlot, o!.forwardDdlTrigger, o!.reverseDdlTrigger]) {
      expect(objectName).toMatch(SLOT_NAME);
      expect(Buffer.byteLength(objectName)).toBeLessThanOrEqual(63);
    }
  });

  it('gives every hostile name its own token, case variants included', () => {
    const cfg = load({ OCF_RESKEY_databases: hostile.join(',') });
    const tokens = cfg.objects.map((o) => o.token);
    expect(new Set(tokens).size).toBe(hostile.length);
  });

  it('keeps a name that is already a valid slot name as its token', () => {
    expect(databaseToken('app', budget)).toBe('app');
    expect(databaseToken('select', budget)).toBe('select');
    expect(databaseToken('tenant_1001', budget)).toBe('tenant_1001');
    expect(objectNames('myapp', DEFAULT_PREFIXES).forwardSub).toBe('pgtwin_migrate_forward_sub_myapp');
    expect(objectNames('myapp', DEFAULT_PREFIXES).forwardDdlTrigger).toBe('replicate_ddl_to_target_trigger_myapp');
  });

  it('hashes names that are not valid slot names, or too long for one', () => {
    expect(databaseToken('App', budget)).toMatch(/^app_[0-9a-f]{8}$/);
    expect(databaseToken('my-app', budget)).toMatch(/^my_app_[0-9a-f]{8}$/);
    expect(databaseToken('a'.repeat(63), budget)).toMatch(/^a+_[0-9a-f]{8}$/);
    expect(databaseToken('数据库', budget)).toMatch(/^db_[0-9a-f]{8}$/);
    expect(databaseToken('App', budget)).not.toBe(databaseToken('APP', budget));
  });

  it('refuses two databases whose object names would collide', () => {
    const hashed = databaseToken('App', budget);
    expect(configError(() => load({ OCF_RESKEY_databases: `App,${hashed}` }))).toMatch(/map to the same object names/);
  });
});

describe('other parameters', () => {
  it('applies the defaults of the parameter table', () => {
    const cfg = load({});
    expect(cfg.source_cluster).toBe('postgres-clone');
    expect(cfg.target_cluster).toBe('postgres-clone-18');
    expect(cfg.sourcePort).toBe(5432);
    expect(cfg.targetPort).toBe(5432);
    expect(cfg.migration_dbuser).toBe('pgmigrate');
    expect(cfg.cutover_ready).toBe(false);
    expect(cfg.sync_timeout).toBe(300);
    expect(cfg.quiesce_timeout).toBe(10);
    expect(cfg.sslmode).toBe('prefer');
    expect(cfg.source_node_role).toBe('Promoted');
    expect(cfg.schema_copy).toBe('auto');
    expect(cfg.vip_parameter).toBe('ip');
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('lets source_pgport and target_pgport override pgport', () => {
    const cfg = load({ OCF_RESKEY_pgport: '6000', OCF_RESKEY_target_pgport: '6018' });
    expect(cfg.sourcePort).toBe(6000);
    expect(cfg.targetPort).toBe(6018);
  });

  it.each(['0', '65536', '-1', '5432x', '54 32', '1e3'])('refuses port %j', (port) => {
    expect(configError(() => load({ OCF_RESKEY_pgport: port }))).toMatch(/pgport=.* is not a TCP port; use a number from 1 to 65535/);
  });

  it.each([
    ['yes', true], ['YES', true], ['True', true], ['1', true], ['on', true], ['ON', true],
    ['no', false], ['FALSE', false], ['0', false], ['off', false],
  ])('reads boolean %j as resource-agents does', (raw, value) => {
    expect(parseBoolean(raw)).toBe(value);
    expect(load({ OCF_RESKEY_cutover_ready: raw }).cutover_ready).toBe(value);
  });

  it('refuses a word that is not a boolean instead of guessing', () => {
    expect(configError(() => load({ OCF_RESKEY_cutover_ready: 'ture' }))).toBe('cutover_ready="ture" is not a boolean; use true or false');
  });

  it.each([
    ['Promoted', 'Promoted'], ['unpromoted', 'Unpromoted'], ['Master', 'Promoted'], ['slave', 'Unpromoted'],
  ])('reads source_node_role %j as %s', (raw, role) => {
    expect(load({ OCF_RESKEY_source_node_role: raw }).source_node_role).toBe(role);
  });

  it('refuses an unknown role, sslmode or schema_copy', () => {
    expect(configError(() => load({ OCF_RESKEY_source_node_role: 'primary' }))).toMatch(/is not one of Promoted, Unpromoted/);
    expect(configError(() => load({ OCF_RESKEY_sslmode: 'strict' }))).toMatch(/sslmode="strict" is not one of disable, allow, prefer, require, verify-ca, verify-full/);
    expect(load({ OCF_RESKEY_sslmode: 'VERIFY-FULL' }).sslmode).toBe('verify-full');
    expect(configError(() => load({ OCF_RESKEY_schema_copy: 'sometimes' }))).toMatch(/is not one of auto, never/);
  });

  it('checks counts and timeouts', () => {
    expect(configError(() => load({ OCF_RESKEY_lag_threshold: '-5' }))).toMatch(/lag_threshold="-5" is not a non-negative whole number/);
    expect(configError(() => load({ OCF_RESKEY_sync_timeout: '0' }))).toMatch(/sync_timeout="0" is not a whole number of at least 1/);
    expect(load({ OCF_RESKEY_quiesce_timeout: '0' }).quiesce_timeout).toBe(0);
  });

  it('requires the replication addresses', () => {
    expect(configError(() => loadConfig({ OCF_RESKEY_target_replication_vip: 'x' }))).toMatch(/^source_replication_vip is required/);
  });

  it('checks name prefixes and resource ids', () => {
    expect(configError(() => load({ OCF_RESKEY_publication_name: 'Bad-Prefix' }))).toMatch(/not a valid name prefix/);
    expect(configError(() => load({ OCF_RESKEY_subscription_name: 'x'.repeat(60) }))).toMatch(/prefixes are too long/);
    expect(configError(() => load({ OCF_RESKEY_subscription_name: 'pgtwin_migrate_forward_pub' }))).toMatch(/two object name prefixes are equal/);
    expect(configError(() => load({ OCF_RESKEY_source_cluster: 'bad cluster' }))).toMatch(/not a Pacemaker resource id/);
    expect(configError(() => load({ OCF_RESKEY_source_pgpassfile: 'relative/.pgpass' }))).toMatch(/not an absolute path/);
  });

  it('accepts anything for the unused monitor_interval', () => {
    expect(load({ OCF_RESKEY_monitor_interval: '10s' }).monitor_interval).toBe('10s');
  });
});
