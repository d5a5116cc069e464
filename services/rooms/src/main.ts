import { RoomsConfig } from '@switchboard/protocol';
import { runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { openDatabase, pingDb } from './db/client.ts';
import { signaling } from './signaling/setup.ts';

await runService({
  name: 'rooms',
  version: pkg.version,
  config: RoomsConfig,
  async setup(svc) {
    const db = openDatabase(svc.config.DATABASE_URL, svc.config.DATABASE_POOL_MAX, svc.log);
    svc.readiness.add('postgres', async () => await pingDb(db.prisma));
    // The database outlives every step that uses it.
    svc.onShutdown(
      'postgres',
      async () => {
        await db.close();
      },
      { after: ['signaling', 'outbox'] },
    );
    signaling(svc, db);
  },
});
