import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { GatewayConfig } from '@switchboard/protocol';
import { runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { devTokenRoutes, refuseDevSecret } from './dev-tokens.ts';
import { securityHeaders } from './security-headers.ts';
import { signaling } from './signaling/setup.ts';
import { statusRoutes } from './status.ts';
import { IceServers } from './turn.ts';

await runService({
  name: 'gateway',
  version: pkg.version,
  config: GatewayConfig,
  async setup(svc) {
    // The published development secret outside development: ConfigError, exit 78.
    refuseDevSecret(svc.config);
    // TURN URLs without TURN_SECRET: ConfigError, exit 78 (before anything listens).
    const iceServers = IceServers.fromConfig(svc.config);
    securityHeaders(svc.http);
    securityHeaders(svc.ops);
    // The demo app on the public port; the status page on the ops port only.
    await svc.http.register(fastifyStatic, {
      root: fileURLToPath(new URL('../public/', import.meta.url)),
      index: ['index.html'],
    });
    await svc.ops.register(fastifyStatic, {
      root: fileURLToPath(new URL('../ops/', import.meta.url)),
      index: ['status.html'],
    });
    statusRoutes(svc);
    devTokenRoutes(svc);
    await signaling(svc, { iceServers });
  },
});
