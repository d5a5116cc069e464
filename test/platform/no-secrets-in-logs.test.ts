/**
 * No secret in any output (issue "Safe to expose", item 6). The services run with
 * distinctive secrets — the HS256 secret, the TURN secret, a password in DATABASE_URL, a
 * user:password and a token in NATS_URL — at LOG_LEVEL=trace, and every error path this
 * test can reach is driven: a bad value for each secret variable (exit 78), NATS
 * unreachable with credentials in its URL, PostgreSQL unreachable with a password, the
 * migration tool on an unreachable database, joins with a forged and an expired token,
 * POST /dev/token, requests carrying the secrets in headers, server API requests with good,
 * forged and malformed tokens (an API key's secret in the environment, the tokens themselves
 * never to be logged either). Everything every process
 * printed (stdout and stderr) is collected; no secret may appear in it, as is, URL-encoded,
 * JSON-escaped or in base64.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import {
  NODE,
  ROOT,
  ServiceProcess,
  freePort,
  mintToken,
  startPlatform,
  uniquePrefix,
  type ManagedProcess,
  type Platform,
} from '@switchboard/devstack';
import { mintApiToken } from '@switchboard/client/server';
import { SERVICE_NAMES, type AdminGrants, type ServiceName } from '@switchboard/protocol';
import { runToExit } from './run-to-exit.ts';

const everything: AdminGrants = { roomList: true, roomCreate: true, roomAdmin: true, rooms: ['*'] };

const tag = randomBytes(6).toString('hex');
const SECRETS = {
  hs256: `hs256-SECRET-${tag}-0123456789abcdefghij`,
  turn: `turn-SECRET-${tag}`,
  dbPassword: `dbPASSWORD${tag}`,
  natsPassword: `natsPASSWORD${tag}`,
  natsToken: `natsTOKEN${tag}`,
  shortHs256: `shortHS${tag}`,
  apiSecret: `api-SECRET-${tag}-0123456789abcdefghij`,
  shortApi: `shortAPI${tag}`,
};

/** Each secret in the forms a log line could carry it. */
const NEEDLES = Object.values(SECRETS).flatMap((s) => [
  s,
  encodeURIComponent(s),
  JSON.stringify(s).slice(1, -1),
  Buffer.from(s).toString('base64'),
  Buffer.from(s).toString('base64url'),
]);

/** Bearer tokens the test sent: no log line may hold one either. */
const tokens: string[] = [];
const outputs: { who: string; text: string }[] = [];
const running: ManagedProcess[] = [];
let platform: Platform | undefined;

afterAll(async () => {
  for (const p of running) if (p.running) await p.stop('SIGKILL');
  await platform?.stop();
});

function collect(who: string): (line: string) => void {
  return (line) => outputs.push({ who, text: line });
}

/** Run a service to its exit with exactly this environment (and PATH), its output collected. */
async function runCollected(
  service: ServiceName,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  return await runToExit(
    service,
    { HTTP_PORT: '0', OPS_PORT: '0', ...env },
    { label: `${service}-config`, onLine: collect(`${service} (bad config)`) },
  );
}

function withCredentials(url: string, userinfo: string): string {
  return url.replace('://', `://${userinfo}@`);
}

const natsUrl = (): string => inject('natsUrl');

describe('no secret in any output', () => {
  it('bad values of secret variables: exit 78, naming the variable only', async () => {
    const unreachableNats = `nats://sb:${SECRETS.natsPassword}@127.0.0.1:1`;
    const gw = await runCollected('gateway', {
      AUTH_HS256_SECRET: SECRETS.shortHs256,
      TURN_SECRET: SECRETS.turn,
      TURN_URLS: 'not json',
      NATS_URL: `http://sb:${SECRETS.natsPassword}@nats:4222`,
    });
    expect(gw.code).toBe(78);
    expect(gw.output).toMatch(/AUTH_HS256_SECRET: must not have fewer than 32 characters/);
    expect(gw.output).toMatch(/NATS_URL: /);
    expect(gw.output).toMatch(/TURN_URLS: /);

    const rooms = await runCollected('rooms', {
      DATABASE_URL: `mysql://rooms:${SECRETS.dbPassword}@db/x`,
      NATS_URL: `nats://${SECRETS.natsToken}@nats:4222,http://x`,
    });
    expect(rooms.code).toBe(78);
    expect(rooms.output).toMatch(/DATABASE_URL: .*"mysql:\/\/rooms:\*\*\*@db\/x"/);

    // A valid secret with another bad setting: the secret is not shown either.
    for (const service of SERVICE_NAMES) {
      const r = await runCollected(service, {
        HTTP_PORT: 'eighty',
        AUTH_HS256_SECRET: SECRETS.hs256,
        TURN_SECRET: SECRETS.turn,
        NATS_URL: unreachableNats,
        DATABASE_URL: `postgresql://rooms:${SECRETS.dbPassword}@127.0.0.1:1/x`,
        API_KEYS: `backend:${SECRETS.apiSecret}`,
      });
      expect(r.code, service).toBe(78);
    }
    const api = await runCollected('api', {
      API_KEYS: `backend:${SECRETS.apiSecret} other:${SECRETS.shortApi}`,
      NATS_URL: unreachableNats,
    });
    expect(api.code).toBe(78);
    expect(api.output).toMatch(/API_KEYS: the secret of key other is shorter than 32/);
    // The published dev secret's refusal names it, and nothing else.
    const dev = await runCollected('gateway', {
      AUTH_HS256_SECRET: 'switchboard-dev-secret-do-not-use-in-production-0123456789',
      TURN_SECRET: SECRETS.turn,
      NATS_URL: unreachableNats,
    });
    expect(dev.code).toBe(78);
  });

  it('NATS and PostgreSQL unreachable, with credentials in their URLs', async () => {
    const env = {
      LOG_LEVEL: 'trace',
      NATS_URL: `nats://sb:${SECRETS.natsPassword}@127.0.0.1:${String(await freePort())},nats://${SECRETS.natsToken}@127.0.0.1:${String(await freePort())}`,
      AUTH_HS256_SECRET: SECRETS.hs256,
      TURN_SECRET: SECRETS.turn,
      DATABASE_URL: `postgresql://rooms:${SECRETS.dbPassword}@127.0.0.1:${String(await freePort())}/x`,
    };
    const started = await Promise.all(
      (['gateway', 'rooms'] as const).map(async (name) => {
        const s = await ServiceProcess.start(name, env, {
          label: `${name}-unreachable`,
          onLine: collect(`${name} (unreachable)`),
        });
        running.push(s.process);
        return s;
      }),
    );
    for (const s of started) {
      await s.process.waitForLine(/NATS not reachable/, 20_000);
      expect((await s.readyz()).status).toBe(503);
    }
    expect(started[0]?.process.output()).toMatch(/nats:\/\/sb:\*\*\*@127\.0\.0\.1/);
    await Promise.all(started.map(async (s) => await s.stop()));

    // The migration tool on an unreachable database.
    const migrate = await promisify(execFile)(
      NODE,
      [join(ROOT, 'services/rooms/src/db/migrate.ts'), 'deploy'],
      { env: { ...process.env, DATABASE_URL: env.DATABASE_URL }, timeout: 60_000 },
    ).then(
      (r) => ({ ok: true, out: `${r.stdout}${r.stderr}` }),
      (err: unknown) => {
        const e = err as { stdout?: string; stderr?: string; message?: string };
        return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message ?? ''}` };
      },
    );
    expect(migrate.ok).toBe(false);
    outputs.push({ who: 'migrate (unreachable)', text: migrate.out });
  });

  it('a running platform: forged and expired tokens, dev tokens, secrets in headers', async () => {
    const subjectPrefix = uniquePrefix('nosecret');
    // Its own database, migrated; then the services with the secrets in their environment.
    platform = await startPlatform({
      natsUrl: natsUrl(),
      subjectPrefix,
      pgServerUrl: inject('pgServerUrl'),
      names: [],
    });
    const dbUrl = withCredentials(
      platform.databaseUrl.replace(/^(postgres(ql)?:\/\/)[^@/]*@/, '$1'),
      `postgres:${SECRETS.dbPassword}`,
    );
    const env = {
      ...platform.env,
      LOG_LEVEL: 'trace',
      // The test server has no authentication: it takes (and ignores) these credentials.
      NATS_URL: withCredentials(natsUrl(), `sb:${SECRETS.natsPassword}`),
      DATABASE_URL: dbUrl,
      AUTH_HS256_SECRET: SECRETS.hs256,
      GATEWAY_DEV_TOKENS: 'true',
      TURN_URLS: '["turn:127.0.0.1:3478"]',
      TURN_SECRET: SECRETS.turn,
      API_KEYS: `backend:${SECRETS.apiSecret}`,
      API_DEV_KEYS: 'false',
    };
    const services = await Promise.all(
      SERVICE_NAMES.map(async (name) => {
        const s = await ServiceProcess.start(name, env, {
          label: `${name}-secrets`,
          onLine: collect(`${name} (running)`),
        });
        running.push(s.process);
        return s;
      }),
    );
    await Promise.all(
      services.map(async (s) => {
        await s.waitReady();
      }),
    );
    const gw = services[0] as ServiceProcess;

    const attempt = async (bearer: string): Promise<Record<string, unknown>> => {
      const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/api`, {
        headers: { authorization: `Bearer ${SECRETS.hs256}`, cookie: `s=${SECRETS.turn}` },
      });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const reply = await new Promise<Record<string, unknown>>((resolve) => {
        ws.once('message', (d: Buffer) => {
          resolve(JSON.parse(d.toString('utf8')) as Record<string, unknown>);
        });
        ws.send(
          JSON.stringify({ a: 'join', id: 1, d: { roomId: 'room-s', bearer, platform: 'Web' } }),
        );
      });
      ws.close();
      return reply;
    };
    const forged = await mintToken({ sub: 'eve', rooms: ['*'], secret: `${SECRETS.hs256}x` });
    expect(await attempt(forged)).toMatchObject({ s: false });
    const expired = await mintToken({
      sub: 'old',
      rooms: ['room-s'],
      secret: SECRETS.hs256,
      expiresInS: -600,
    });
    expect(await attempt(expired)).toMatchObject({ s: false });
    expect(await attempt('not.a.jwt')).toMatchObject({ s: false });
    const good = await mintToken({ sub: 'ok', rooms: ['room-s'], secret: SECRETS.hs256 });
    const joined = await attempt(good);
    expect(joined).toMatchObject({ s: true });
    // TURN credentials are derived from the secret, never the secret itself.
    expect(JSON.stringify(joined)).not.toContain(SECRETS.turn);

    const dev = await fetch(`${gw.url}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRETS.hs256}` },
      body: JSON.stringify({ room: 'room-s', name: 'dev' }),
    });
    expect(dev.status).toBe(200);
    const badDev = await fetch(`${gw.url}/dev/token?token=${SECRETS.hs256}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'no spaces', name: SECRETS.turn }),
    });
    expect(badDev.status).toBe(400);
    expect((await fetch(`${gw.opsUrl}/api/status`)).status).toBe(200);
    await gw.metrics();

    // The server API: a good token, a forged one, one with bad claims, the secret itself as a
    // bearer, a token in the query; each refused or answered, none logged.
    const api = services.find((s) => s.name === 'api') as ServiceProcess;
    const goodApi = mintApiToken({
      keyId: 'backend',
      secret: SECRETS.apiSecret,
      grants: everything,
    });
    const forgedApi = mintApiToken({
      keyId: 'backend',
      secret: `${SECRETS.apiSecret}x`,
      grants: everything,
    });
    const noGrant = mintApiToken({ keyId: 'backend', secret: SECRETS.apiSecret, grants: {} });
    tokens.push(goodApi, forgedApi, noGrant);
    const call = async (bearer: string, path = '/v1/rooms/room-s'): Promise<number> =>
      (
        await fetch(`${api.url}${path}`, {
          headers: { authorization: `Bearer ${bearer}`, cookie: `s=${SECRETS.turn}` },
        })
      ).status;
    expect(await call(goodApi)).not.toBe(401);
    expect(await call(forgedApi)).toBe(401);
    expect(await call(noGrant)).toBe(403);
    expect(await call(SECRETS.apiSecret)).toBe(401);
    expect(await call(goodApi, `/v1/rooms?token=${goodApi}`)).toBe(400);
    await api.metrics();

    await Promise.all(services.map(async (s) => await s.stop()));
  });

  it('none of it holds a secret', () => {
    expect(outputs.length).toBeGreaterThan(50);
    // The paths were taken: the request with a token in its query was logged, redacted.
    expect(outputs.some((o) => o.text.includes('/dev/token?token=***'))).toBe(true);
    // The server API's tokens were minted and sent (and one in a query), none logged.
    expect(tokens).toHaveLength(3);
    const signatures = tokens.map((t) => t.split('.')[2] ?? t);
    const leaks = outputs.flatMap(({ who, text }) =>
      [...NEEDLES, ...tokens, ...signatures]
        .filter((n) => text.includes(n))
        .map((n) => `${who}: ${n} in ${text.slice(0, 300)}`),
    );
    expect(leaks).toEqual([]);
  });
});
