/**
 * The gateway's own framing of client writes (signaling/writes.ts) against ws's client, which
 * checks every frame: lengths in each of the three header forms, several frames to one socket
 * in one write, the acknowledgement after the write, the close frame after queued frames.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { FrameWriter, afterWrites } from '../src/signaling/writes.ts';

let server: WebSocketServer | undefined;

afterEach(async () => {
  const s = server;
  server = undefined;
  if (s === undefined) return;
  for (const c of s.clients) c.terminate();
  await new Promise<void>((resolve, reject) => {
    s.close((err) => {
      if (err === undefined) resolve();
      else reject(err);
    });
  });
});

/**
 * A server and a client of it; the server's socket is handed to `onServerSocket` once the
 * client says `go` (after the test's listeners are on).
 */
async function pair(onServerSocket: (ws: WebSocket) => void): Promise<WebSocket> {
  const s = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server = s;
  s.on('connection', (ws) => {
    ws.once('message', () => {
      onServerSocket(ws);
    });
  });
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await once(client, 'open');
  return client;
}

function messages(client: WebSocket, n: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    client.on('error', reject);
    client.on('message', (data, isBinary) => {
      if (isBinary) reject(new Error('a binary frame'));
      got.push(Buffer.from(data as Buffer).toString('utf8'));
      if (got.length === n) resolve(got);
    });
  });
}

describe('FrameWriter', () => {
  it('frames text of every length form, one write for a turn of small frames', async () => {
    // 2-byte headers (< 126), 4-byte (< 65536), 10-byte; multi-byte UTF-8 counts in bytes.
    const small = ['', 'a', 'é'.repeat(62), 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(4095)];
    const big = ['w'.repeat(65_535), 'v'.repeat(65_536), 'u'.repeat(200_000)];
    const texts = [...small, ...big, 'after'];
    const written: Buffer[][] = [];
    const client = await pair((ws) => {
      const sock = (ws as unknown as { _socket: { write: (b: Buffer) => boolean } })._socket;
      const write = sock.write.bind(sock);
      sock.write = (b: Buffer) => {
        (written[written.length - 1] as Buffer[]).push(b);
        return write(b);
      };
      const out = new FrameWriter(ws);
      // One turn of small frames, then one with big ones among them.
      written.push([]);
      for (const t of small) out.text(Buffer.from(t, 'utf8'));
      out.flush();
      written.push([]);
      const payloads = big.map((t) => Buffer.from(t, 'utf8'));
      for (const p of payloads) out.text(p);
      out.text(Buffer.from('after'));
      out.flush();
      // The big payloads went to the socket as they were, not copied.
      for (const p of payloads) expect(written[1]?.includes(p)).toBe(true);
    });
    const all = messages(client, texts.length);
    client.send('go');
    const got = await all;
    expect(got).toEqual(texts);
    expect(written[0]).toHaveLength(1);
    client.terminate();
  });

  it('acknowledges after the write, and writes queued frames before a close', async () => {
    const order: string[] = [];
    const client = await pair((ws) => {
      const out = new FrameWriter(ws);
      out.text(Buffer.from('first'));
      afterWrites(() => order.push('acknowledged'));
      order.push('queued');
      out.text(Buffer.from('second'));
      out.flush();
      ws.close(4000, 'bye');
    });
    const got: string[] = [];
    client.on('message', (data) => got.push(Buffer.from(data as Buffer).toString('utf8')));
    const closed = once(client, 'close');
    client.send('go');
    const [code] = (await closed) as [number];
    expect(got).toEqual(['first', 'second']);
    expect(code).toBe(4000);
    expect(order).toEqual(['queued', 'acknowledged']);
  });

  it('writes nothing to a socket that is closing', async () => {
    const client = await pair((ws) => {
      const out = new FrameWriter(ws);
      ws.close(4001, 'closing');
      out.text(Buffer.from('too late'));
    });
    const got: string[] = [];
    client.on('message', (data) => got.push(Buffer.from(data as Buffer).toString('utf8')));
    const closed = once(client, 'close');
    client.send('go');
    const [code] = (await closed) as [number];
    expect(code).toBe(4001);
    expect(got).toEqual([]);
  });
});
