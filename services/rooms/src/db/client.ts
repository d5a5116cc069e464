import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import type { Logger } from '@switchboard/service';
import { PrismaClient } from '../generated/prisma/client.ts';
import { Sql } from './sql.ts';

export type Db = PrismaClient;

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
