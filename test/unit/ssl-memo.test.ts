/**
 * sslmode=prefer's memo (src/pg/ssl-memo.ts): a server that refused SSL is
 * asked without it for a minute, and no longer than the server agrees; a
 * refusal learnt while others wait is used by them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { preferSsl, forgetSslAnswers } from '../../src/pg/ssl-memo';

const REFUSED = 'The server does not support SSL connections';
const refused = (err: unknown) => String((err as Error).message).includes('does not support SSL');
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake server: how it answers a connection with and without SSL, and how often it was asked. */
function server(opts: { ssl: boolean; plainOnly?: boolean; hostsslOnly?: boolean; answerMs?: number }) {
  const asked = { ssl: 0, plain: 0 };
  const withSsl = async () => {
    asked.ssl++;
    await delay(opts.answerMs ?? 0);
    if (!opts.ssl) throw new Error(REFUSED);
    return 'tls';
  };
  const withoutSsl = async () => {
    asked.plain++;
    await delay(opts.answerMs ?? 0);
    if (opts.hostsslOnly) throw Object.assign(new Error('no pg_hba.conf entry for host, no encryption'), { code: '28000' });
    return 'plain';
  };
  return { asked, withSsl, withoutSsl, set: (o: Partial<typeof opts>) => Object.assign(opts, o) };
}

/** One connection to the fake server under the name `key`. */
const ask = (s: ReturnType<typeof server>, key: string) => preferSsl(key, s.withSsl, s.withoutSsl, refused);

describe('sslmode=prefer memo', () => {
  afterEach(() => {
    forgetSslAnswers();
    vi.useRealTimers();
  });

  it('asks a server that refused SSL without it afterwards', async () => {
    const s = server({ ssl: false });
    expect(await ask(s, 'a')).toBe('plain');
    expect(await ask(s, 'a')).toBe('plain');
    expect(s.asked).toEqual({ ssl: 1, plain: 2 });
  });

  it('connections made while the first asks use its answer', async () => {
    const s = server({ ssl: false, answerMs: 10 });
    const all = await Promise.all(Array.from({ length: 6 }, () => ask(s, 'b')));
    expect(all.every((x) => x === 'plain')).toBe(true);
    expect(s.asked.ssl).toBe(1);
  });

  it('keeps using SSL where the server accepts it', async () => {
    const s = server({ ssl: true });
    expect(await ask(s, 'c')).toBe('tls');
    expect(await ask(s, 'c')).toBe('tls');
    expect(s.asked).toEqual({ ssl: 2, plain: 0 });
  });

  it('forgets the refusal when the server behind the name turns a connection without SSL away, and asks with SSL', async () => {
    const s = server({ ssl: false });
    await ask(s, 'd');
    s.set({ ssl: true, hostsslOnly: true });
    expect(await ask(s, 'd')).toBe('tls');
    expect(await ask(s, 'd')).toBe('tls');
  });

  it('forgets after a minute', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const s = server({ ssl: false });
    await ask(s, 'e');
    vi.setSystemTime(Date.now() + 61_000);
    await ask(s, 'e');
    expect(s.asked.ssl).toBe(2);
  });

  it('learns nothing from a failure that is not a refusal of SSL', async () => {
    let down = true;
    const s = server({ ssl: false });
    const withSsl = async () => {
      if (down) throw new Error('connect ECONNREFUSED');
      return s.withSsl();
    };
    await expect(preferSsl('f', withSsl, s.withoutSsl, refused)).rejects.toThrow('ECONNREFUSED');
    down = false;
    expect(await preferSsl('f', withSsl, s.withoutSsl, refused)).toBe('plain');
    expect(s.asked).toEqual({ ssl: 1, plain: 1 });
  });

  it('a network failure of a connection without SSL is not taken for a changed server', async () => {
    const s = server({ ssl: false });
    await ask(s, 'g');
    const broken = async () => {
      throw new Error('connect ETIMEDOUT');
    };
    await expect(preferSsl('g', s.withSsl, broken, refused)).rejects.toThrow('ETIMEDOUT');
    expect(s.asked.ssl).toBe(1);
  });
});
