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
