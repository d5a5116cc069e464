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
  it('frames text of every length form, several to a socket in one write', async () => {
    // 2-byte headers (< 126), 4-byte (< 65536), 10-byte; multi-byte UTF-8 counts in bytes.
    const texts = ['', 'a', 'é'.repeat(62), 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65_535)];
    texts.push('w'.repeat(65_536), 'v'.repeat(200_000));
    let writes = 0;
    const client = await pair((ws) => {
      const sock = (ws as unknown as { _socket: { write: (b: Buffer) => boolean } })._socket;
      const write = sock.write.bind(sock);
      sock.write = (b: Buffer) => {
        writes += 1;
        return write(b);
      };
      const out = new FrameWriter(ws);
      for (const t of texts) out.text(Buffer.from(t, 'utf8'));
    });
    const all = messages(client, texts.length);
    client.send('go');
    const got = await all;
    expect(got).toEqual(texts);
    // All of one turn's frames in one write.
    expect(writes).toBe(1);
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
