/**
 * The rooms service's signaling: its RPCs on the bus (queue group `sb-rooms`, shared by
 * every replica), the gateways' heartbeats and clients' CPU telemetry, and the sweeper.
 */
import type { Handler } from '@switchboard/bus';
import {
  Rooms,
  RoomsAdmin,
  cpuTelemetry,
  gatewayHeartbeat,
  mediaNodeHeartbeat,
  mediaSubjects,
  signalingSubjects,
  subjects,
  type RoomsConfig,
  type RpcMethod,
} from '@switchboard/protocol';
import type { CommonConfig, Service } from '@switchboard/service';
import { dbError, type Database } from '../db/client.ts';
import { sqlError } from '../db/sql.ts';
import { OutboxRelay } from '../events/relay.ts';
import { MediaPlacement } from '../media/placement.ts';
import { Tracks } from '../media/tracks.ts';
import { UserMediaLadder } from './ladder.ts';
import { Listing } from './listing.ts';
import { LiveTicks } from './live.ts';
import { Membership } from './membership.ts';
import { membershipMetrics } from './metrics.ts';
import { Notifier } from './notifier.ts';
import { Sweeper } from './sweeper.ts';
import { CpuRecorder } from './cpu-recorder.ts';
import { Administration } from './administration.ts';

export function signaling(
  svc: Service<RoomsConfig & CommonConfig>,
  database: Database,
): Membership {
  const { config, bus, log } = svc;
  const db = database.prisma;
  const notifier = new Notifier(bus, log);
  const placement = new MediaPlacement(
    db,
    { nodeDeadAfterMs: config.MEDIA_NODE_DEAD_AFTER_MS },
    notifier,
    log,
  );
  const relay = new OutboxRelay(
    bus,
    {
      databaseUrl: config.DATABASE_URL,
      pollMs: config.OUTBOX_POLL_MS,
      streamMaxAgeMs: config.EVENTS_STREAM_MAX_AGE_S * 1000,
      streamMaxBytes: config.EVENTS_STREAM_MAX_BYTES,
      dedupWindowMs: config.EVENTS_DEDUP_WINDOW_S * 1000,
      retentionMs: config.OUTBOX_RETENTION_S * 1000,
    },
    log,
  );
  const ladder = new UserMediaLadder(config.USER_MEDIA_LADDER);
  const membership = new Membership(
    database,
    {
      defaultCapacity: config.ROOM_DEFAULT_CAPACITY,
      maxSessionsPerUser: config.ROOM_MAX_SESSIONS_PER_USER,
      reconnectWindowMs: config.RECONNECT_WINDOW_MS,
      gatewayDeadAfterMs: config.GATEWAY_DEAD_AFTER_MS,
    },
    ladder,
    notifier,
    membershipMetrics(svc.metrics, db),
    log,
    () => {
      relay.kick();
    },
  );

  // Every RPC: a database failure becomes a protocol error (SERVICE_UNAVAILABLE, TIMEOUT);
  // anything else unexpected is a bug and answers SYSTEM.
  const serve = <M extends RpcMethod>(method: M, handler: Handler<M>): void => {
    bus.serve(method, async (req, ctx) => {
      try {
        return await handler(req, ctx);
      } catch (err) {
        throw dbError(sqlError(err));
      }
    });
  };
  serve(Rooms.join, async (req, ctx) => await membership.join(req, ctx));
  serve(Rooms.lookup, async (req) => await membership.lookup(req));
  serve(Rooms.reconnect, async (req, ctx) => await membership.reconnect(req, ctx));
  serve(Rooms.refresh, async (req, ctx) => await membership.refresh(req, ctx));
  serve(Rooms.disconnect, async (req, ctx) => await membership.disconnect(req, ctx));
  serve(Rooms.orientation, async (req, ctx) => {
    await membership.orientation(req, ctx);
    return {};
  });
  serve(Rooms.resync, async (req) => await membership.resync(req));
  const listing = new Listing(database.sql, {
    defaultCapacity: config.ROOM_DEFAULT_CAPACITY,
    ladder,
  });
  serve(Rooms.roomInfo, async (req, ctx) => await listing.roomInfo(req, ctx));
  const live = new LiveTicks(database.sql, bus);
  serve(Rooms.publishLive, async (req, ctx) => await live.publish(req, ctx));
  serve(Rooms.roomState, async (req, ctx) => await listing.roomState(req.roomId, ctx));
  serve(Rooms.members, async (req, ctx) => await listing.members(req, ctx));
  const admin = new Administration(
    db,
    bus,
    membership,
    notifier,
    {
      defaultCapacity: config.ROOM_DEFAULT_CAPACITY,
      defaultEmptyTimeoutS: config.ROOM_EMPTY_TIMEOUT_S,
    },
    log,
  );
  serve(RoomsAdmin.createRoom, async (req, ctx) => await admin.createRoom(req, ctx));
  serve(RoomsAdmin.updateRoom, async (req, ctx) => await admin.updateRoom(req, ctx));
  serve(RoomsAdmin.getRoom, async (req) => await admin.getRoom(req.roomId));
  serve(RoomsAdmin.listRooms, async (req) => await admin.listRooms(req));
  serve(RoomsAdmin.deleteRoom, async (req, ctx) => await admin.deleteRoom(req.roomId, ctx));
  serve(RoomsAdmin.listParticipants, async (req) => await admin.listParticipants(req));
  serve(
    RoomsAdmin.getParticipant,
    async (req) => await admin.getParticipant(req.roomId, req.socketId),
  );
  serve(RoomsAdmin.removeParticipant, async (req, ctx) => {
    await admin.removeParticipant(req, ctx);
    return {};
  });
  serve(RoomsAdmin.updateParticipant, async (req, ctx) => await admin.updateParticipant(req, ctx));
  serve(RoomsAdmin.sendData, async (req, ctx) => await admin.sendData(req, ctx));
  serve(RoomsAdmin.muteTrack, async (req, ctx) => await admin.muteTrack(req, ctx));
  const tracks = new Tracks(membership, log);
  serve(Rooms.tracks, async (req, ctx) => {
    await tracks.apply(req.nodeId, req.changes, ctx);
    return {};
  });
  serve(Rooms.mediaNode, async (req) => ({
    nodeId: await placement.nodeFor(req.socketId, req.connectionId),
  }));
  serve(Rooms.mediaNodeLeft, async (req) => ({
    rooms: await placement.nodeLeft(req.nodeId, req.startedAt),
  }));

  const queue = subjects.queue('rooms');
  const heartbeats = bus.subscribe(
    signalingSubjects.heartbeat(bus.prefix),
    gatewayHeartbeat,
    async (hb) => {
      await membership.gatewayHeartbeat(hb.gatewayId, hb.startedAt, hb.sockets);
    },
    // A rooms service busy with a flood of leaves must not take the gateways for dead.
    { queue, vital: true },
  );
  const mediaHeartbeats = bus.subscribe(
    mediaSubjects.heartbeat(bus.prefix),
    mediaNodeHeartbeat,
    async (hb) => {
      await placement.heartbeat(hb);
    },
    { queue, vital: true },
  );
  const cpuRecorder = new CpuRecorder(membership, config.TELEMETRY_FLUSH_MS, log);
  const cpu = bus.subscribe(
    signalingSubjects.telemetryCpu(bus.prefix),
    cpuTelemetry,
    (t) => {
      cpuRecorder.add(t);
    },
    { queue },
  );

  const sweeper = new Sweeper(
    membership,
    placement,
    bus,
    {
      intervalMs: config.SWEEP_INTERVAL_MS,
      gatewayDeadAfterMs: config.GATEWAY_DEAD_AFTER_MS,
      mediaNodeDeadAfterMs: config.MEDIA_NODE_DEAD_AFTER_MS,
    },
    log,
  );
  sweeper.start();
  relay.start();
  // After 'signaling': the sweeper's last leaves go out too.
  svc.onShutdown(
    'outbox',
    async () => {
      await relay.stop();
    },
    { after: ['signaling'] },
  );
  svc.onShutdown('signaling', async () => {
    heartbeats.unsubscribe();
    mediaHeartbeats.unsubscribe();
    cpu.unsubscribe();
    await cpuRecorder.stop();
    await sweeper.stop();
  });
  return membership;
}
