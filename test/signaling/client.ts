/**
 * A minimal client of the wire protocol for tests: requests with ids (or without), the
 * events received so far, and waits with deadlines. Everything it receives is kept, so
 * a test can also assert what did NOT arrive. An eventBatch frame is unpacked into `frames`
 * (its events one by one, as a client handles them) and kept whole in `batches`.
 */
import WebSocket from 'ws';
import { mintToken } from '@switchboard/devstack';
import type { JoinReply, ServerFrame } from '@switchboard/protocol';

/** A frame as the gateway wrote it (the protocol's ServerFrame). */
export type Frame = ServerFrame;

export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  /** The events of each eventBatch frame received (they are in `frames` too). */
  readonly batches: Frame[][] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];
  #nextId = 1;
  socketId: string | undefined;
  /** The session's current resume token (joinR's, then each reconnectR's). */
  resumeToken: string | undefined;
  userId: string | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
        this.#wake();
      });
    });
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as Frame;
      if (f.a === 'eventBatch' && Array.isArray(f.d)) {
        const events = f.d as Frame[];
        this.batches.push(events);
        this.frames.push(...events);
      } else {
        this.frames.push(f);
      }
      this.#wake();
    });
    ws.on('error', () => {
      // 'close' follows and is what tests look at.
    });
  }

  static async connect(gatewayUrl: string): Promise<TestClient> {
    const ws = new WebSocket(`${gatewayUrl.replace(/^http/, 'ws')}/api`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        resolve();
      });
      ws.once('error', reject);
    });
    return new TestClient(ws);
  }

  /** A join's `d`: `roomId` as `userId`, with a dev token granting it (and `claims`). */
  static async joinData(
    roomId: string,
    userId: string,
    claims: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    return {
      roomId,
      bearer: await mintToken({ sub: userId, rooms: [roomId], extra: claims }),
      platform: 'Web',
      deviceName: 'test',
      networkType: 'wifi',
      version: 'node',
      appVersion: '1',
      orientation: 90,
      camera: 'front',
    };
  }

  /**
   * Connect and join `roomId` as `userId` with a dev token granting it (and the `claims`
   * given, e.g. `{ grants: { role: 'recorder' } }`); `batchEvents`: the client reads
   * eventBatch.
   */
  static async join(
    gatewayUrl: string,
    roomId: string,
    userId: string,
    claims: Record<string, unknown> = {},
    opts: { batchEvents?: boolean } = {},
  ): Promise<TestClient> {
    const c = await TestClient.connect(gatewayUrl);
    const r = await c.request('join', {
      ...(await TestClient.joinData(roomId, userId, claims)),
      ...(opts.batchEvents === undefined ? {} : { batchEvents: opts.batchEvents }),
    });
    if (r.s !== true) throw new Error(`join failed: ${JSON.stringify(r)}`);
    c.socketId = (r.d as JoinReply).socketId;
    c.resumeToken = (r.d as JoinReply).resumeToken;
    c.userId = userId;
    return c;
  }

  /**
   * Resume `owner`'s session on this connection with its socketId and current resume token
   * (or the ones given); on success this client holds the session and the next token.
   */
  async resume(
    owner: { socketId: string | undefined; resumeToken: string | undefined; userId?: string },
    extra: Record<string, unknown> = {},
  ): Promise<Frame> {
    const r = await this.request('reconnect', {
      socketId: owner.socketId,
      resumeToken: owner.resumeToken,
      ...extra,
    });
    if (r.s === true) {
      this.socketId = owner.socketId;
      this.resumeToken = (r.d as { resumeToken: string }).resumeToken;
      this.userId = owner.userId;
    }
    return r;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Send a request with an id and wait for its reply. */
  async request(a: string, d?: unknown, timeoutMs = 10_000): Promise<Frame> {
    const id = this.#nextId++;
    this.ws.send(JSON.stringify({ a, ...(d === undefined ? {} : { d }), id }));
    return await this.waitFor((f) => f.id === id && f.a === `${a}R`, timeoutMs, `${a}R #${id}`);
  }

  /** Send a request that must succeed: its reply's `d` (a failed reply throws, naming it). */
  async ok(a: string, d?: unknown, timeoutMs = 10_000): Promise<unknown> {
    const r = await this.request(a, d, timeoutMs);
    if (r.s !== true) throw new Error(`${a} failed: ${JSON.stringify(r)}`);
    return r.d;
  }

  /** Wait for a frame matching `pred` (already received ones count), from index `from`. */
  async waitFor(
    pred: (f: Frame) => boolean,
    timeoutMs = 10_000,
    what = 'frame',
    from = 0,
  ): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.slice(from).find(pred);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; got ${JSON.stringify(this.frames.slice(-5))}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async event(a: string, timeoutMs = 10_000, from = 0): Promise<Frame> {
    return await this.waitFor((f) => f.a === a && f.s === undefined, timeoutMs, a, from);
  }

  events(a: string): Frame[] {
    return this.frames.filter((f) => f.a === a && f.s === undefined);
  }

  close(code = 1000): void {
    this.ws.close(code);
  }

  /** Drop the connection without a close handshake (like a lost network). */
  kill(): void {
    this.ws.terminate();
  }
}

/**
 * A suite's `join`: a client joined into `roomId` as `userId` through gateway `gw` of the
 * suite's platform (`sp()`, started in its beforeAll), kept in `open` for its afterAll to kill.
 */
export function joinVia(
  sp: () => { gw1: { url: string }; gw2: { url: string } },
  open: TestClient[],
): (
  gw: 'gw1' | 'gw2',
  roomId: string,
  userId: string,
  claims?: Record<string, unknown>,
  opts?: { batchEvents?: boolean },
) => Promise<TestClient> {
  return async (gw, roomId, userId, claims = {}, opts = {}) => {
    const c = await TestClient.join(sp()[gw].url, roomId, userId, claims, opts);
    open.push(c);
    return c;
  };
}
