/**
 * The signaling benchmarks' WebSocket client (`bench/signaling.ts`, `bench/room.ts`): many
 * `Conn`s in one process, requests matched to their replies by id, events handed to a
 * callback; connecting and closing them in bulk; the load of the clients' own process. And
 * every benchmark's plain socket, once open (openSocket).
 *
 * Every frame received is counted (messages and payload bytes, WebSocket headers aside).
 * Frames are parsed as JSON, except what an `onRaw` hook takes from the raw bytes first (a
 * benchmark with 10,000 sockets in a room need not parse every eventJoin). An `eventBatch`
 * frame (`{"a":"eventBatch","d":[{a,d},…]}`, the opt-in protocol extension that carries
 * several events in one frame) is unpacked: each item goes to `onEvent` as if it had arrived
 * alone, in order.
 */
import { performance } from 'node:perf_hooks';
import { errorName, type ServerFrame } from '@switchboard/protocol';

/** A frame as the gateway wrote it (the protocol's ServerFrame). */
export type Frame = ServerFrame;
import WebSocket from 'ws';
import { pool, type Cleanup, type Failure } from './cli.ts';

/** A reply (or echo): the frame, when it arrived, its size in bytes. */
export type OnReply = (frame: ServerFrame, at: number, bytes: number) => void;
export type OnEvent = (conn: Conn, frame: ServerFrame, at: number) => void;
/**
 * A look at a frame's bytes before it is parsed: true when the hook has taken the frame
 * (it is then neither parsed nor passed on), false to have it parsed as usual.
 */
export type OnRaw = (conn: Conn, data: Buffer, at: number) => boolean;

/** A `ws` socket to `url`, once it is open (an error before that rejects). */
export async function openSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve();
    });
    ws.once('error', reject);
  });
  return ws;
}

export function describeReply(f: ServerFrame): string {
  if (f.s === false && typeof f.e === 'number')
    return `error 0x${f.e.toString(16)} ${errorName(f.e) ?? '(unknown code)'}`;
  return JSON.stringify(f).slice(0, 300);
}

function rawBuffer(data: WebSocket.RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (Buffer.isBuffer(data)) return data;
  return Buffer.from(new Uint8Array(data));
}

/**
 * Load of this (the clients') process over one phase: CPU use and event-loop utilisation
 * (the share of the time its loop was busy; near 100% the clients are the bottleneck).
 */
export function clientLoad(): () => { cpuPercent: number; loopBusyPercent: number } {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const cpu = process.cpuUsage(cpu0);
    const wallUs = (performance.now() - t0) * 1000;
    return {
      cpuPercent: Math.round(((cpu.user + cpu.system) / wallUs) * 100),
      loopBusyPercent: Math.round(performance.eventLoopUtilization(elu0).utilization * 100),
    };
  };
}

/** One WebSocket client: requests carry an id and their reply (or echo) is matched by it. */
export class Conn {
  readonly index: number;
  readonly url: string;
  readonly ws: WebSocket;
  /** Resolves once open (with the time it took); rejects when the connection fails. */
  readonly opened: Promise<number>;
  /** Resolves when the socket is closed, whoever closed it. */
  readonly closed: Promise<{ code: number; reason: string }>;
  socketId = '';
  userId = '';
  roomId = '';
  /** Messages (frames) received, and their payload bytes. */
  frames = 0;
  bytes = 0;
  /** eventBatch frames received, and the events they carried. */
  batches = 0;
  batchedEvents = 0;
  /** Events received that no phase was waiting for, by name. */
  readonly otherEvents = new Map<string, number>();
  onEvent: OnEvent | undefined;
  onRaw: OnRaw | undefined;
  #leaving = false;
  #wasOpen = false;
  #nextId = 1;
  readonly #pending = new Map<number, OnReply>();
  readonly #failure: Failure;

  constructor(index: number, url: string, failure: Failure) {
    this.index = index;
    this.url = url;
    this.#failure = failure;
    const t0 = performance.now();
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.#wasOpen = true;
        resolve(performance.now() - t0);
      });
      this.ws.once('close', () => {
        reject(new Error(`client ${index}: ${url} closed before it opened`));
      });
      this.ws.once('error', (err) => {
        reject(new Error(`client ${index}: connecting to ${url}: ${err.message}`));
      });
    });
    // Handled by whoever awaits `opened`; this keeps a failure before that from going unhandled.
    this.opened.catch(() => undefined);
    this.ws.on('error', (err) => {
      if (this.ws.readyState !== WebSocket.CONNECTING && !this.#leaving)
        failure.fail(new Error(`client ${index}: socket error: ${err.message}`));
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        const info = { code, reason: reason.toString('utf8') };
        // Before `open`, the rejection of `opened` says what happened.
        if (!this.#leaving && this.#wasOpen)
          failure.fail(
            new Error(
              `client ${index}: the server closed the socket (${info.code} ${info.reason})`,
            ),
          );
        for (const [id] of this.#pending)
          if (!this.#leaving)
            failure.fail(new Error(`client ${index}: closed with request ${id} unanswered`));
        resolve(info);
      });
    });
    this.ws.on('message', (data) => {
      this.#onMessage(rawBuffer(data), performance.now());
    });
  }

  #onMessage(buf: Buffer, at: number): void {
    this.frames++;
    this.bytes += buf.length;
    if (this.onRaw?.(this, buf, at) === true) return;
    const failure = this.#failure;
    const text = buf.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      failure.fail(
        new Error(`client ${this.index}: a frame that is not JSON: ${text.slice(0, 200)}`),
      );
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      failure.fail(new Error(`client ${this.index}: a frame that is not an object: ${text}`));
      return;
    }
    const frame = parsed as ServerFrame;
    if (typeof frame.id === 'number') {
      const onReply = this.#pending.get(frame.id);
      if (onReply === undefined) {
        failure.fail(new Error(`client ${this.index}: a reply nobody asked for: ${text}`));
        return;
      }
      this.#pending.delete(frame.id);
      onReply(frame, at, buf.length);
      return;
    }
    if (frame.a === 'eventBatch') {
      if (!Array.isArray(frame.d)) {
        failure.fail(new Error(`client ${this.index}: an eventBatch without a list: ${text}`));
        return;
      }
      this.batches++;
      for (const item of frame.d) {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) {
          failure.fail(new Error(`client ${this.index}: an eventBatch item that is not an event`));
          return;
        }
        this.batchedEvents++;
        this.#event(item as ServerFrame, at);
      }
      return;
    }
    this.#event(frame, at);
  }

  #event(frame: ServerFrame, at: number): void {
    if (this.onEvent !== undefined) {
      this.onEvent(this, frame, at);
    } else {
      this.countEvent(frame);
    }
  }

  countEvent(frame: ServerFrame): void {
    const name = typeof frame.a === 'string' ? frame.a : '(no action)';
    this.otherEvents.set(name, (this.otherEvents.get(name) ?? 0) + 1);
  }

  /** Send a request; `onReply` gets its reply (or its echo). Returns the send time. */
  send(failure: Failure, a: string, d: unknown, onReply: OnReply): number {
    const id = this.#nextId++;
    this.#pending.set(id, onReply);
    const t = performance.now();
    this.ws.send(JSON.stringify({ a, d, id }), (err) => {
      if (err instanceof Error)
        failure.fail(new Error(`client ${this.index}: send failed: ${err.message}`));
    });
    return t;
  }

  async request(
    failure: Failure,
    a: string,
    d: unknown,
  ): Promise<{ frame: ServerFrame; ms: number; bytes: number }> {
    return await new Promise((resolve) => {
      const t = this.send(failure, a, d, (frame, at, bytes) => {
        resolve({ frame, ms: at - t, bytes });
      });
    });
  }

  /** Close with 1000 (leave now). */
  leave(): void {
    this.#leaving = true;
    this.ws.close(1000, 'bench done');
  }

  terminate(): void {
    this.#leaving = true;
    this.ws.terminate();
  }
}

/** Sum of each client's frame counters. */
export function received(conns: readonly Conn[]): {
  frames: number;
  bytes: number;
  batches: number;
  batchedEvents: number;
} {
  const r = { frames: 0, bytes: 0, batches: 0, batchedEvents: 0 };
  for (const c of conns) {
    r.frames += c.frames;
    r.bytes += c.bytes;
    r.batches += c.batches;
    r.batchedEvents += c.batchedEvents;
  }
  return r;
}

/** Events the clients got that no phase was waiting for, by name. */
export function otherEvents(conns: readonly Conn[]): Record<string, number> {
  const all: Record<string, number> = {};
  for (const c of conns) for (const [name, n] of c.otherEvents) all[name] = (all[name] ?? 0) + n;
  return all;
}

export interface ConnectOptions {
  clients: number;
  /** Connects in flight at once. */
  concurrency: number;
  /** Limit of each connect. */
  timeoutMs: number;
}

/**
 * Open `opts.clients` clients, client i to `urls[i % urls.length]`, into `conns` (by index);
 * the run's clean-up terminates them. Returns each connect's time, ms.
 */
export async function connectAll(
  urls: readonly string[],
  opts: ConnectOptions,
  failure: Failure,
  cleanup: Cleanup,
  conns: Conn[],
): Promise<number[]> {
  cleanup.add('close the clients', async () => {
    for (const c of conns) c.terminate();
  });
  const times: number[] = [];
  const indexes = Array.from({ length: opts.clients }, (_, i) => i);
  await pool(indexes, opts.concurrency, async (i) => {
    const url = urls[i % urls.length] as string;
    const conn = new Conn(i, url, failure);
    conns[i] = conn;
    times.push(await failure.guard(`connect client ${i} to ${url}`, opts.timeoutMs, conn.opened));
  });
  return times;
}

/** Close every client with 1000 at once; the time until all are closed, ms. */
export async function closeAll(
  conns: readonly Conn[],
  timeoutMs: number,
  failure: Failure,
): Promise<number> {
  const t0 = performance.now();
  for (const c of conns) c.leave();
  await failure.guard(
    'closing the sockets',
    timeoutMs,
    Promise.all(conns.map(async (c) => await c.closed)),
  );
  return performance.now() - t0;
}
