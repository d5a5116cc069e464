/**
 * Who may open a WebSocket on /api, against a real gateway: a page of a foreign origin gets
 * 403 before the handshake completes, while clients without an Origin and pages of the
 * gateway's own origin (or of WS_ALLOWED_ORIGINS) get in; one address's unjoined sockets
 * and open sockets are capped (429) while another address (127.0.0.2, loopback too) still
 * connects and joins; the join timeout closes an idle unjoined socket and frees its place;
 * the HTTP timeouts close idle HTTP connections but never a long-lived WebSocket.
 */
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import {
  ServiceProcess,
  mintToken,
  startPlatform,
  uniquePrefix,
  type Platform,
} from '@switchboard/devstack';

let platform: Platform;
let gw: ServiceProcess;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  platform = await startPlatform({
    natsUrl: inject('natsUrl'),
    subjectPrefix: uniquePrefix('admission'),
    pgServerUrl: inject('pgServerUrl'),
    names: ['rooms', 'gateway'],
    env: {
      WS_MAX_UNJOINED_PER_IP: '3',
      WS_MAX_CONNECTIONS_PER_IP: '4',
      WS_JOIN_TIMEOUT_MS: '3000',
      // Short HTTP timeouts, and no WebSocket traffic of the gateway's own (pings) during
      // the test: a WebSocket must outlive them by itself.
      HTTP_CONNECTION_TIMEOUT_MS: '1000',
      HTTP_REQUEST_TIMEOUT_MS: '1000',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '500',
      WS_PING_INTERVAL_MS: '600000',
      WS_IDLE_TIMEOUT_MS: '600000',
    },
  });
  gw = platform.get('gateway');
});

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await platform.stop();
});

type Opened = { ok: true; ws: WebSocket } | { ok: false; status: number };

/** Open /api with these options: the socket, or the HTTP status that refused it. */
async function open(
  url: string,
  opts: { origin?: string; localAddress?: string } = {},
): Promise<Opened> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api`, opts);
  sockets.push(ws);
  return await new Promise<Opened>((resolve, reject) => {
    ws.once('open', () => {
      resolve({ ok: true, ws });
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ok: false, status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

async function opened(url: string, opts: Parameters<typeof open>[1] = {}): Promise<WebSocket> {
  const r = await open(url, opts);
  if (!r.ok) throw new Error(`refused with HTTP ${String(r.status)}`);
  return r.ws;
}

let nextId = 1;
/** One request on a raw socket, resolving with its reply frame. */
async function request(ws: WebSocket, a: string, d?: unknown): Promise<Record<string, unknown>> {
  const id = nextId++;
  return await new Promise((resolve, reject) => {
    const onMessage = (data: Buffer): void => {
      const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      if (f['id'] === id) {
        ws.off('message', onMessage);
        resolve(f);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', (code) => {
      reject(new Error(`closed with ${String(code)} before ${a}R`));
    });
    ws.send(JSON.stringify({ a, ...(d === undefined ? {} : { d }), id }));
  });
}

async function join(ws: WebSocket, roomId: string, user: string): Promise<void> {
  const bearer = await mintToken({ sub: user, rooms: [roomId] });
  const r = await request(ws, 'join', { roomId, bearer, platform: 'Web' });
  expect(r, JSON.stringify(r)).toMatchObject({ s: true });
}

async function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed');
  return await new Promise((resolve) => {
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString('utf8') });
    });
  });
}

async function rejected(reason: string): Promise<number> {
  const text = await gw.metrics();
  const m = new RegExp(
    `sb_gateway_closed_for_input_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`,
  ).exec(text)?.[1];
  return Number(m ?? 0);
}

describe('WebSocket admission', () => {
  it('refuses a foreign Origin with 403, admits no Origin and the own origin', async () => {
    const before = await rejected('origin');
    expect(await open(gw.url, { origin: 'http://evil.example' })).toEqual({
      ok: false,
      status: 403,
    });
    expect(await open(gw.url, { origin: 'null' })).toEqual({ ok: false, status: 403 });
    // Same host, another port: another origin.
    expect(await open(gw.url, { origin: `http://127.0.0.1:${String(gw.port + 1)}` })).toEqual({
      ok: false,
      status: 403,
    });
    expect(await rejected('origin')).toBe(before + 3);

    const native = await opened(gw.url);
    const own = await opened(gw.url, { origin: `http://127.0.0.1:${String(gw.port)}` });
    await join(own, 'room-origin', 'own');
    for (const ws of [native, own]) ws.close();
  });

  it('admits the origins of WS_ALLOWED_ORIGINS (and only those) when it is set', async () => {
    const listed = await ServiceProcess.start(
      'gateway',
      { ...platform.env, WS_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:3000' },
      { label: 'gateway-origins' },
    );
    try {
      await listed.waitReady();
      for (const origin of ['https://app.example.com', 'http://localhost:3000']) {
        const ws = await opened(listed.url, { origin });
        ws.close();
      }
      for (const origin of ['http://app.example.com', `http://127.0.0.1:${String(listed.port)}`])
        expect(await open(listed.url, { origin }), origin).toEqual({ ok: false, status: 403 });
    } finally {
      await listed.stop();
    }
  });

  it("caps one address's unjoined and open sockets; another address still gets in", async () => {
    const unjoinedBefore = await rejected('ip_unjoined');
    const openBefore = await rejected('ip_connections');
    // Three unjoined sockets from 127.0.0.1: the fourth is refused before the handshake.
    const [a, b, c] = [await opened(gw.url), await opened(gw.url), await opened(gw.url)];
    expect(await open(gw.url)).toEqual({ ok: false, status: 429 });
    expect(await rejected('ip_unjoined')).toBe(unjoinedBefore + 1);

    // Another address is not held up by it: it connects and joins.
    const other = await opened(gw.url, { localAddress: '127.0.0.2' });
    await join(other, 'room-caps', 'other');

    // One of the three joins: it no longer counts as unjoined, so a fourth socket gets in…
    await join(a, 'room-caps', 'a');
    const d = await opened(gw.url);
    // …and that makes four open sockets for 127.0.0.1: the fifth is refused, joined or not.
    expect(await open(gw.url)).toEqual({ ok: false, status: 429 });
    expect(await rejected('ip_connections')).toBe(openBefore + 1);
    // Still fine from 127.0.0.2.
    (await opened(gw.url, { localAddress: '127.0.0.2' })).close();

    // Closing frees the places.
    const all = [a, b, c, d, other];
    for (const ws of all) ws.close();
    await Promise.all(all.map(closed));
    const again = await Promise.all([1, 2, 3].map(async () => await opened(gw.url)));
    for (const ws of again) ws.close();
    await Promise.all(again.map(async (ws) => await closed(ws)));
  });

  it('closes an idle unjoined socket after the join timeout, which frees its place', async () => {
    const idle = await Promise.all([1, 2, 3].map(async () => await opened(gw.url)));
    expect(await open(gw.url)).toEqual({ ok: false, status: 429 });
    for (const r of await Promise.all(idle.map(closed))) {
      expect(r).toEqual({ code: 1008, reason: 'join or reconnect first' });
    }
    const next = await opened(gw.url);
    await join(next, 'room-timeout', 'next');
    next.close();
    await closed(next);
  });

  it('closes idle HTTP connections, never a joined WebSocket (HTTP timeouts)', async () => {
    const ws = await opened(gw.url);
    await join(ws, 'room-long', 'long');
    // An HTTP connection that sends nothing is closed by the server (connection timeout)…
    const tcp = tcpConnect({ host: '127.0.0.1', port: gw.port });
    await new Promise<void>((resolve, reject) => {
      tcp.once('close', () => {
        resolve();
      });
      tcp.once('error', reject);
    });
    // …and a keep-alive one after its response (keep-alive timeout).
    const kept = tcpConnect({ host: '127.0.0.1', port: gw.port });
    kept.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    let response = '';
    kept.on('data', (chunk: Buffer) => (response += chunk.toString('utf8')));
    await new Promise<void>((resolve) => kept.once('close', resolve));
    expect(response).toMatch(/^HTTP\/1\.1 200/);

    // The WebSocket saw no frame and no ping all that time: still open, still answering.
    await new Promise((r) => setTimeout(r, 1500));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await request(ws, 'ping', {})).toMatchObject({ a: 'pingR', s: true });
    ws.close();
  });
});
