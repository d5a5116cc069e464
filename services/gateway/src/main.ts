import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { GatewayConfig } from '@switchboard/protocol';
import { runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { devTokenRoutes } from './dev-tokens.ts';
import { signaling } from './signaling/plugin.ts';
import { statusRoutes } from './status.ts';
import { IceServers } from './turn.ts';

await runService({
  name: 'gateway',
  version: pkg.version,
  config: GatewayConfig,
  async setup(svc) {
    // TURN URLs without TURN_SECRET: ConfigError, exit 78 (before anything listens).
    const iceServers = IceServers.fromConfig(svc.config);
    await svc.http.register(fastifyStatic, {
      root: fileURLToPath(new URL('../public/', import.meta.url)),
      index: ['index.html'],
    });
    statusRoutes(svc);
    devTokenRoutes(svc);
    await signaling(svc, { iceServers });
  },
});
