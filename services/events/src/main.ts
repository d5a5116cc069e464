import { jetstreamManager } from '@nats-io/jetstream';
import { EventsConfig } from '@switchboard/protocol';
import { runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };

await runService({
  name: 'events',
  version: pkg.version,
  config: EventsConfig,
  async setup(svc) {
    // Room events are durable (a JetStream stream), so JetStream must be enabled on the
    // NATS server this service talks to: readiness says whether it answers.
    svc.readiness.add('jetstream', async () => {
      const nc = svc.bus.connection;
      if (nc === undefined || !svc.bus.connected) return false;
      const jsm = await jetstreamManager(nc, { timeout: 1500 });
      await jsm.getAccountInfo();
      return true;
    });
  },
});
