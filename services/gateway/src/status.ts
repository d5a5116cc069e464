/**
 * GET /api/status on the ops port (OPS_PORT, never the public one): ping every service over
 * NATS from this gateway and report who answered and how fast — the whole component chain
 * in one request. The status page that renders it is served there too (`/`).
 */
import {
  Ping,
  SERVICE_NAMES,
  isProtocolError,
  ProtocolError,
  type PlatformStatus,
} from '@switchboard/protocol';
import { requestSignal, type Service } from '@switchboard/service';

const STATUS_TIMEOUT_MS = 2000;

export function statusRoutes(svc: Service): void {
  svc.ops.get('/api/status', async (req, reply) => {
    const signal = requestSignal(reply);
    const services = await Promise.all(
      SERVICE_NAMES.map(async (service): Promise<PlatformStatus['services'][number]> => {
        const started = performance.now();
        try {
          const instance = await svc.bus.request(
            Ping[service],
            {},
            {
              timeoutMs: STATUS_TIMEOUT_MS,
              signal,
            },
          );
          return {
            service,
            ok: true,
            rttMs: Math.round((performance.now() - started) * 100) / 100,
            instance,
          };
        } catch (err) {
          const e = isProtocolError(err) ? err : new ProtocolError('SYSTEM');
          if (!isProtocolError(err)) req.log.error({ err, service }, 'status ping failed');
          return {
            service,
            ok: false,
            error: { code: e.code, name: e.errorName, message: e.message },
          };
        }
      }),
    );
    const body: PlatformStatus = {
      gateway: { instanceId: svc.instanceId, version: svc.version },
      services,
    };
    return reply.header('cache-control', 'no-store').send(body);
  });
}
