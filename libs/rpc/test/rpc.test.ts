/**
 * RPC over real data channels: two werift peers in this process, connected over 127.0.0.1
 * with trickle ICE passed directly.
 */
import {
  MAX_MESSAGE_BYTES,
  MAX_STREAMS_PER_CHANNEL,
  decodeRpcFrame,
  encodeRpcFrame,
} from '@switchboard/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcError, RpcServer, RpcStatus, type ServedChannel } from '../src/index.ts';
import {
  TestService,
  connectedPair,
  flipHead,
  implementation,
  randomText,
  type Pair,
  type Seen,
} from './fixtures.ts';

let pair: Pair;
let seen: Seen;
let served: ServedChannel;
let client: RpcClient;
const m = TestService.methods;

beforeEach(async () => {
  pair = await connectedPair();
  seen = { aborts: [], hanging: 0, errors: [], yielded: 0 };
  const server = new RpcServer({ onError: (err) => seen.errors.push(err) }).add(
    TestService,
    implementation(seen),
  );
  served = server.serve(pair.server.channel, { maxMessageSize: pair.server.maxMessageSize });
  client = new RpcClient(pair.client.channel, { maxMessageSize: pair.client.maxMessageSize });
});

afterEach(async () => {
  client.close();
  served.close();
  await pair.offerer.close();
  await pair.answerer.close();
});

async function rejection(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('expected an RpcError');
}

describe('calls', () => {
  it('unary', async () => {
    expect(await client.unary(m.echo, { text: 'hi' })).toEqual({ text: 'hi' });
    const agent = client.stub(TestService);
    expect(await agent.echo({ text: 'stub' })).toEqual({ text: 'stub' });
  });

  it('server streaming', async () => {
    const got: number[] = [];
    for await (const r of client.serverStream(m.count, { n: 100 })) got.push(r.i);
    expect(got).toEqual([...Array(100).keys()]);
  });

  it('client streaming', async () => {
    const call = client.clientStream(m.sum);
    for (let n = 1; n <= 50; n++) await call.send({ n });
    call.end();
    expect(await call.response()).toEqual({ total: 1275 });
  });

  it('bidi', async () => {
    const call = client.bidi(m.chat);
    const replies: string[] = [];
    const reading = (async () => {
      for await (const r of call) replies.push(r.text);
    })();
    for (const w of ['a', 'b', 'c']) await call.send({ text: w });
    call.end();
    await reading;
    expect(replies).toEqual(['A', 'B', 'C']);
    expect((await call.status).status).toBe('OK');
  });

  it('headers, trailers and metadata', async () => {
    const call = client.unaryCall(m.meta, { text: 'm' }, { metadata: { 'x-id': '42' } });
    expect(await call.response()).toEqual({ text: 'm' });
    expect(await call.headers).toEqual({ 'x-seen': '42' });
    expect(await call.trailers).toEqual({ 'x-done': ['1', '2'] });
  });

  it('a handler error: its status, or UNKNOWN without its text', async () => {
    const known = await rejection(client.unary(m.fail, { text: 'rpc' }));
    expect([known.code, known.message, known.metadata]).toEqual([
      RpcStatus.NOT_FOUND,
      'no such thing',
      { 'x-why': 'test' },
    ]);
    const other = await rejection(client.unary(m.fail, { text: 'plain' }));
    expect(other.code).toBe(RpcStatus.UNKNOWN);
    expect(other.message).not.toContain('secret');
    expect(seen.errors).toHaveLength(1);
  });

  it('unknown method: UNIMPLEMENTED', async () => {
    const ghost = { ...m.echo, path: '/switchboard.test.Echo/ghost' };
    expect((await rejection(client.unary(ghost, { text: 'x' }))).code).toBe(
      RpcStatus.UNIMPLEMENTED,
    );
  });
});

describe('16 MiB messages', () => {
  it('both ways, content intact', async () => {
    const data = randomText(MAX_MESSAGE_BYTES - '{"data":""}'.length);
    const reply = await client.unary(m.big, { data }, { timeoutMs: 60_000 });
    expect(reply.data.length).toBe(data.length);
    expect(reply.data === flipHead(data)).toBe(true);
    // Backpressure: neither side let the channel's buffer grow past its high-water mark
    // plus one frame.
    expect(client.maxBufferedAmount).toBeLessThanOrEqual(1024 * 1024 + 64 * 1024);
    expect(served.maxBufferedAmount).toBeLessThanOrEqual(1024 * 1024 + 64 * 1024);
    expect(client.maxBufferedAmount).toBeGreaterThan(0);
  }, 120_000);

  it('one byte more: RESOURCE_EXHAUSTED, refused before sending', async () => {
    const data = 'y'.repeat(MAX_MESSAGE_BYTES - '{"data":""}'.length + 1);
    expect((await rejection(client.unary(m.big, { data }))).code).toBe(
      RpcStatus.RESOURCE_EXHAUSTED,
    );
  });

  it('a small call is not starved by a 16 MiB message in flight', async () => {
    const data = randomText(MAX_MESSAGE_BYTES - '{"data":""}'.length);
    let bigDone = false;
    const big = client.unary(m.big, { data }, { timeoutMs: 60_000 }).then(() => (bigDone = true));
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    expect(await client.unary(m.echo, { text: 'small' })).toEqual({ text: 'small' });
    const small = performance.now() - started;
    expect(bigDone).toBe(false);
    await big;
    expect(small).toBeLessThan(1000);
  }, 120_000);
});

describe('flow control', () => {
  it('a slow reader holds its sender at the window instead of failing', async () => {
    const it = client.serverStream(m.flood, { n: 48 })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    // The server runs ahead by one window (32 MiB: 32 messages, and the one taken), then waits.
    await expect.poll(() => seen.yielded, { timeout: 30_000 }).toBeGreaterThanOrEqual(33);
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen.yielded).toBeLessThanOrEqual(35);
    let n = 1;
    while ((await it.next()).done !== true) n++;
    expect(n).toBe(48);
    expect(seen.yielded).toBe(48);
  }, 60_000);
});

describe('streams per channel', () => {
  it(`the ${String(MAX_STREAMS_PER_CHANNEL + 1)}th is refused; a cancelled one frees its slot`, async () => {
    const controllers = Array.from(
      { length: MAX_STREAMS_PER_CHANNEL },
      () => new AbortController(),
    );
    const open = controllers.map((ac) =>
      client.unary(m.hang, { text: 'h' }, { signal: ac.signal }),
    );
    for (const p of open) p.catch(() => undefined);
    await expect.poll(() => seen.hanging, { timeout: 10_000 }).toBe(MAX_STREAMS_PER_CHANNEL);
    expect(served.openStreams).toBe(MAX_STREAMS_PER_CHANNEL);
    const refused = await rejection(client.unary(m.echo, { text: 'one more' }));
    expect(refused.code).toBe(RpcStatus.RESOURCE_EXHAUSTED);

    controllers[0]?.abort();
    expect((await rejection(open[0] as Promise<unknown>)).code).toBe(RpcStatus.CANCELLED);
    await expect.poll(() => served.openStreams).toBe(MAX_STREAMS_PER_CHANNEL - 1);
    expect(await client.unary(m.echo, { text: 'fits now' })).toEqual({ text: 'fits now' });

    for (const ac of controllers) ac.abort();
    await expect.poll(() => seen.hanging).toBe(0);
    expect(served.openStreams).toBe(0);
  }, 60_000);
});

describe('deadlines and cancellation', () => {
  it('a deadline: DEADLINE_EXCEEDED here, the handler signal aborts there', async () => {
    const err = await rejection(client.unary(m.hang, { text: 'slow' }, { timeoutMs: 200 }));
    expect(err.code).toBe(RpcStatus.DEADLINE_EXCEEDED);
    await expect.poll(() => seen.aborts.length).toBe(1);
    expect((seen.aborts[0]?.reason as RpcError).code).toBe(RpcStatus.DEADLINE_EXCEEDED);
    await expect.poll(() => served.openStreams).toBe(0);
  });

  it('an AbortSignal cancels: CANCELLED here, the handler signal aborts there', async () => {
    const ac = new AbortController();
    const call = client.unary(m.hang, { text: 'x' }, { signal: ac.signal });
    await expect.poll(() => seen.hanging).toBe(1);
    ac.abort();
    expect((await rejection(call)).code).toBe(RpcStatus.CANCELLED);
    await expect.poll(() => seen.aborts.length).toBe(1);
    expect((seen.aborts[0]?.reason as RpcError).code).toBe(RpcStatus.CANCELLED);
  });

  it('the channel closing fails open calls with UNAVAILABLE', async () => {
    const calls = [1, 2, 3].map(async () => await rejection(client.unary(m.hang, { text: 'x' })));
    const stream = rejection(client.bidi(m.chat).response());
    await expect.poll(() => seen.hanging).toBe(3);
    await pair.answerer.close();
    for (const c of calls) expect((await c).code).toBe(RpcStatus.UNAVAILABLE);
    expect((await stream).code).toBe(RpcStatus.UNAVAILABLE);
    await expect.poll(() => seen.hanging).toBe(0);
  });
});

describe('bad input ends only its stream', () => {
  function sendRaw(bytes: Uint8Array<ArrayBuffer>): void {
    pair.client.channel.send(bytes);
  }

  it('random bytes, bad headers, schema-invalid messages, oversize: dropped or per stream', async () => {
    const open = client.bidi(m.chat);
    const replies = (async () => {
      const got: string[] = [];
      for await (const r of open) got.push(r.text);
      return got;
    })();
    await open.send({ text: 'before' });

    // The statuses of the streams opened by hand below (the client drops them: not its own).
    const statuses = new Map<number, number>();
    pair.client.channel.addEventListener('message', (ev) => {
      const decoded = decodeRpcFrame(new Uint8Array(ev.data as Uint8Array));
      if (decoded.ok && decoded.frame.type === 'status') {
        statuses.set(decoded.frame.id, decoded.frame.code);
      }
    });

    for (let i = 0; i < 20; i++) sendRaw(crypto.getRandomValues(new Uint8Array(1 + i * 37)));
    sendRaw(new Uint8Array([0, 0, 0, 5, 123, 34, 120, 34, 58])); // `{"x":` — not JSON
    sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1])); // a header length past the end
    pair.client.channel.send(new Uint8Array(new TextEncoder().encode('text frame')));

    // A stream the server never saw.
    sendRaw(encodeRpcFrame({ id: 999_999, type: 'msg' }, new TextEncoder().encode('{}')));
    // A call whose message fails its schema: INVALID_ARGUMENT on that stream.
    const invalid = client.unary(m.echo, { text: 42 } as unknown as { text: string });
    expect((await rejection(invalid)).code).toBe(RpcStatus.INVALID_ARGUMENT);
    // A call whose message is not JSON.
    const id = 1001;
    sendRaw(encodeRpcFrame({ id, type: 'call', method: m.echo.path }));
    sendRaw(encodeRpcFrame({ id, type: 'msg' }, new Uint8Array([0xc3, 0x28])));
    // A frame of a known stream with a header that fails the schema.
    const id2 = 1003;
    sendRaw(encodeRpcFrame({ id: id2, type: 'call', method: m.hang.path }));
    sendRaw(encodeRpcFrame({ id: id2, type: 'msg', more: 'yes' } as never));
    // A message that grows past 16 MiB in chunks.
    const id3 = 1005;
    sendRaw(encodeRpcFrame({ id: id3, type: 'call', method: m.big.path }));
    const chunk = new Uint8Array(60_000).fill(0x20);
    for (let sent = 0; sent <= MAX_MESSAGE_BYTES; sent += chunk.length) {
      sendRaw(encodeRpcFrame({ id: id3, type: 'msg', more: true }, chunk));
      if (pair.client.channel.bufferedAmount > 1 << 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    await expect.poll(() => served.droppedFrames, { timeout: 30_000 }).toBeGreaterThanOrEqual(23);
    await expect.poll(() => served.openStreams, { timeout: 30_000 }).toBe(1);
    await expect
      .poll(() => statuses.get(id3), { timeout: 30_000 })
      .toBe(RpcStatus.RESOURCE_EXHAUSTED);
    expect(statuses.get(id)).toBe(RpcStatus.INVALID_ARGUMENT);
    expect(statuses.get(id2)).toBe(RpcStatus.INVALID_ARGUMENT);

    // The stream opened before is untouched, and new calls work.
    await open.send({ text: 'after' });
    open.end();
    expect(await replies).toEqual(['BEFORE', 'AFTER']);
    expect(await client.unary(m.echo, { text: 'still fine' })).toEqual({ text: 'still fine' });
    expect(seen.errors).toEqual([]);
  }, 60_000);
});

describe('the client checks what the server sends', () => {
  it('a response that fails its schema: INTERNAL, and the server is told (reset)', async () => {
    // A server of its own on the channel that answers every call with a bad message.
    served.close();
    const frames: unknown[] = [];
    const fake = pair.server.channel;
    fake.addEventListener('message', (ev) => {
      const decoded = decodeRpcFrame(new Uint8Array(ev.data as Uint8Array));
      if (!decoded.ok) return;
      frames.push(decoded.frame.type);
      if (decoded.frame.type !== 'call') return;
      const id = decoded.frame.id;
      fake.send(encodeRpcFrame({ id, type: 'msg' }, new TextEncoder().encode('{"text":5}')));
      fake.send(encodeRpcFrame({ id, type: 'status', code: 0 }));
    });
    const err = await rejection(client.unary(m.echo, { text: 'x' }));
    expect(err.code).toBe(RpcStatus.INTERNAL);
    await expect.poll(() => frames).toEqual(['call', 'reset']);
  });
});

describe('the server stops serving', () => {
  it('open calls end UNAVAILABLE, handlers are aborted', async () => {
    const call = rejection(client.unary(m.hang, { text: 'x' }));
    await expect.poll(() => seen.hanging).toBe(1);
    served.close();
    expect((await call).code).toBe(RpcStatus.UNAVAILABLE);
    await expect.poll(() => seen.hanging).toBe(0);
  });
});
