/**
 * The client API: WebSocket `/api`. Each socket is a Connection; the Router carries events
 * between sockets over NATS; every GATEWAY_HEARTBEAT_MS this gateway tells the rooms
 * service it is alive (so the sessions of a dead gateway enter their reconnect window).
 *
 * Admission (admission.ts), before the WebSocket handshake completes: a browser page of a
 * foreign origin gets 403 (WS_ALLOWED_ORIGINS); a client IP at WS_MAX_CONNECTIONS_PER_IP open
 * sockets, or at WS_MAX_UNJOINED_PER_IP sockets that have not joined yet, gets 429 (and a
 * socket that slips past the check in a race is closed with 1013). Each refusal is counted
 * in sb_gateway_closed_for_input_total by reason.
 *
 * Shutdown (SIGTERM): new sockets are refused, every socket is closed with 1012 (service
 * restart) so its client reconnects through another gateway inside the window, and the
 * rooms service hears of every close before the process exits.
 */
import fastifyWebsocket from '@fastify/websocket';
import {
  CloseCodes,
  signalingSubjects,
  type GatewayConfig,
  type GatewayHeartbeat,
} from '@switchboard/protocol';
import { Gauge, type CommonConfig, type Service } from '@switchboard/service';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TokenVerifier } from '../auth.ts';
import type { IceServers } from '../turn.ts';
import { Admission, OriginPolicy } from './admission.ts';
import { Connection } from './connection.ts';
import { Disconnector } from './disconnector.ts';
import { signalingMetrics } from './metrics.ts';
import { resync } from './resync.ts';
import { Router } from './router.ts';
import { HostServices } from '../hosts/services.ts';

export async function signaling(
  svc: Service<GatewayConfig & CommonConfig>,
  { iceServers }: { iceServers: IceServers },
): Promise<void> {
  const { config, bus, log } = svc;
  const verifier = await TokenVerifier.create({
    ...(config.AUTH_HS256_SECRET === undefined ? {} : { hs256Secret: config.AUTH_HS256_SECRET }),
    ...(config.AUTH_RS256_PUBLIC_KEYS === undefined
      ? {}
      : { rs256PublicKeys: config.AUTH_RS256_PUBLIC_KEYS }),
    audience: config.AUTH_AUDIENCE,
    ...(config.AUTH_ISSUER === undefined ? {} : { issuer: config.AUTH_ISSUER }),
    clockToleranceS: config.AUTH_CLOCK_TOLERANCE_S,
    maxTokenTtlS: config.AUTH_MAX_TOKEN_TTL_S,
    jwksUrl: config.AUTH_JWKS_URL,
    jwksCooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
    jwksMaxAgeMs: config.AUTH_JWKS_MAX_AGE_MS,
  });
  if (config.GATEWAY_LEGACY_RESUME) {
    log.warn(
      'GATEWAY_LEGACY_RESUME is on: a socketId alone resumes a session (anyone in the room can take it over)',
    );
  }
  const gatewayId = svc.instanceId;
  const metrics = signalingMetrics(svc.metrics);
  // Sent with every heartbeat and with the sessions this process attaches: the rooms
  // service tells this process's sessions from an earlier one's by it (one clock: ours).
  const startedAt = Date.now();
  const router = new Router(bus, gatewayId, log, {
    minMembers: config.WS_BATCH_MIN_MEMBERS,
    windowMs: config.WS_BATCH_MS,
    metrics,
  });
  new Gauge({
    name: 'sb_gateway_rooms',
    help: 'Rooms with members on this gateway (one broadcast subscription each)',
    registers: [svc.metrics],
    collect() {
      this.set(router.rooms);
    },
  });
  const disconnector = new Disconnector(bus, log);
  const connections = new Set<Connection>();
  router.start();
  const hosts = new HostServices(bus, log, svc.metrics, config, gatewayId);
  hosts.start();
  // A full gateway stops taking new clients: the load balancer sends them elsewhere.
  svc.readiness.add('capacity', () => connections.size < config.WS_MAX_CONNECTIONS);

  const origins = new OriginPolicy(config.WS_ALLOWED_ORIGINS);
  const admission = new Admission({
    maxPerIp: config.WS_MAX_CONNECTIONS_PER_IP,
    maxUnjoinedPerIp: config.WS_MAX_UNJOINED_PER_IP,
  });
  /** Before the upgrade: refuse with an HTTP status (the handshake never completes). */
  const admit = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!origins.allows(req.headers.origin, { protocol: req.protocol, host: req.host })) {
      metrics.rejected.inc({ reason: 'origin' });
      req.log.info({ origin: req.headers.origin }, 'WebSocket from a foreign origin refused');
      await reply.code(403).send({ error: 'origin not allowed' });
      return;
    }
    const refusal = admission.refusal(req.ip);
    if (refusal !== undefined) {
      metrics.rejected.inc({ reason: refusal });
      await reply
        .code(429)
        .header('retry-after', '5')
        .send({ error: 'too many connections from this address' });
    }
  };

  await svc.http.register(fastifyWebsocket, {
    options: { maxPayload: config.WS_MAX_FRAME_BYTES },
  });
  svc.http.get('/api', { websocket: true, preValidation: admit }, (socket, req) => {
    if (svc.shutdownSignal.aborted) {
      socket.close(CloseCodes.serviceRestart, 'gateway shutting down');
      return;
    }
    if (connections.size >= config.WS_MAX_CONNECTIONS) {
      metrics.rejected.inc({ reason: 'gateway_full' });
      socket.close(CloseCodes.tryAgainLater, 'gateway full');
      return;
    }
    // Checked again: upgrades of one address may have raced past preValidation together.
    const refusal = admission.refusal(req.ip);
    if (refusal !== undefined) {
      metrics.rejected.inc({ reason: refusal });
      socket.close(CloseCodes.tryAgainLater, 'too many connections from this address');
      return;
    }
    const ticket = admission.admit(req.ip);
    const conn = new Connection(socket, req.ip, {
      bus,
      router,
      verifier,
      iceServers,
      disconnector,
      metrics,
      log,
      gatewayId,
      gatewayStartedAt: startedAt,
      hosts,
      auth: {
        clockToleranceMs: config.AUTH_CLOCK_TOLERANCE_S * 1000,
        legacyResume: config.GATEWAY_LEGACY_RESUME,
      },
      limits: {
        ratePerS: config.WS_RATE_LIMIT_PER_S,
        burst: config.WS_RATE_LIMIT_BURST,
        maxInflight: config.WS_MAX_INFLIGHT,
        maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
        joinTimeoutMs: config.WS_JOIN_TIMEOUT_MS,
        orientationIntervalMs: config.WS_ORIENTATION_INTERVAL_MS,
      },
      onAttached: ticket.attached,
    });
    connections.add(conn);
    metrics.connections.inc();
    socket.on('close', () => {
      ticket.released();
      connections.delete(conn);
      metrics.connections.dec();
    });
  });

  // Liveness of every socket: ping each; close those silent past the deadline.
  const pinger = setInterval(() => {
    const silentSince = Date.now() - config.WS_IDLE_TIMEOUT_MS;
    for (const conn of connections) {
      if (conn.lastHeard < silentSince) conn.terminate('no frame or pong before the deadline');
      else conn.ping();
    }
  }, config.WS_PING_INTERVAL_MS);

  // Liveness of this gateway, for the rooms service.
  const beat = (): void => {
    if (!bus.connected) return;
    const hb: GatewayHeartbeat = { gatewayId, startedAt, sockets: router.size };
    try {
      bus.publish(signalingSubjects.heartbeat(bus.prefix), hb);
    } catch (err) {
      log.warn({ err }, 'heartbeat not sent');
    }
  };
  const heartbeat = setInterval(beat, config.GATEWAY_HEARTBEAT_MS);
  void bus.whenConnected(svc.shutdownSignal).then(beat, () => {
    // Shut down before NATS was ever reached: nothing to announce.
  });

  // Back on NATS after a break: what was missed may have changed this gateway's sessions.
  // One at a time; a reconnect during a resync asks for one more after it (what it missed
  // may postdate the list the running one sent).
  let resyncing: Promise<void> | undefined;
  let again = false;
  const startResync = (): void => {
    if (resyncing !== undefined) {
      again = true;
      return;
    }
    resyncing = resync(
      { bus, router, disconnector, gatewayId, gatewayStartedAt: startedAt, log },
      svc.shutdownSignal,
    )
      .catch((err: unknown) => {
        if (!svc.shutdownSignal.aborted) log.error({ err }, 'resync failed');
      })
      .finally(() => {
        resyncing = undefined;
        if (again && !svc.shutdownSignal.aborted) {
          again = false;
          startResync();
        }
      });
  };
  const offReconnect = bus.onReconnect(() => {
    beat();
    startResync();
    // The rooms' broadcasts of that time are lost: each room's members get its state.
    router.resyncRooms();
  });

  svc.onShutdown('signaling', async () => {
    offReconnect();
    while (resyncing !== undefined) await resyncing;
    clearInterval(pinger);
    const closing = [...connections].length;
    for (const conn of connections) conn.shutdown();
    await disconnector.flush(Math.max(1000, config.SHUTDOWN_TIMEOUT_MS - 2000));
    // Clients that did not answer the close in time are cut off.
    for (const conn of connections) conn.terminate('gateway shutting down');
    clearInterval(heartbeat);
    await hosts.stop();
    router.stop();
    log.info({ closed: closing }, 'client sockets closed');
  });
}
