/**
 * What sslmode=prefer learnt of each server (host and port) in this process:
 * whether it refused SSL. libpq's prefer goes on in the refused connection;
 * the pg client cannot, so every refusal costs a second connection and a
 * second backend fork (about 8 ms of the server's CPU on the rig). The first
 * connection to a server asks; connections made meanwhile wait briefly for
 * its answer (a refusal comes back within one round trip), and later ones go
 * straight without SSL where it was refused.
 *
 * The memo is short-lived (a minute) and never trusted over the server's own
 * word: a connection without SSL that the server turns away (a pg_hba entry
 * for hostssl only, a server behind a name that changed) forgets it and asks
 * again with SSL. An address meant to move between servers (the production
 * address the switch probes) is never remembered. prefer protects from
 * nothing an impostor could not refuse anyway; require and the verify modes
 * never come here.
 */

const MEMO_MS = 60_000;
/** How long a connection waits for the first one's answer before asking itself (at most a quarter of its timeout). */
const WAIT_MS = 100;

interface Answer {
  readonly at: number;
  /** true: refused; false: SSL works; undefined: nothing learnt. */
  readonly refused: Promise<boolean | undefined>;
}

const answers = new Map<string, Answer>();

/** The promise's value, or undefined when it takes longer than `ms`. */
function firstOf<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A failure the server itself gave (SQLSTATE class 28: no pg_hba entry, authentication failed), not the network. */
function turnedAway(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('28');
}

/**
 * Opens a connection under sslmode=prefer with what this process learnt:
 * `withSsl` and `withoutSsl` each make one attempt (within `timeoutMs`);
 * `refusedSsl` tells a refusal of SSL from any other failure.
 */
export async function preferSsl<C>(
  server: string,
  withSsl: () => Promise<C>,
  withoutSsl: () => Promise<C>,
  refusedSsl: (err: unknown) => boolean,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<C> {
  const waitMs = Math.min(WAIT_MS, timeoutMs / 4);
  let known = answers.get(server);
  if (known && Date.now() - known.at > MEMO_MS) {
    answers.delete(server);
    known = undefined;
  }
  let answer: (refused: boolean | undefined) => void = () => undefined;
  let mine: Answer | undefined;
  if (!known) {
    mine = { at: Date.now(), refused: new Promise((resolve) => (answer = resolve)) };
    answers.set(server, mine);
  } else if ((await firstOf(known.refused, waitMs)) === true) {
    try {
      return await withoutSsl();
    } catch (err) {
      if (!turnedAway(err)) throw err;
      // The server turned a connection without SSL away: what was learnt no longer holds.
      if (answers.get(server) === known) answers.delete(server);
    }
  }
  const forget = () => {
    if (mine && answers.get(server) === mine) answers.delete(server);
  };
  try {
    const client = await withSsl();
    answer(false);
    return client;
  } catch (err) {
    if (!refusedSsl(err)) {
      forget();
      answer(undefined);
      throw err;
    }
    answer(true);
    return withoutSsl();
  }
}

/** Forgets everything learnt (tests). */
export function forgetSslAnswers(): void {
  answers.clear();
}
