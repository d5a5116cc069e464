/** Every service refuses to start on a bad environment, naming the variable, exit 78. */
import { describe, expect, it } from 'vitest';
import { ManagedProcess, NODE, serviceEntry } from '@switchboard/devstack';
import {
  DEV_API_KEY,
  DEV_API_SECRET,
  DEV_HS256_SECRET,
  SERVICE_NAMES,
} from '@switchboard/protocol';
import { runToExit } from './run-to-exit.ts';

describe('configuration is validated at start', () => {
  it.each(SERVICE_NAMES)('%s exits 78 naming the bad variable', async (service) => {
    const started = Date.now();
    const { code, output } = await runToExit(service, {
      HTTP_PORT: 'eighty',
      NATS_URL: 'nats://127.0.0.1:4222',
    });
    expect(code).toBe(78);
    expect(output).toContain(`${service}: invalid configuration`);
    expect(output).toMatch(/HTTP_PORT: .*"eighty"/);
    // Fails fast: no connection attempts, no waiting.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('lists every bad variable at once', async () => {
    const { code, output } = await runToExit('media', {
      LOG_LEVEL: 'chatty',
      NATS_URL: 'localhost:4222',
      MEDIASOUP_WORKERS: '-1',
      MEDIASOUP_LOG_LEVEL: 'verbose',
    });
    expect(code).toBe(78);
    expect(output).toMatch(
      /LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent \(got "chatty"\)/,
    );
    expect(output).toMatch(/NATS_URL: .*"localhost:4222"/);
    expect(output).toMatch(/MEDIASOUP_WORKERS: .*"-1"/);
    expect(output).toMatch(/MEDIASOUP_LOG_LEVEL: must be one of debug, warn, error, none/);
  });

  it('rooms rejects a DATABASE_URL that is not PostgreSQL', async () => {
    const { code, output } = await runToExit('rooms', {
      DATABASE_URL: 'mysql://root@localhost/db',
    });
    expect(code).toBe(78);
    expect(output).toMatch(/DATABASE_URL: .*"mysql:\/\/root@localhost\/db"/);
  });

  it('the gateway refuses to start without a token key, or with a bad one', async () => {
    const none = await runToExit('gateway', { HTTP_PORT: '0' });
    expect(none.code).toBe(78);
    expect(none.output).toMatch(/AUTH_HS256_SECRET/);

    const short = await runToExit('gateway', { HTTP_PORT: '0', AUTH_HS256_SECRET: 'too-short' });
    expect(short.code).toBe(78);
    // Named, never shown: the value of a secret stays out of the output.
    expect(short.output).toMatch(/AUTH_HS256_SECRET: must not have fewer than 32 characters/);
    expect(short.output).not.toContain('too-short');

    const pem = await runToExit('gateway', {
      HTTP_PORT: '0',
      AUTH_RS256_PUBLIC_KEYS: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----',
    });
    expect(pem.code).toBe(78);
    expect(pem.output).toMatch(/AUTH_RS256_PUBLIC_KEYS/);
  });

  it('the gateway refuses the published development secret outside development', async () => {
    const env = { HTTP_PORT: '0', OPS_PORT: '0', NATS_URL: 'nats://127.0.0.1:1' };
    const dev = await runToExit('gateway', { ...env, AUTH_HS256_SECRET: DEV_HS256_SECRET });
    expect(dev.code).toBe(78);
    expect(dev.output).toMatch(/AUTH_HS256_SECRET: is the published development secret/);
    expect(dev.output).not.toContain(DEV_HS256_SECRET);
    // With GATEWAY_DEV_TOKENS on, it is a development gateway: it starts (and is stopped).
    const proc = new ManagedProcess('gateway', NODE, [serviceEntry('gateway')], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...env,
        AUTH_HS256_SECRET: DEV_HS256_SECRET,
        GATEWAY_DEV_TOKENS: 'true',
      },
    });
    await proc.waitForLine(/"msg":"listening"/, 30_000);
    expect((await proc.stop('SIGTERM', 20_000)).code).toBe(0);
    expect(proc.output()).not.toContain(DEV_HS256_SECRET);
  });

  it('the server API refuses to start without a key, with a bad one, or with the published one', async () => {
    const env = { HTTP_PORT: '0', OPS_PORT: '0', NATS_URL: 'nats://127.0.0.1:1' };
    const none = await runToExit('api', env);
    expect(none.code).toBe(78);
    expect(none.output).toMatch(/API_KEYS: is required/);

    const secret = 'short-secret-do-not-print';
    const short = await runToExit('api', { ...env, API_KEYS: `backend:${secret}` });
    expect(short.code).toBe(78);
    expect(short.output).toMatch(/API_KEYS: the secret of key backend is shorter than 32/);
    expect(short.output).not.toContain(secret);

    const dev = await runToExit('api', { ...env, API_KEYS: `${DEV_API_KEY}:${DEV_API_SECRET}` });
    expect(dev.code).toBe(78);
    expect(dev.output).toMatch(
      /API_KEYS: the secret of key dev is the published development secret/,
    );
    expect(dev.output).not.toContain(DEV_API_SECRET);
    // With API_DEV_KEYS on, it is a development API: it starts (and is stopped).
    const proc = new ManagedProcess('api', NODE, [serviceEntry('api')], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...env,
        API_KEYS: `${DEV_API_KEY}:${DEV_API_SECRET}`,
        API_DEV_KEYS: 'true',
      },
    });
    await proc.waitForLine(/"msg":"listening"/, 30_000);
    expect((await proc.stop('SIGTERM', 20_000)).code).toBe(0);
    expect(proc.output()).not.toContain(DEV_API_SECRET);
  });

  it('the ops port must differ from the HTTP port', async () => {
    const { code, output } = await runToExit('events', { HTTP_PORT: '9999', OPS_PORT: '9999' });
    expect(code).toBe(78);
    expect(output).toMatch(/OPS_PORT: must differ from HTTP_PORT/);
  });

  it('rooms rejects a ladder that is not a list of steps', async () => {
    const { code, output } = await runToExit('rooms', {
      USER_MEDIA_LADDER: '[{"maxSize":2,"width":"wide"}]',
    });
    expect(code).toBe(78);
    expect(output).toMatch(/USER_MEDIA_LADDER: /);
  });
});
