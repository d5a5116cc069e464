import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Db = PrismaClient;

/** The rooms service's Prisma client over a pg pool of `poolMax` connections. */
export function createDb(databaseUrl: string, poolMax: number): Db {
  return new PrismaClient({
    adapter: new PrismaPg({
      connectionString: databaseUrl,
      max: poolMax,
      connectionTimeoutMillis: 5000,
    }),
  });
}

/** One round trip to PostgreSQL. */
export async function pingDb(db: Db): Promise<boolean> {
  await db.$queryRaw`SELECT 1`;
  return true;
}
