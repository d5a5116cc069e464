/** Every service refuses to start on a bad environment, naming the variable, exit 78. */
import { describe, expect, it } from 'vitest';
import { ManagedProcess, NODE, serviceEntry } from '@switchboard/devstack';
import { SERVICE_NAMES } from '@switchboard/protocol';

async function runWith(service: (typeof SERVICE_NAMES)[number], env: Record<string, string>) {
  const proc = new ManagedProcess(service, NODE, [serviceEntry(service)], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  const exit = await proc.exited;
  return { code: exit.code, output: proc.output() };
}

describe('configuration is validated at start', () => {
  it.each(SERVICE_NAMES)('%s exits 78 naming the bad variable', async (service) => {
    const started = Date.now();
    const { code, output } = await runWith(service, {
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
    const { code, output } = await runWith('media', {
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
    const { code, output } = await runWith('rooms', { DATABASE_URL: 'mysql://root@localhost/db' });
    expect(code).toBe(78);
    expect(output).toMatch(/DATABASE_URL: .*"mysql:\/\/root@localhost\/db"/);
  });

  it('the gateway refuses to start without a token key, or with a bad one', async () => {
    const none = await runWith('gateway', { HTTP_PORT: '0' });
    expect(none.code).toBe(78);
    expect(none.output).toMatch(/AUTH_HS256_SECRET/);

    const short = await runWith('gateway', { HTTP_PORT: '0', AUTH_HS256_SECRET: 'too-short' });
    expect(short.code).toBe(78);
    expect(short.output).toMatch(/AUTH_HS256_SECRET: .*"too-short"/);

    const pem = await runWith('gateway', {
      HTTP_PORT: '0',
      AUTH_RS256_PUBLIC_KEYS: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----',
    });
    expect(pem.code).toBe(78);
    expect(pem.output).toMatch(/AUTH_RS256_PUBLIC_KEYS/);
  });

  it('rooms rejects a ladder that is not a list of steps', async () => {
    const { code, output } = await runWith('rooms', {
      USER_MEDIA_LADDER: '[{"maxSize":2,"width":"wide"}]',
    });
    expect(code).toBe(78);
    expect(output).toMatch(/USER_MEDIA_LADDER: /);
  });
});
