/** The rig's Pacemaker, as the tests drive it: crm, crm_mon, cibadmin. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseXml, findAll, findFirst, byTagId } from '../../src/cluster/xml';
import { waitFor } from './migration';

const exec = promisify(execFile);
const env = { ...process.env, LC_ALL: 'C' };

export async function crm(args: string[]): Promise<string> {
  const r = await exec('crm', args, { env, maxBuffer: 16 << 20 });
  return r.stdout;
}

/** `crm configure primitive <id> ocf:heartbeat:pgtwin-migrate params … op …`, as a DBA would type it. */
export async function configureMigrationPrimitive(id: string, params: Record<string, string>, meta: Record<string, string> = {}): Promise<void> {
  const words = [
    'configure',
    'primitive',
    id,
    'ocf:heartbeat:pgtwin-migrate',
    'params',
    // Given as separate arguments, crm takes each word as it is: no shell quoting.
    ...Object.entries(params).map(([k, v]) => `${k}=${v}`),
    'op', 'start', 'timeout=600s', 'interval=0s',
    'op', 'stop', 'timeout=60s', 'interval=0s',
    'op', 'monitor', 'timeout=30s', 'interval=10s',
    'meta', 'target-role=Started', ...Object.entries(meta).map(([k, v]) => `${k}=${v}`),
  ];
  // crmsh commits by patching the CIB it read; a concurrent CIB change makes the
  // patch fail (and crmsh 4.4's error report crash). A DBA would run it again.
  for (let attempt = 1; ; attempt++) {
    try {
      await crm(words);
      return;
    } catch (err) {
      const exists = await exec('cibadmin', ['--query', '--xpath', `//primitive[@id='${id}']`], { env }).then(() => true, () => false);
      if (exists) return;
      if (attempt === 4) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

export async function deletePrimitive(id: string): Promise<void> {
  await exec('crm_resource', ['--resource', id, '--meta', '--set-parameter', 'target-role', '--parameter-value', 'Stopped'], { env }).catch(() => undefined);
  await waitFor(`${id} stopped`, async () => (await resourceState(id)).role === 'Stopped' || (await resourceState(id)).role === 'absent', 90_000, 500).catch(() => undefined);
  await exec('cibadmin', ['--delete', '--xml-text', `<primitive id="${id}"/>`], { env }).catch(() => undefined);
  await exec('crm_resource', ['--cleanup', '--resource', id], { env }).catch(() => undefined);
}

export interface ResourceState {
  role: string;
  failed: boolean;
  /** exit reasons of failed operations of this resource */
  failures: string[];
}

export async function resourceState(id: string): Promise<ResourceState> {
  const doc = parseXml((await exec('crm_mon', ['-1', '--output-as=xml', '--inactive'], { env, maxBuffer: 16 << 20 })).stdout);
  const rsc = findFirst(doc, (e) => e.tag === 'resource' && e.attrs.id === id);
  // crm_mon's XML escapes exit reasons once more than its text output does.
  const unescape = (t: string) => t.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const failures = findAll(doc, (e) => e.tag === 'failure' && (e.attrs.op_key ?? '').startsWith(`${id}_`)).map((f) => unescape(f.attrs.exitreason ?? f.attrs.exitstatus ?? ''));
  return { role: rsc?.attrs.role ?? 'absent', failed: rsc?.attrs.failed === 'true', failures };
}

export async function targetRole(id: string): Promise<string | undefined> {
  const r = await exec('crm_resource', ['--resource', id, '--meta', '--get-parameter', 'target-role'], { env }).catch(() => undefined);
  return r?.stdout.trim();
}

export async function cibQuery(): Promise<ReturnType<typeof parseXml>> {
  return parseXml((await exec('cibadmin', ['--query'], { env, maxBuffer: 16 << 20 })).stdout);
}

export function vipAddresses(cib: ReturnType<typeof parseXml>): { production: string | undefined; target: string | undefined } {
  const ip = (id: string) => findFirst(findFirst(cib, byTagId('primitive', id))!, (e) => e.tag === 'nvpair' && e.attrs.name === 'ip')?.attrs.value;
  return { production: ip('postgres-vip'), target: ip('postgres-vip-18') };
}

/** The migration's record: its crm_config property set, and the live set on the resource where there is one. */
export function migrationRecord(cib: ReturnType<typeof parseXml>, instance: string): Record<string, string> {
  const sets = [findFirst(cib, byTagId('cluster_property_set', `pgtwin-migrate-${instance}`)), findFirst(cib, byTagId('meta_attributes', `pgtwin-migrate-${instance}-live`))];
  return Object.fromEntries(sets.flatMap((set) => (set?.children ?? []).map((n) => [n.attrs.name ?? '', n.attrs.value ?? ''])));
}
