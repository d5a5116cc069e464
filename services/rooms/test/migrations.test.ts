/**
 * The Prisma schema and the migrations folder never drift, the migrations apply to an
 * empty database (twice: the second time is a no-op) and leave exactly the schema, and the
 * generated client works against it.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { testDatabase } from '@switchboard/devstack';
import {
  databaseDrift,
  deployMigrations,
  migrationsDrift,
  MIGRATIONS_DIR,
} from '../src/db/migrate.ts';
import { pino } from 'pino';
import { openDatabase } from '../src/db/client.ts';
import { readdirSync } from 'node:fs';

let db: Awaited<ReturnType<typeof testDatabase>>;

beforeAll(async () => {
  db = await testDatabase(inject('pgServerUrl'), 'sbmig');
});

afterAll(async () => {
  await db.drop();
});

describe('rooms database migrations', () => {
  it('the migrations folder yields exactly schema.prisma (no drift)', async () => {
    const drift = await migrationsDrift(inject('pgServerUrl'));
    // When this fails: `./run migrate create --name <change>` writes the missing migration.
    expect(drift).toBe('');
  });

  it('deploys onto an empty database, idempotently, as Prisma migrations', async () => {
    const migrations = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    expect(migrations.length).toBeGreaterThan(0);

    const first = await deployMigrations(db.url);
    expect(first.applied).toEqual(migrations);
    const second = await deployMigrations(db.url);
    expect(second.applied).toEqual([]);

    expect(await databaseDrift(db.url)).toBe('');

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const rows = await client.query<{ migration_name: string; finished: boolean }>(
        'SELECT migration_name, finished_at IS NOT NULL AS finished FROM _prisma_migrations ORDER BY migration_name',
      );
      expect(rows.rows).toEqual(migrations.map((m) => ({ migration_name: m, finished: true })));
    } finally {
      await client.end();
    }
  });

  it('the generated client reads and writes the migrated tables', async () => {
    const database = openDatabase(db.url, 2, pino({ level: 'silent' }));
    const prisma = database.prisma;
    try {
      await prisma.room.create({ data: { id: 'room-1', capacity: 4 } });
      await prisma.session.create({
        data: {
          socketId: 'a'.repeat(32),
          roomId: 'room-1',
          userId: 'u1',
          platform: 'Web',
          gatewayId: 'gw-1',
          connectionId: 'b'.repeat(32),
        },
      });
      const room = await prisma.room.findUniqueOrThrow({
        where: { id: 'room-1' },
        include: { sessions: true },
      });
      expect(room.capacity).toBe(4);
      expect(room.sessions.map((s) => [s.userId, s.state])).toEqual([['u1', 'ACTIVE']]);
      // Deleting a room deletes its sessions (ON DELETE CASCADE).
      await prisma.room.delete({ where: { id: 'room-1' } });
      expect(await prisma.session.count()).toBe(0);
    } finally {
      await database.close();
    }
  });
});
