/**
 * The rooms service's signaling: its RPCs on the bus (queue group `sb-rooms`, shared by
 * every replica), the gateways' heartbeats and clients' CPU telemetry, and the sweeper.
 */
import {
  Rooms,
  cpuTelemetry,
  gatewayHeartbeat,
  signalingSubjects,
  subjects,
  type RoomsConfig,
} from '@switchboard/protocol';
import type { CommonConfig, Service } from '@switchboard/service';
import type { Db } from '../db/client.ts';
import { UserMediaLadder } from './ladder.ts';
import { Membership, dbError } from './membership.ts';
import { membershipMetrics } from './metrics.ts';
import { Notifier } from './notifier.ts';
import { Sweeper } from './sweeper.ts';

export function signaling(svc: Service<RoomsConfig & CommonConfig>, db: Db): Membership {
  const { config, bus, log } = svc;
  const membership = new Membership(
    db,
    {
      defaultCapacity: config.ROOM_DEFAULT_CAPACITY,
      reconnectWindowMs: config.RECONNECT_WINDOW_MS,
      gatewayDeadAfterMs: config.GATEWAY_DEAD_AFTER_MS,
    },
    new UserMediaLadder(config.USER_MEDIA_LADDER),
    new Notifier(bus, log),
    membershipMetrics(svc.metrics, db),
    log,
  );

  // Errors of the database become protocol errors; anything else is a bug (SYSTEM).
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw dbError(err);
    }
  };

  bus.serve(Rooms.join, async (req, ctx) => await membership.join(req, ctx));
  bus.serve(Rooms.lookup, async (req) => await guard(() => membership.lookup(req.socketId)));
  bus.serve(Rooms.reconnect, async (req, ctx) => await membership.reconnect(req, ctx));
  bus.serve(
    Rooms.disconnect,
    async (req, ctx) => await guard(() => membership.disconnect(req, ctx)),
  );
  bus.serve(Rooms.orientation, async (req, ctx) => {
    await guard(() => membership.orientation(req, ctx));
    return {};
  });
  bus.serve(Rooms.resync, async (req) => await guard(() => membership.resync(req)));
  bus.serve(Rooms.configureRoom, async (req, ctx) => await membership.configureRoom(req, ctx));
  bus.serve(Rooms.roomInfo, async (req) => await guard(() => membership.roomInfo(req.roomId)));

  const queue = subjects.queue('rooms');
  const heartbeats = bus.subscribe(
    signalingSubjects.heartbeat(bus.prefix),
    gatewayHeartbeat,
    async (hb) => {
      await membership.gatewayHeartbeat(hb.gatewayId, hb.startedAt, hb.sockets);
    },
    { queue },
  );
  const cpu = bus.subscribe(
    signalingSubjects.telemetryCpu(bus.prefix),
    cpuTelemetry,
    async (t) => {
      await membership.recordCpu(t.socketId, t.cpuUsed, t.at);
    },
    { queue },
  );

  const sweeper = new Sweeper(
    membership,
    bus,
    { intervalMs: config.SWEEP_INTERVAL_MS, gatewayDeadAfterMs: config.GATEWAY_DEAD_AFTER_MS },
    log,
  );
  sweeper.start();
  svc.onShutdown('signaling', async () => {
    heartbeats.unsubscribe();
    cpu.unsubscribe();
    await sweeper.stop();
  });
  return membership;
}
