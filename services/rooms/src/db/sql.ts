/**
 * The hot path's statements: each a single statement (most call a SQL function of the
 * migration `signaling_functions`), prepared once per pooled connection under its name and
 * run on node-postgres directly: one round trip, no query engine in between. Prisma stays
 * the schema, the migrations and every path that is not hot.
 */
import type pg from 'pg';
import { ProtocolError } from '@switchboard/protocol';

/** The deadline a piece of work must finish by, and the signal that fires at it. */
export interface Deadline {
  signal: AbortSignal;
  /** epoch ms */
  deadline: number;
}

/** A statement of the hot path: its name (prepared under it) and its text. */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

/** The errors the SQL functions raise (SQLSTATE), as protocol errors. */
const RAISED: Record<string, (detail: string | undefined) => ProtocolError> = {
  SBFUL: (d) => new ProtocolError('ROOM_IS_FULL', `capacity ${d ?? '?'}`),
  SBMAX: (d) => new ProtocolError('TOO_MANY_SESSIONS', `at most ${d ?? '?'}`),
  SBNRM: () => new ProtocolError('ROOM_NOT_FOUND'),
};

/** How long a cursor's ROLLBACK may take before its connection is given up. */
const ROLLBACK_TIMEOUT_MS = 5000;

/** Errors of the connection, not of the statement: the database is away for now. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

export class Sql {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /**
   * Run `statement` with `values`, bounded by `d`: rows, or a ProtocolError (TIMEOUT when
   * the deadline passed, SERVICE_UNAVAILABLE when the database is unreachable, or what a
   * SQL function raised). After a TIMEOUT the statement's outcome is unknown.
   */
  async query<R extends pg.QueryResultRow>(
    statement: Statement,
    values: readonly unknown[],
    d: Deadline,
  ): Promise<R[]> {
    d.signal.throwIfAborted();
    const config = {
      name: statement.name,
      text: statement.text,
      values: values as unknown[],
      // node-postgres stops waiting (the server may still finish the statement).
      query_timeout: Math.max(1, d.deadline - Date.now()),
    };
    try {
      const res = await this.#pool.query<R>(config);
      return res.rows;
    } catch (err) {
      throw sqlError(err);
    }
  }

  /**
   * `text`'s rows, as arrays of their columns' values, through a server-side cursor, in
   * batches, all of one read-only snapshot (a
   * REPEATABLE READ transaction on a connection of its own): `size()` says how many rows the
   * next FETCH takes, which is asked for before the batch before it is yielded. Bounded by
   * `d` (TIMEOUT, CANCELLED, SERVICE_UNAVAILABLE); when the reader stops early or fails,
   * the transaction is rolled back.
   */
  async *cursor(
    text: string,
    values: readonly unknown[],
    d: Deadline,
    size: () => number,
  ): AsyncGenerator<unknown[][], void, undefined> {
    d.signal.throwIfAborted();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw sqlError(err);
    }
    const run = async (q: string, v?: unknown[]): Promise<unknown[][]> => {
      // node-postgres stops waiting at the deadline (the server may still finish).
      const config = {
        text: q,
        values: v ?? [],
        rowMode: 'array' as const,
        query_timeout: Math.max(1, d.deadline - Date.now()),
      };
      try {
        return (await client.query<unknown[]>(config)).rows;
      } catch (err) {
        throw sqlError(err);
      }
    };
    // Settled into a value at once: a FETCH that fails while the reader is busy with the batch
    // before it is not an unhandled rejection; it is thrown when its turn comes.
    type Fetched = { rows: unknown[][] } | { err: unknown };
    const fetch = async (): Promise<Fetched> =>
      await run(`FETCH ${String(size())} FROM sb_cursor`).then(
        (rows) => ({ rows }),
        (err: unknown) => ({ err }),
      );
    let committed = false;
    let ahead: Promise<Fetched> | undefined;
    let broken: Error | undefined;
    try {
      await run('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await run(`DECLARE sb_cursor NO SCROLL CURSOR FOR ${text}`, values as unknown[]);
      ahead = fetch();
      for (;;) {
        const fetched = await ahead;
        ahead = undefined;
        if ('err' in fetched) throw fetched.err;
        const rows = fetched.rows;
        if (rows.length === 0) break;
        d.signal.throwIfAborted();
        ahead = fetch();
        yield rows;
      }
      await run('COMMIT');
      committed = true;
    } finally {
      if (!committed) {
        // A FETCH asked for ahead is abandoned with the transaction (its outcome, settled,
        // is dropped): what ended the read — the reader's error, its stopping early — is what
        // the caller sees.
        await ahead;
        try {
          const rollback = { text: 'ROLLBACK', query_timeout: ROLLBACK_TIMEOUT_MS };
          await client.query(rollback);
        } catch (err) {
          // The connection is unusable: the pool must not hand it out again.
          broken = err instanceof Error ? err : new Error(String(err));
        }
      }
      client.release(broken);
    }
  }
}

/** A node-postgres failure as a protocol error, when it is one; anything else as it is. */
export function sqlError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const { code, detail } = err as Error & { code?: unknown; detail?: unknown };
  if (typeof code === 'string') {
    const raised = RAISED[code];
    if (raised !== undefined) return raised(typeof detail === 'string' ? detail : undefined);
    if (UNAVAILABLE_CODES.has(code) || code.startsWith('08')) {
      return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
    }
  }
  if (err.message === 'Query read timeout') {
    return new ProtocolError('TIMEOUT', 'database statement', { cause: err });
  }
  if (
    /timeout exceeded when trying to connect|Connection terminated|connection is closed/i.test(
      err.message,
    )
  ) {
    return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
  }
  return err;
}
