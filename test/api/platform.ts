/**
 * The server API's test platform: the SFU platform of the tests (rooms service, gateways,
 * media nodes on the real NATS and PostgreSQL) and the api service on top, with two API keys —
 * the published development key and a second one (rotation) — and clients of it (the SDK's
 * ApiClient, with whatever grants a test gives them).
 */
import { randomBytes } from 'node:crypto';
import { ApiClient, mintApiToken } from '@switchboard/client/server';
import type { ServiceProcess } from '@switchboard/devstack';
import { DEV_API_KEY, DEV_API_SECRET, type AdminGrants } from '@switchboard/protocol';
import { startSfu, type SfuOptions, type SfuPlatform } from '../sfu/platform.ts';

/** The second key of the platform (a rotation: both valid at once). */
export const SECOND_KEY = { keyId: 'second-key', secret: randomBytes(24).toString('base64url') };

export const ALL: AdminGrants = { roomList: true, roomCreate: true, roomAdmin: true, rooms: ['*'] };

export interface ApiPlatform {
  sfu: SfuPlatform;
  api: ServiceProcess;
  /** The API's base URL. */
  url: string;
  /** An SDK client with these grants (default: everything) and the development key. */
  client(grants?: AdminGrants, key?: { keyId: string; secret: string }): ApiClient;
  /** A token of the development key with these grants. */
  token(grants?: AdminGrants): string;
  /** A request to the API: `path` under its URL, the token given (none: no header). */
  fetch(path: string, init?: RequestInit & { bearer?: string | null }): Promise<Response>;
  stop(): Promise<void>;
}

export async function startApi(
  natsUrl: string,
  pgServerUrl: string,
  opts: SfuOptions & { apiEnv?: Record<string, string> } = {},
): Promise<ApiPlatform> {
  const sfu = await startSfu(natsUrl, pgServerUrl, opts);
  let api: ServiceProcess;
  try {
    api = await sfu.spawn('api', 'api', {
      API_KEYS: `${DEV_API_KEY}:${DEV_API_SECRET}\n${SECOND_KEY.keyId}:${SECOND_KEY.secret}`,
      API_DEV_KEYS: 'true',
      ...opts.apiEnv,
    });
  } catch (err) {
    await sfu.stop();
    throw err;
  }
  const dev = { keyId: DEV_API_KEY, secret: DEV_API_SECRET };
  const token = (grants: AdminGrants = ALL): string =>
    mintApiToken({ ...dev, grants, sub: 'tests' });
  return {
    sfu,
    api,
    url: api.url,
    client: (grants = ALL, key = dev) =>
      new ApiClient({ url: api.url, ...key, grants, sub: 'tests' }),
    token,
    fetch: async (path, init = {}) => {
      const { bearer, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (bearer !== null) headers.set('authorization', `Bearer ${bearer ?? token()}`);
      return await fetch(`${api.url}${path}`, {
        ...rest,
        headers,
        signal: rest.signal ?? AbortSignal.timeout(15_000),
      });
    },
    stop: async () => {
      await sfu.stop();
    },
  };
}
