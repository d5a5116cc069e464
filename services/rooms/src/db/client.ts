import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { ProtocolError } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import { Prisma, PrismaClient } from '../generated/prisma/client.ts';
import { Sql, type Deadline } from './sql.ts';

export type Db = PrismaClient;
export type Tx = Prisma.TransactionClient;

/** An interactive transaction bounded by `d` (see Membership.transaction). */
export type Transaction = <T>(d: Deadline, work: (tx: Tx) => Promise<T>) => Promise<T>;

/** `now()` in UTC as `timestamp(3)`: how Prisma stores DateTime in these columns. */
export const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

/**
 * The rooms service's database: one pg pool of `poolMax` connections, used by the Prisma
 * client (schema, administration, everything that is not the hot path) and by `sql`, the
 * hot path's prepared statements (see sql.ts).
 */
export interface Database {
  prisma: Db;
  sql: Sql;
  /** Close the Prisma client, then the pool. */
  close(): Promise<void>;
}

export function openDatabase(databaseUrl: string, poolMax: number, log: Logger): Database {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolMax,
    connectionTimeoutMillis: 5000,
  });
  // An idle connection the server closed (a restart, a failover): the pool replaces it.
  pool.on('error', (err) => {
    log.warn({ err }, 'an idle database connection failed');
  });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    sql: new Sql(pool),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/** One round trip to PostgreSQL. */
export async function pingDb(db: Db): Promise<boolean> {
  await db.$queryRaw`SELECT 1`;
  return true;
}

/** Driver errors that mean "the database is away for now", not "this request is wrong". */
const UNAVAILABLE_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TlsConnectionError',
]);

/** Database failures as protocol errors: a ProtocolError thrown inside passes unchanged. */
export function dbError(err: unknown): unknown {
  if (err instanceof ProtocolError) return err;
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    // P2028: the transaction hit its deadline (could not start, or ran out of time).
    if (err.code === 'P2028') {
      return new ProtocolError('TIMEOUT', 'database transaction', { cause: err });
    }
    if (err.code === 'P1001' || err.code === 'P1017' || UNAVAILABLE_KINDS.has(adapterKind(err))) {
      return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
    }
  }
  if (err instanceof Prisma.PrismaClientInitializationError) {
    return new ProtocolError('SERVICE_UNAVAILABLE', 'database unreachable', { cause: err });
  }
  return err;
}

/** The driver adapter's error kind carried in a Prisma error's meta, if any. */
function adapterKind(err: Prisma.PrismaClientKnownRequestError): string {
  const meta = err.meta as { driverAdapterError?: { cause?: { kind?: unknown } } } | undefined;
  const kind = meta?.driverAdapterError?.cause?.kind;
  return typeof kind === 'string' ? kind : '';
}
