/**
 * The server API (issue 15): teams' backends run their rooms over HTTP JSON — create, list,
 * change and delete rooms; list, change and remove participants; mute tracks; send data; call
 * clients' handlers — with short-lived tokens signed by an API key. Stateless: every request
 * becomes a bus request to the rooms service (RoomsAdmin) or server-to-client calls, so any
 * number of replicas serve alike. It listens on its own HTTP_PORT, never the gateway's.
 */
import { ApiConfig, DEV_API_SECRET, type ApiConfig as ApiConfigValue } from '@switchboard/protocol';
import { ConfigError, loadApiKeys, runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { ApiAuth } from './auth.ts';
import { registerApi } from './http.ts';
import { operations } from './operations.ts';

/** The API keys, checked: at least one, and the published one only on a development API. */
function apiKeys(config: ApiConfigValue): ReadonlyMap<string, string> {
  const keys = loadApiKeys(config);
  const variable = config.API_KEYS_FILE === undefined ? 'API_KEYS' : 'API_KEYS_FILE';
  if (keys.size === 0) {
    throw new ConfigError([
      { variable: 'API_KEYS', message: 'is required (or API_KEYS_FILE): the API has no key' },
    ]);
  }
  for (const [id, secret] of keys) {
    if (secret === DEV_API_SECRET && !config.API_DEV_KEYS) {
      throw new ConfigError([
        {
          variable,
          message: `the secret of key ${id} is the published development secret: anyone can sign tokens with it. Give a secret of your own (or API_DEV_KEYS=true on a development API)`,
        },
      ]);
    }
  }
  // The secrets stay in this process's memory alone: not in the environment children inherit.
  delete process.env['API_KEYS'];
  return keys;
}

await runService({
  name: 'api',
  version: pkg.version,
  config: ApiConfig,
  // Each call, with its request id, operation and caller's key: the server API's audit trail.
  requestLog: 'info',
  async setup(svc) {
    const { config } = svc;
    const keys = apiKeys(config);
    if (config.API_DEV_KEYS) {
      svc.log.warn('API_DEV_KEYS is on: the published development API key is accepted');
    }
    const auth = new ApiAuth({
      keys,
      maxTtlS: config.API_TOKEN_MAX_TTL_S,
      clockToleranceS: config.API_CLOCK_TOLERANCE_S,
    });
    const http = await registerApi(svc.http, {
      auth,
      operations: operations(svc.bus),
      bodyLimit: config.API_BODY_LIMIT_BYTES,
      metrics: svc.metrics,
      shutdownSignal: svc.shutdownSignal,
    });
    svc.log.info({ keys: [...keys.keys()], routes: http.routes }, 'server API routes registered');
    // Requests in progress finish (their bus requests still answered) before NATS closes,
    // within the shutdown's time less a margin for the rest; new ones get 503 SHUTTING_DOWN.
    svc.onShutdown('server API requests', async () => {
      await http.drain(Math.max(0, config.SHUTDOWN_TIMEOUT_MS - 3000));
    });
  },
});
