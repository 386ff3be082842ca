/**
 * The password and an impostor (issue 9, item 5): a server that asks for
 * the password in clear text (pg_hba method "password") gets nothing unless
 * the agent has verified its certificate; verify-ca/verify-full work with a
 * CA file (sslrootcert); the subscriptions' own libpq is told the same.
 * Two servers started for this file, both with TLS, play the clusters: a
 * PostgreSQL 17 source that asks for clear-text passwords, a PostgreSQL 18
 * target with SCRAM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migration } from '../support/migration';
import { rig, sql } from '../support/rig';
import { startTempCluster, type TempCluster } from '../support/temp-cluster';

const DB = 'sec_tls';
const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** A CA, and a server certificate it signed for 127.0.0.1 (and one for another name). */
function makeCertificates(dir: string): { ca: string; otherCa: string; cert: string; key: string } {
  const p = (f: string) => join(dir, f);
  for (const name of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=pgtwin test ${name}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.crt`)]);
  }
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', p('server.key'), '-out', p('server.csr')]);
  writeFileSync(p('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p('san.ext'), '-out', p('server.crt')]);
  return { ca: p('ca.crt'), otherCa: p('other-ca.crt'), cert: p('server.crt'), key: p('server.key') };
}

describe('the migration password never goes to a server the agent has not verified', () => {
  let cluster: TempCluster;
  let targetCluster: TempCluster;
  let m: Migration;
  let certs: ReturnType<typeof makeCertificates>;
  const certDir = mkdtempSync(join(tmpdir(), 'pgtwin-sec-tls-'));

  beforeAll(async () => {
    certs = makeCertificates(certDir);
    cluster = await startTempCluster('sec-tls', { major: 17, port: 54431 });
    targetCluster = await startTempCluster('sec-tls-18', { major: 18, port: 54432 });
    // Each server's key and certificate, for its OS user; TLS on; clear-text passwords for the migration role on the source.
    const uid = Number(execFileSync('id', ['-u', rig().user], { encoding: 'utf8' }).trim());
    for (const c of [cluster, targetCluster]) {
      const s = c.server;
      for (const [from, to] of [[certs.cert, 'server.crt'], [certs.key, 'server.key']] as const) {
        writeFileSync(join(s.data, to), readFileSync(from));
        chownSync(join(s.data, to), uid, -1);
        chmodSync(join(s.data, to), 0o600);
      }
      appendFileSync(join(s.data, 'postgresql.conf'), "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    }
    const hba = readFileSync(join(cluster.server.data, 'pg_hba.conf'), 'utf8');
    writeFileSync(join(cluster.server.data, 'pg_hba.conf'), `host all pgmigrate 127.0.0.1/32 password\n${hba}`);
    for (const c of [cluster, targetCluster]) {
      c.stop();
      c.start();
      await sql(c.server, 'postgres', `CREATE DATABASE ${DB}`);
    }
    m = new Migration({
      instance: 'migration-sec-tls',
      databases: [DB],
      source: cluster.server,
      target: targetCluster.server,
      existingDatabases: [DB],
      // The certificates name 127.0.0.1, as verify-full checks.
      params: { source_host: '127.0.0.1', target_host: '127.0.0.1' },
    });
  });
  afterAll(async () => {
    cluster?.destroy();
    targetCluster?.destroy();
    rmSync(certDir, { recursive: true, force: true });
    rmSync(m.stateDir, { recursive: true, force: true });
    rmSync(m.rscTmp, { recursive: true, force: true });
  });

  const preflight = (params: Record<string, string>) => m.run('validate-all', params, { env: { OCF_CHECK_LEVEL: '10' } });
  const refusal = /^source primary 127\.0\.0\.1:54431 database "sec_tls": password not sent: the server asks for it in clear text/;
  const wholeLine =
    'source primary 127.0.0.1:54431 database "sec_tls": password not sent: the server asks for it in clear text and its certificate is not verified; use scram-sha-256 in its pg_hba.conf, or sslmode=verify-full with sslrootcert';

  it('refuses to send the password in clear text without TLS (sslmode=prefer, the default), saying why in one line', async () => {
    const r = await preflight({ sslmode: 'disable' });
    expect(r.code, r.stderr).toBe(6);
    expect(r.exitReason).toMatch(refusal);
    expect(r.stderr).toContain(wholeLine);
    const d = await preflight({});
    expect(d.code, d.stderr).toBe(6);
    expect(d.exitReason).toMatch(refusal);
  });

  it('refuses it over TLS whose certificate it did not verify (sslmode=require)', async () => {
    const r = await preflight({ sslmode: 'require' });
    expect(r.code, r.stderr).toBe(6);
    expect(r.exitReason).toMatch(refusal);
  });

  it('with verify-full and the CA that signed the servers, connects (the password goes over verified TLS)', async () => {
    const r = await preflight({ sslmode: 'verify-full', sslrootcert: certs.ca });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/pre-flight: 1 database\(s\) ready/);
  });

  it('verify-full refuses a server whose certificate another CA signed, and verify-ca without a CA file', async () => {
    const r = await preflight({ sslmode: 'verify-full', sslrootcert: certs.otherCa });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/source primary[^\n]*(self.signed|certificate|unable to verify)/i);
    const none = await preflight({ sslmode: 'verify-ca' });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/sslmode=verify-ca needs the CA certificate that signed the server's; set sslrootcert/);
  });

  it("the subscriptions' connection strings tell their servers not to send it in clear text either", async () => {
    const conninfo = (await import('../../src/pg/connection')).subscriptionConninfo;
    const info = conninfo({ host: '127.0.0.1', port: cluster.server.port, database: DB, user: 'pgmigrate', sslmode: 'prefer', applicationName: 'sec_probe', subscriberMajor: 18 });
    expect(info).toMatch(/require_auth=!password/);
    // The target's own server (PostgreSQL 18, its own password file) connecting with that string: refused by its libpq.
    const err = await sql(m.target, DB, `CREATE SUBSCRIPTION sec_tls_probe CONNECTION '${info.replace(/'/g, "''")}' PUBLICATION p WITH (connect = true, create_slot = false, enabled = false)`).then(
      () => undefined,
      (e: Error) => e,
    );
    await sql(m.target, DB, 'DROP SUBSCRIPTION IF EXISTS sec_tls_probe').catch(() => undefined);
    expect(err?.message ?? 'connected').toMatch(/password|require_auth|authentication/);
    expect(err?.message ?? 'connected').not.toMatch(/password authentication failed/);
    const verified = conninfo({ host: '127.0.0.1', port: 5432, database: DB, user: 'u', sslmode: 'verify-full', sslrootcert: certs.ca, applicationName: 'x', subscriberMajor: 18 });
    expect(verified).toContain(`sslrootcert='${certs.ca}'`);
    expect(verified).not.toMatch(/require_auth/);
  });
});
