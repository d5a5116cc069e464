/**
 * In-page code of the host-call tests and the calls benchmark: the SDK as a web app uses it
 * (signIn/call with the browser's own RTCPeerConnection, serveHost with the default
 * BrowserPeer), and a hand-made peer connection over the room protocol's exchangeSdp /
 * exchangeCandidate relay for the benchmark's baseline. Everything is driven from Node with
 * page.evaluate through `globalThis.hosts`; errors come back as status names (an RpcError
 * does not cross evaluate).
 */
import {
  serveHost,
  signIn,
  type Caller,
  type HostAgent,
  type HostCall,
  type WebSocketLike,
} from '@switchboard/client';
import { RpcError } from '@switchboard/rpc';
import { Agent } from '@switchboard/example-agent';
import { FULL_ECHO_CHARS, HostTest } from '../hosts-service.ts';

/** When the last `callHost` frame left this page (performance.now()). */
let callHostSentAt = 0;

/** The browser's WebSocket, noting when a callHost request leaves (set-up time starts there). */
function timedWebSocket(url: string): WebSocketLike {
  const ws = new WebSocket(url);
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    if (typeof data === 'string' && data.includes('"a":"callHost"')) {
      callHostSentAt = performance.now();
    }
    send(data);
  };
  // The DOM's handler types name `this`; the SDK's WebSocketLike does not. Same object.
  return ws as unknown as WebSocketLike;
}

let caller: Caller | undefined;
let call: HostCall | undefined;
let host: HostAgent | undefined;
const hanging: { ac: AbortController; call: Promise<unknown> }[] = [];
let stream: { ac: AbortController; done: Promise<string> } | undefined;

/** The status name of a failed call, 'OK' for a success. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (err instanceof RpcError) return err.status;
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
}

function rpcOf(): HostCall {
  if (call === undefined) throw new Error('no call');
  return call;
}

/** A deterministic string of `n` characters (no repeating 16 MiB of one letter). */
function text(n: number, seed: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const bytes = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = alphabet.charCodeAt((x >>> 0) & 63);
  }
  return new TextDecoder().decode(bytes);
}

async function sha256(s: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

let room: RoomLink | undefined;

function rawChannel(): RTCDataChannel {
  const dc = room?.channel;
  if (dc === undefined) throw new Error('no raw channel');
  return dc;
}

/** The room protocol by hand, as the P2P page does it: join, exchangeSdp, exchangeCandidate. */
class RoomLink {
  readonly socketId: string;
  readonly #ws: WebSocket;
  readonly #pending = new Map<
    number,
    { resolve: (d: unknown) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  #pc: RTCPeerConnection | undefined;
  channel: RTCDataChannel | undefined;
  #queue = Promise.resolve();

  private constructor(ws: WebSocket, socketId: string) {
    this.#ws = ws;
    this.socketId = socketId;
  }

  static async join(url: string, bearer: string, roomId: string): Promise<RoomLink> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => {
        reject(new Error('WebSocket error'));
      };
    });
    const link = new RoomLink(ws, '');
    ws.onmessage = (m: MessageEvent<string>) => {
      link.#frame(JSON.parse(m.data) as RoomFrame);
    };
    const joined = (await link.request('join', {
      roomId,
      bearer,
      platform: 'Web',
      deviceName: 'Chromium',
      networkType: 'wifi',
      version: navigator.userAgent.slice(0, 200),
      appVersion: 'calls-bench',
      orientation: 90,
      camera: 'front',
    })) as { socketId: string };
    return Object.assign(link, { socketId: joined.socketId });
  }

  async request(a: string, d: unknown): Promise<unknown> {
    return await new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ a, d, id }));
    });
  }

  async connect(to: string): Promise<{ setupMs: number }> {
    this.channel?.close();
    this.#pc?.close();
    const pc = new RTCPeerConnection();
    this.#pc = pc;
    const dc = pc.createDataChannel('raw', { ordered: true });
    dc.binaryType = 'arraybuffer';
    this.channel = dc;
    pc.onicecandidate = (e) => {
      if (e.candidate !== null && e.candidate.candidate !== '') {
        this.request('exchangeCandidate', { to, candidate: e.candidate.toJSON() }).catch(
          () => undefined,
        );
      }
    };
    const opened = new Promise<void>((resolve) => {
      dc.onopen = () => {
        resolve();
      };
    });
    await pc.setLocalDescription();
    const t0 = performance.now();
    await this.request('exchangeSdp', { to, sdp: pc.localDescription?.toJSON() });
    await opened;
    return { setupMs: performance.now() - t0 };
  }

  close(): void {
    this.channel?.close();
    this.#pc?.close();
    this.#ws.close(1000);
  }

  #frame(f: RoomFrame): void {
    if (f.id !== undefined && this.#pending.has(f.id)) {
      const p = this.#pending.get(f.id);
      this.#pending.delete(f.id);
      if (f.s === true) p?.resolve(f.d);
      else p?.reject(new Error(`request failed: 0x${(f.e ?? 0).toString(16)}`));
      return;
    }
    // One after another: a candidate must not overtake the answer.
    this.#queue = this.#queue
      .then(async () => {
        const pc = this.#pc;
        if (pc === undefined) return;
        if (f.a === 'eventExchangeSdp') {
          await pc.setRemoteDescription(f.d?.['sdp'] as RTCSessionDescriptionInit);
        } else if (f.a === 'eventExchangeCandidate') {
          await pc.addIceCandidate(f.d?.['candidate'] as RTCIceCandidateInit);
        }
      })
      .catch((err: unknown) => {
        console.error('room frame failed:', err);
      });
  }
}

interface RoomFrame {
  a?: string;
  d?: Record<string, unknown>;
  id?: number;
  s?: boolean;
  e?: number;
}

const api = {
  async signIn(a: { urls: string[]; token: string }): Promise<string> {
    caller = await signIn(a.urls, {
      token: a.token,
      WebSocket: timedWebSocket,
    });
    return caller.userId;
  },

  /** Call `host`; the set-up time runs from the callHost frame to the open data channel. */
  async call(a: { host: string; timeoutMs: number }): Promise<{ callId: string; setupMs: number }> {
    if (caller === undefined) throw new Error('not signed in');
    if (call !== undefined) await call.close();
    call = await caller.call(a.host, { timeoutMs: a.timeoutMs });
    return { callId: call.callId, setupMs: performance.now() - callHostSentAt };
  },

  async hangUp(): Promise<void> {
    await call?.close();
    call = undefined;
  },

  async ping(seq: number): Promise<{ seq: number; rttMs: number }> {
    const t0 = performance.now();
    const r = await rpcOf().rpc.stub(Agent).ping({ seq });
    return { seq: r.seq, rttMs: performance.now() - t0 };
  },

  async pingOutcome(): Promise<string> {
    return await outcome(rpcOf().rpc.stub(Agent).ping({ seq: 1 }, { timeoutMs: 5000 }));
  },

  async metrics(count: number): Promise<number[]> {
    const rss: number[] = [];
    for await (const m of rpcOf().rpc.stub(Agent).metrics({ intervalMs: 10, count })) {
      rss.push(m.rssBytes);
    }
    return rss;
  },

  /**
   * Echo a string of `chars` characters: compared here (the whole round trip), its hash
   * returned so Node can check what the host received (the way there on its own).
   */
  async echo(chars: number): Promise<{ same: boolean; sha256: string; ms: number }> {
    const data = text(chars, chars);
    const t0 = performance.now();
    const r = await rpcOf().rpc.stub(Agent).echo({ data }, { timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    return { same: r.data === data, sha256: await sha256(data), ms };
  },

  fullEchoChars(): number {
    return FULL_ECHO_CHARS;
  },

  /** Open `n` calls that never answer (each with its own AbortController). */
  openHanging(n: number): void {
    const stub = rpcOf().rpc.stub(HostTest);
    for (let i = 0; i < n; i++) {
      const ac = new AbortController();
      const p = stub.hang({}, { signal: ac.signal });
      p.catch(() => undefined);
      hanging.push({ ac, call: p });
    }
  },

  /** Cancel every hanging call: their outcomes. */
  async cancelHanging(): Promise<string[]> {
    const all = hanging.splice(0);
    for (const h of all) h.ac.abort();
    return await Promise.all(all.map(async (h) => await outcome(h.call)));
  },

  /** A metrics stream with no end: resolves once its first sample is in. */
  async openStream(): Promise<void> {
    const ac = new AbortController();
    const s = rpcOf().rpc.stub(Agent).metrics({ intervalMs: 50, count: 0 }, { signal: ac.signal });
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => (first = r));
    const done = outcome(
      (async () => {
        for await (const _ of s) first();
      })(),
    );
    stream = { ac, done };
    await Promise.race([gotFirst, done]);
  },

  /** Cancel the metrics stream mid-way: its outcome. */
  async cancelStream(): Promise<string> {
    if (stream === undefined) throw new Error('no stream');
    stream.ac.abort();
    const r = await stream.done;
    stream = undefined;
    return r;
  },

  async deadline(ms: number): Promise<{ status: string; elapsedMs: number }> {
    const t0 = performance.now();
    const status = await outcome(rpcOf().rpc.stub(HostTest).hang({}, { timeoutMs: ms }));
    return { status, elapsedMs: performance.now() - t0 };
  },

  // ------------------------------------------------ baseline: by hand over the room relay

  /** Join `roomId` over a plain WebSocket (the room protocol, no SDK). */
  async roomJoin(a: { wsUrl: string; bearer: string; roomId: string }): Promise<string> {
    room = await RoomLink.join(a.wsUrl, a.bearer, a.roomId);
    return room.socketId;
  },

  /** A peer connection to `to`, offered through exchangeSdp: ms from the offer to open. */
  async roomConnect(to: string): Promise<{ setupMs: number }> {
    if (room === undefined) throw new Error('not in a room');
    return await room.connect(to);
  },

  /** Small messages over the raw channel, one at a time: the round trips (ms). */
  async rawRtt(n: number): Promise<number[]> {
    const dc = rawChannel();
    const out: number[] = [];
    const msg = new Uint8Array(16);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const back = new Promise<void>((resolve) => {
        dc.addEventListener(
          'message',
          () => {
            resolve();
          },
          { once: true },
        );
      });
      dc.send(msg);
      await back;
      out.push(performance.now() - t0);
    }
    return out;
  },

  /** `bytes` out in 64 KiB messages and all of them back (echoed): ms. */
  async rawBulk(bytes: number): Promise<number> {
    const dc = rawChannel();
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let received = 0;
    const t0 = performance.now();
    const done = new Promise<void>((resolve) => {
      const onMessage = (ev: MessageEvent): void => {
        received += (ev.data as ArrayBuffer).byteLength;
        if (received >= bytes) {
          dc.removeEventListener('message', onMessage);
          resolve();
        }
      };
      dc.addEventListener('message', onMessage);
    });
    // The same water marks as the RPC runtime's writer (1 MiB high, 256 KiB low).
    dc.bufferedAmountLowThreshold = 256 * 1024;
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (dc.bufferedAmount > 1024 * 1024) {
        await new Promise<void>((resolve) => {
          dc.addEventListener(
            'bufferedamountlow',
            () => {
              resolve();
            },
            { once: true },
          );
        });
      }
      dc.send(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
    }
    await done;
    return performance.now() - t0;
  },

  /** RPC unary round trips (Agent.ping), one at a time (ms). */
  async rpcRtt(n: number): Promise<number[]> {
    const stub = rpcOf().rpc.stub(Agent);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await stub.ping({ seq: i });
      out.push(performance.now() - t0);
    }
    return out;
  },

  /** One Agent.echo of `chars` characters (a message each way): ms. */
  async rpcBulk(chars: number): Promise<number> {
    const data = 'x'.repeat(chars);
    const t0 = performance.now();
    const r = await rpcOf().rpc.stub(Agent).echo({ data }, { timeoutMs: 60_000 });
    if (r.data.length !== chars) throw new Error('the echo came back short');
    return performance.now() - t0;
  },

  // ------------------------------------------------------------------- the page as a host

  async serve(a: { urls: string[]; token: string }): Promise<string> {
    host = await serveHost(a.urls, { token: a.token }, (rpc) =>
      rpc
        .add(Agent, {
          ping: (req) => ({ seq: req.seq, at: Date.now() }),
          async *metrics(req) {
            for (let i = 0; i < req.count; i++) {
              yield { at: Date.now(), rssBytes: 0, heapUsedBytes: 0, cpuUserMicros: 0, uptimeS: 0 };
            }
          },
          // eslint-disable-next-line require-yield -- a browser has no files to offer
          async *download(req) {
            throw new RpcError('NOT_FOUND', `no file ${req.name}`);
          },
          echo: (req) => ({ data: req.data }),
        })
        .add(HostTest, {
          hang: async (_req, ctx) =>
            await new Promise((_, reject) => {
              ctx.signal.addEventListener('abort', () => {
                reject(ctx.signal.reason as Error);
              });
            }),
          whoami: () => ({ runtime: navigator.userAgent.slice(0, 512) }),
        }),
    );
    return host.host;
  },

  hostPeers(): number {
    return host?.peers ?? 0;
  },

  async close(): Promise<void> {
    room?.close();
    room = undefined;
    for (const h of hanging.splice(0)) h.ac.abort();
    stream?.ac.abort();
    await call?.close();
    call = undefined;
    await caller?.close();
    caller = undefined;
    await host?.close();
    host = undefined;
  },
};

export type HostsPageApi = typeof api;
(globalThis as unknown as { hosts: HostsPageApi }).hosts = api;
