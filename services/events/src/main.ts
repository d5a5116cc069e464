import { jetstreamManager } from '@nats-io/jetstream';
import { EventsConfig, eventsLeaderBucket } from '@switchboard/protocol';
import { Gauge, runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { LeaderLease } from './lease.ts';
import { LiveSnapshots } from './live.ts';
import { MemberPresenceUpdater } from './member-presence.ts';
import { WebhookDispatcher } from './webhooks/dispatcher.ts';
import { webhookSettings } from './webhooks/settings.ts';

await runService({
  name: 'events',
  version: pkg.version,
  config: EventsConfig,
  async setup(svc) {
    const { config, bus } = svc;
    // Checked before anything starts: a bad webhook setting is a ConfigError (exit 78).
    const webhooks = webhookSettings(config);
    // Room events are durable (a JetStream stream), so JetStream must be enabled on the
    // NATS server this service talks to: readiness says whether it answers.
    svc.readiness.add('jetstream', async () => {
      const nc = bus.connection;
      if (nc === undefined || !bus.connected) return false;
      const jsm = await jetstreamManager(nc, { timeout: 1500 });
      await jsm.getAccountInfo();
      return true;
    });

    const bucket = eventsLeaderBucket(bus.prefix);
    const lease = new LeaderLease(bucket, svc.instanceId, config.LEADER_LEASE_MS, svc.log);
    const live = new LiveSnapshots(bus, lease, config.ROOM_LIVE_INTERVAL_MS, svc.log);
    lease.start(() => bus.connection);
    live.start();
    // The lease goes last: the webhooks' deliveries in flight finish while it is held.
    svc.onShutdown(
      'room.live',
      async () => {
        await live.stop();
        await lease.stop();
      },
      { after: webhooks === undefined ? [] : ['webhooks'] },
    );
    // Users' presence as room members, from the room-events stream (member-presence.ts).
    const members = new MemberPresenceUpdater(bus, svc.log);
    members.start();
    svc.onShutdown('member presence', async () => {
      await members.stop();
    });

    // Webhooks (webhooks/dispatcher.ts): delivered by the lease holder, stopped before the
    // lease is let go ('room.live' runs after): in-flight deliveries finish (or go back to
    // the server) while this instance still holds the lease.
    if (webhooks !== undefined) {
      const dispatcher = new WebhookDispatcher({
        bus,
        lease,
        settings: webhooks,
        version: pkg.version,
        registry: svc.metrics,
        log: svc.log,
        shutdownGraceMs: Math.min(webhooks.timeoutMs, Math.floor(config.SHUTDOWN_TIMEOUT_MS / 2)),
      });
      dispatcher.start();
      svc.onShutdown('webhooks', async () => {
        await dispatcher.stop();
      });
    }

    new Gauge({
      name: 'sb_events_leader',
      help: '1 while this instance holds the leader lease (room.live, webhooks)',
      registers: [svc.metrics],
      collect() {
        this.set(lease.leader ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sb_events_member_presence_applied',
      help: 'Room events this instance applied to member presence since it started',
      registers: [svc.metrics],
      collect() {
        this.set(members.applied);
      },
    });
    new Gauge({
      name: 'sb_events_live_rooms',
      help: 'Rooms in the last room.live snapshot this instance published',
      registers: [svc.metrics],
      collect() {
        this.set(live.lastRooms);
      },
    });
  },
});
