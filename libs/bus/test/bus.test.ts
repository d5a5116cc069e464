/**
 * The bus against a real NATS server: typed request/reply, error mapping, deadlines,
 * cancellation, trace context, queue groups and draining without losing requests.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import Type from 'typebox';
import { Bus, traceIdOf, newTraceparent } from '@switchboard/bus';
import { ProtocolError, rpcMethod, validator, type ServiceName } from '@switchboard/protocol';
import { harnessNatsAuth, uniquePrefix } from '@switchboard/devstack';

const Echo = rpcMethod(
  'rooms',
  'echo',
  Type.Object({
    text: Type.String(),
    delayMs: Type.Optional(Type.Integer({ minimum: 0 })),
    fail: Type.Optional(Type.String()),
  }),
  Type.Object({
    text: Type.String(),
    instance: Type.String(),
    traceId: Type.String(),
    aborted: Type.Boolean(),
  }),
);
const Bad = rpcMethod('rooms', 'bad', Type.Object({}), Type.Object({ n: Type.Integer() }));
/** Answered by the one instance a request names (as a media node's methods are). */
const Where = rpcMethod(
  'rooms',
  'where',
  Type.Object({}),
  Type.Object({ instance: Type.String() }),
  { addressed: true },
);

const log = pino({ level: 'silent' });
let prefix: string;
const buses: Bus[] = [];

function bus(
  service: ServiceName,
  instanceId: string,
  metrics?: Registry,
  maxConcurrent?: number,
): Bus {
  const b = new Bus({
    servers: inject('natsUrl'),
    auth: harnessNatsAuth(),
    prefix,
    service,
    instanceId,
    log,
    requestTimeoutMs: 2000,
    ...(metrics === undefined ? {} : { metrics }),
    ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
  });
  buses.push(b);
  return b;
}

function serveEcho(b: Bus, instance: string): void {
  b.serve(Echo, async (req, ctx) => {
    if (req.fail === 'protocol') throw new ProtocolError('ROOM_IS_FULL', 'no seats');
    if (req.fail === 'crash') throw new Error('boom');
    if (req.delayMs !== undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, req.delayMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return {
      text: req.text,
      instance,
      traceId: traceIdOf(ctx.traceparent) ?? '',
      aborted: ctx.signal.aborted,
    };
  });
}

/** Connected `rooms` servers (each set up by `serveWith`) and a `gateway` client. */
async function connected(
  serveWith: ((b: Bus, instance: string) => void)[],
  metrics?: Registry,
): Promise<{ servers: Bus[]; client: Bus }> {
  const servers = serveWith.map((setup, i) => {
    const b = bus('rooms', `r${i + 1}`);
    setup(b, `r${i + 1}`);
    return b;
  });
  const client = bus('gateway', 'g1', metrics);
  await Promise.all(
    [...servers, client].map(async (b) => {
      await b.whenConnected();
    }),
  );
  // The subscriptions have reached the server before anyone asks.
  await Promise.all(
    servers.map(async (b) => {
      await b.connection?.flush();
    }),
  );
  return { servers, client };
}

beforeEach(() => {
  prefix = uniquePrefix('bus');
});

afterEach(async () => {
  await Promise.all(
    buses.splice(0).map(async (b) => {
      await b.close();
    }),
  );
});

describe('Bus', () => {
  it('sheds what exceeds maxConcurrent at once: SERVICE_UNAVAILABLE, never a queue', async () => {
    const metrics = new Registry();
    const server = bus('rooms', 'busy', metrics, 2);
    serveEcho(server, 'busy');
    const client = bus('gateway', 'g1');
    await Promise.all([server.whenConnected(), client.whenConnected()]);
    await server.connection?.flush();
    const started = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, async (_, i) =>
        client.request(Echo, { text: String(i), delayMs: 500 }).then(
          () => 'ok',
          (e: unknown) => (e instanceof ProtocolError ? e.errorName : 'other'),
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'SERVICE_UNAVAILABLE')).toHaveLength(4);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await metrics.getSingleMetricAsString('sb_bus_shed_total')).toMatch(
      /sb_bus_shed_total\{kind="request"\} 4/,
    );
    // Once the work in hand is done, requests are served again.
    await expect(client.request(Echo, { text: 'later' })).resolves.toMatchObject({ text: 'later' });
  });

  it('never sheds a vital subscription (heartbeats); sheds the others', async () => {
    const metrics = new Registry();
    const server = bus('rooms', 'busy', metrics, 1);
    serveEcho(server, 'busy');
    const client = bus('gateway', 'g1');
    const beat = validator(Type.Object({ n: Type.Integer() }));
    const got: string[] = [];
    server.subscribe(
      `${prefix}.test.vital`,
      beat,
      (m) => {
        got.push(`vital ${m.n}`);
      },
      { vital: true },
    );
    server.subscribe(`${prefix}.test.plain`, beat, (m) => {
      got.push(`plain ${m.n}`);
    });
    await Promise.all([server.whenConnected(), client.whenConnected()]);
    await server.connection?.flush();
    // One slow request fills the one place the server has.
    const busy = client.request(Echo, { text: 'busy', delayMs: 600 });
    await sleep(200);
    client.publish(`${prefix}.test.vital`, { n: 1 });
    client.publish(`${prefix}.test.plain`, { n: 1 });
    await busy;
    client.publish(`${prefix}.test.plain`, { n: 2 });
    await client.connection?.flush();
    await sleep(200);
    expect(got).toEqual(['vital 1', 'plain 2']);
    expect(await metrics.getSingleMetricAsString('sb_bus_shed_total')).toMatch(
      /sb_bus_shed_total\{kind="message"\} 1/,
    );
  });

  it('answers a typed request and propagates the trace', async () => {
    const { client } = await connected([serveEcho]);

    const traceparent = newTraceparent();
    const reply = await client.request(Echo, { text: 'hi' }, { traceparent });
    expect(reply).toEqual({
      text: 'hi',
      instance: 'r1',
      traceId: traceIdOf(traceparent),
      aborted: false,
    });
  });

  it("gives a handler a logger bound to the request's subject, trace and caller", async () => {
    const lines: Record<string, unknown>[] = [];
    const captured = pino(
      { level: 'info' },
      {
        write: (line: string) => {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        },
      },
    );
    const server = new Bus({
      servers: inject('natsUrl'),
      auth: harnessNatsAuth(),
      prefix,
      service: 'rooms',
      instanceId: 'logs',
      log: captured,
      requestTimeoutMs: 2000,
    });
    buses.push(server);
    server.serve(Echo, (req, ctx) => {
      // The child logger is made when first used (a request that logs nothing costs none).
      ctx.log.child({ step: 'inner' }).info({ text: req.text }, 'handled');
      return Promise.resolve({ text: req.text, instance: 'logs', traceId: '', aborted: false });
    });
    const { client } = await connected([]);
    await server.whenConnected();
    await server.connection?.flush();
    const traceparent = newTraceparent();
    await client.request(Echo, { text: 'hi' }, { traceparent });
    expect(lines.find((l) => l.msg === 'handled')).toMatchObject({
      subject: `${prefix}.rooms.rpc.echo`,
      traceId: traceIdOf(traceparent),
      caller: 'gateway/g1',
      step: 'inner',
      text: 'hi',
    });
  });

  it('maps handler errors onto protocol codes', async () => {
    const { client } = await connected([serveEcho]);

    await expect(client.request(Echo, { text: 'x', fail: 'protocol' })).rejects.toMatchObject({
      errorName: 'ROOM_IS_FULL',
      code: 0x524,
      message: 'The room is full: no seats',
    });
    // An unexpected failure is SYSTEM on the wire, with no internals leaked.
    const err = await client.request(Echo, { text: 'x', fail: 'crash' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).errorName).toBe('SYSTEM');
    expect((err as ProtocolError).message).not.toContain('boom');
  });

  it('rejects invalid payloads with a field error, and invalid replies as SYSTEM', async () => {
    const { client } = await connected([
      (b, instance) => {
        serveEcho(b, instance);
        b.serve(Bad, async () => ({ n: 'not a number' }) as unknown as { n: number });
      },
    ]);

    await expect(
      client.request(Echo, { text: 42 } as unknown as { text: string }),
    ).rejects.toMatchObject({
      errorName: 'JSON_FIELD_INVALID',
    });
    await expect(client.request(Echo, {} as unknown as { text: string })).rejects.toMatchObject({
      errorName: 'JSON_FIELD_MISSING',
    });
    // Raw garbage on the subject gets a JSON error reply, and the handler keeps working.
    const nc = client.connection;
    if (nc === undefined) throw new Error('not connected');
    const raw = await nc.request(`${prefix}.rooms.rpc.echo`, '{not json', { timeout: 2000 });
    expect(raw.json()).toMatchObject({ ok: false, error: { code: 0x502, name: 'JSON' } });
    await expect(client.request(Bad, {})).rejects.toMatchObject({ errorName: 'SYSTEM' });
    await expect(client.request(Echo, { text: 'still fine' })).resolves.toMatchObject({
      text: 'still fine',
    });
  });

  it('fails fast with SERVICE_UNAVAILABLE when nobody serves the method', async () => {
    const client = bus('gateway', 'g1');
    await client.whenConnected();
    const started = Date.now();
    await expect(client.request(Echo, { text: 'x' }, { timeoutMs: 5000 })).rejects.toMatchObject({
      errorName: 'SERVICE_UNAVAILABLE',
    });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('times out at the deadline and tells the handler through its signal', async () => {
    let handlerSawAbort: Promise<boolean> | undefined;
    const { client } = await connected([
      (b) => {
        b.serve(Echo, async (req, ctx) => {
          handlerSawAbort = new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              resolve(Date.now() >= ctx.deadline - 5);
            });
          });
          await handlerSawAbort;
          return { text: req.text, instance: 'r1', traceId: '', aborted: true };
        });
      },
    ]);

    await expect(client.request(Echo, { text: 'slow' }, { timeoutMs: 300 })).rejects.toMatchObject({
      errorName: 'TIMEOUT',
    });
    await expect(handlerSawAbort).resolves.toBe(true);
  });

  it('cancels a request through its AbortSignal', async () => {
    const { client } = await connected([serveEcho]);

    const ac = new AbortController();
    const p = client.request(Echo, { text: 'x', delayMs: 1000 }, { signal: ac.signal });
    setTimeout(() => {
      ac.abort();
    }, 50);
    await expect(p).rejects.toMatchObject({ errorName: 'CANCELLED' });
    await expect(
      client.request(Echo, { text: 'y' }, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({
      errorName: 'CANCELLED',
    });
  });

  it('shares requests among the instances of a queue group', async () => {
    const { client } = await connected([serveEcho, serveEcho]);

    const replies = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => await client.request(Echo, { text: String(i) })),
    );
    const byInstance = new Map<string, number>();
    for (const r of replies) byInstance.set(r.instance, (byInstance.get(r.instance) ?? 0) + 1);
    expect(byInstance.get('r1')).toBeGreaterThan(0);
    expect(byInstance.get('r2')).toBeGreaterThan(0);
    expect(replies.map((r) => r.text)).toEqual(Array.from({ length: 60 }, (_, i) => String(i)));
  });

  it('stopServing answers every request in flight and takes no new ones', async () => {
    const {
      servers: [server],
      client,
    } = await connected([serveEcho]);

    const inflight = Array.from(
      { length: 10 },
      async (_, i) => await client.request(Echo, { text: `late ${i}`, delayMs: 300 }),
    );
    await new Promise((r) => setTimeout(r, 100));
    await server?.stopServing();
    // Every request that reached the server before the drain got its answer.
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => a.text)).toEqual(Array.from({ length: 10 }, (_, i) => `late ${i}`));
    await expect(client.request(Echo, { text: 'after' })).rejects.toMatchObject({
      errorName: 'SERVICE_UNAVAILABLE',
    });
  });

  it('exports request metrics by method and outcome', async () => {
    const metrics = new Registry();
    const { client } = await connected([serveEcho], metrics);
    await client.request(Echo, { text: 'x' });
    await client.request(Echo, { text: 'x', fail: 'protocol' }).catch(() => undefined);
    const text = await metrics.metrics();
    expect(text).toMatch(/sb_bus_client_requests_total\{method="rooms.echo",outcome="ok"\} 1/);
    expect(text).toMatch(
      /sb_bus_client_requests_total\{method="rooms.echo",outcome="ROOM_IS_FULL"\} 1/,
    );
    expect(text).toMatch(/sb_nats_connected 1/);
  });

  it('sends an addressed request to the instance it names, and to no other', async () => {
    const serveWhere = (b: Bus, instance: string): void => {
      b.serve(Where, () => Promise.resolve({ instance }), { address: `node-${instance}` });
    };
    const metrics = new Registry();
    const { client } = await connected([serveWhere, serveWhere], metrics);
    for (let i = 0; i < 10; i++) {
      expect(await client.request(Where, {}, { to: 'node-r1' })).toEqual({ instance: 'r1' });
      expect(await client.request(Where, {}, { to: 'node-r2' })).toEqual({ instance: 'r2' });
    }
    // An address nobody holds: nobody answers (no queue group to fall back on).
    await expect(client.request(Where, {}, { to: 'node-r3' })).rejects.toMatchObject({
      errorName: 'SERVICE_UNAVAILABLE',
    });
    // Counted by method, whichever instance answered.
    expect(await metrics.metrics()).toMatch(
      /sb_bus_client_requests_total\{method="rooms.where",outcome="ok"\} 20/,
    );
    // No address for an addressed method, or one for a method that has none: a bug, refused.
    await expect(client.request(Where, {})).rejects.toThrow(/needs an address/);
    await expect(client.request(Where, {}, { to: 'a.b' })).rejects.toThrow(/needs an address/);
    await expect(client.request(Echo, { text: 'x' }, { to: 'node-r1' })).rejects.toThrow(
      /not addressed/,
    );
    expect(() => {
      bus('rooms', 'r9').serve(Where, () => Promise.resolve({ instance: 'r9' }));
    }).toThrow(/needs an address/);
  });

  it('refuses to serve another service’s methods', () => {
    const b = bus('gateway', 'g1');
    expect(() => {
      b.serve(Echo, async () => await Promise.reject(new Error('never')));
    }).toThrow(/cannot serve rooms.echo/);
  });
});
