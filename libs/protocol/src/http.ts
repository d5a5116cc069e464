/** Payloads of the gateway's HTTP endpoints (besides the ops endpoints every service has). */
import Type, { type Static } from 'typebox';
import { PingReply, ServiceName } from './bus.ts';

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
