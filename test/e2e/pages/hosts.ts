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
