/** Payloads of the services' HTTP endpoints. */
import Type, { type Static } from 'typebox';
import { PingReply, ServiceName } from './bus.ts';
import { RoomId, UserId } from './client.ts';

/** GET /readyz of every service (200 when `ready`, else 503). */
export const ReadinessResponse = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not ready'), Type.Literal('draining')]),
  checks: Type.Record(Type.String(), Type.Union([Type.Literal('ok'), Type.Literal('failing')])),
});
export type ReadinessResponse = Static<typeof ReadinessResponse>;

/** GET /api/status: each service pinged over NATS through the gateway. */
export const PlatformStatus = Type.Object({
  gateway: Type.Object({ instanceId: Type.String(), version: Type.String() }),
  services: Type.Array(
    Type.Union([
      Type.Object({
        service: ServiceName,
        ok: Type.Literal(true),
        rttMs: Type.Number({ minimum: 0 }),
        instance: PingReply,
      }),
      Type.Object({
        service: ServiceName,
        ok: Type.Literal(false),
        error: Type.Object({ code: Type.Integer(), name: Type.String(), message: Type.String() }),
      }),
    ]),
  ),
});
export type PlatformStatus = Static<typeof PlatformStatus>;

/**
 * POST /dev/token (only where GATEWAY_DEV_TOKENS is on): a token for `room` with `name` as
 * its user id (`sub`) and display name. For the demo app and local development.
 */
export const DevTokenRequest = Type.Object({ room: RoomId, name: UserId });
export type DevTokenRequest = Static<typeof DevTokenRequest>;
export const DevTokenReply = Type.Object({
  token: Type.String(),
  /** The token's `exp`, epoch ms. */
  expiresAt: Type.Integer({ minimum: 0 }),
});
export type DevTokenReply = Static<typeof DevTokenReply>;
