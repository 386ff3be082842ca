import { describe, expect, it } from 'vitest';
import { formatExitReason, EXIT_REASON_MAX_BYTES } from '../../src/ocf/exit-reason';
import { redact, registerSecret } from '../../src/ocf/redact';
import { Deadline, actionDeadline } from '../../src/ocf/deadline';
import { readOcfEnv, isProbe, baseInstance } from '../../src/ocf/env';

describe('exit reason', () => {
  it('is one line of at most 128 bytes, cut at a character boundary', () => {
    expect(formatExitReason('line one\nline two\r\n  three')).toBe('line one line two three');
    const long = formatExitReason('database "数据库数据库" '.repeat(20));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(EXIT_REASON_MAX_BYTES);
    expect(long.endsWith('...')).toBe(true);
    expect(long).not.toContain('\uFFFD');
  });

  it('never carries a password', () => {
    registerSecret('s3cr3t-pa55');
    expect(formatExitReason('connect failed: password authentication for s3cr3t-pa55')).not.toContain('s3cr3t-pa55');
    expect(redact("host=a password='x y' dbname=b")).toBe('host=a password=**** dbname=b');
    expect(redact('password=hunter2 user=x')).toBe('password=**** user=x');
    expect(redact('postgres://pgmigrate:hunter2@db:5432/app')).toBe('postgres://pgmigrate:****@db:5432/app');
  });
});

describe('deadline', () => {
  it('gives each step a share of what is left and keeps a reserve to report', () => {
    let now = 0;
    const d = new Deadline(30_000, () => now);
    expect(d.stepMs(5_000)).toBe(5_000);
    now = 27_000;
    expect(d.remainingMs()).toBe(3_000);
    expect(d.stepMs(5_000)).toBe(100);
    now = 20_000;
    expect(d.stepMs(60_000)).toBe(7_000);
    now = 31_000;
    expect(d.expired()).toBe(true);
  });

  it('takes the timeout Pacemaker passed, else the meta-data default', () => {
    expect(actionDeadline('monitor', 5_000).totalMs).toBe(5_000);
    expect(actionDeadline('start', undefined).totalMs).toBe(600_000);
    expect(actionDeadline('stop', undefined).totalMs).toBe(60_000);
  });
});

describe('OCF environment', () => {
  it('detects probes and reads the check level', () => {
    const env = readOcfEnv({ OCF_RESKEY_CRM_meta_interval: '0', OCF_CHECK_LEVEL: '10', OCF_RESOURCE_INSTANCE: 'mig:1' });
    expect(isProbe('monitor', env)).toBe(true);
    expect(isProbe('start', env)).toBe(false);
    expect(env.checkLevel).toBe(10);
    expect(baseInstance(env)).toBe('mig');
    const recurring = readOcfEnv({ OCF_RESKEY_CRM_meta_interval: '10000', OCF_RESKEY_CRM_meta_timeout: '30000' });
    expect(isProbe('monitor', recurring)).toBe(false);
    expect(recurring.timeoutMs).toBe(30_000);
  });

  it('logs like resource-agents: syslog only with a facility, none means none', () => {
    expect(readOcfEnv({ HA_LOGFACILITY: 'daemon' }).logFacility).toBe('daemon');
    expect(readOcfEnv({ HA_LOGFACILITY: 'none' }).logFacility).toBeUndefined();
    expect(readOcfEnv({ HA_debug: '1' }).debug).toBe(true);
    expect(readOcfEnv({}).rscTmp).toBe('/run/resource-agents');
  });
});
