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
});
