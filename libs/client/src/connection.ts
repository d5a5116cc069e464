/**
 * One WebSocket to a gateway: requests with ids and deadlines, their replies, the frames
 * that are not replies (events, server requests), heartbeats with a read deadline. It knows
 * nothing of sessions; a Session opens a new Connection after each drop.
 *
 * A connection ends once (`onLost` is called once): when the socket closes, errors, or stays
 * silent past the read deadline. Requests in flight then fail with SERVICE_UNAVAILABLE —
 * whether the gateway acted on them is unknown.
 */
import { ProtocolError } from '@switchboard/protocol';

/** The part of the WHATWG WebSocket the client uses (browsers', Node 22's global one). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

const OPEN = 1;

/** Close codes the client itself reports when it ends a connection. */
export const ClientCloseCodes = {
  /**
   * Nothing arrived before the read deadline. Also the code of every socket the client
   * abandons: anything but 1000, which the gateway takes for leaving the room.
   */
  readDeadline: 4900,
  /** The socket failed before or without a close frame. */
  failed: 1006,
  /** The session was closed by its owner. */
  normal: 1000,
} as const;

export interface LostInfo {
  code: number;
  reason: string;
}

export interface ConnectionHandlers {
  /** A frame that is not a reply to one of this connection's requests (parsed JSON). */
  onFrame(frame: Record<string, unknown>): void;
  /** The connection ended (called once). */
  onLost(info: LostInfo): void;
}

export interface Heartbeat {
  intervalMs: number;
  /** Silence longer than this ends the connection (seed 004: 2 × interval + grace). */
  readDeadlineMs: number;
  /** The gateway's clock from each heartbeat reply, with the round trip it took. */
  onPong(serverNow: number, rttMs: number): void;
}

interface Pending {
  action: string;
  resolve(d: unknown): void;
  reject(err: ProtocolError): void;
  cleanup(): void;
}

export class Connection {
  readonly url: string;
  readonly #ws: WebSocketLike;
  readonly #handlers: ConnectionHandlers;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #lost: LostInfo | undefined;
  #lastFrameAt = Date.now();
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(url: string, ws: WebSocketLike, handlers: ConnectionHandlers) {
    this.url = url;
    this.#ws = ws;
    this.#handlers = handlers;
  }

  /**
   * Open a WebSocket to `url`. Rejects with SERVICE_UNAVAILABLE when it cannot be opened,
   * TIMEOUT after `timeoutMs`, CANCELLED on `signal`.
   */
  static async open(
    url: string,
    factory: WebSocketFactory,
    handlers: ConnectionHandlers,
    opts: { timeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<Connection> {
    if (opts.signal?.aborted === true) throw new ProtocolError('CANCELLED');
    let ws: WebSocketLike;
    try {
      ws = factory(url);
    } catch (err) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', `cannot open ${url}: ${String(err)}`, {
        cause: err,
      });
    }
    const conn = new Connection(url, ws, handlers);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: ProtocolError): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err === undefined) {
          resolve();
          return;
        }
        ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
        try {
          ws.close();
        } catch {
          // closing a socket that never opened may throw in some implementations: it is gone
        }
        reject(err);
      };
      const onAbort = (): void => {
        done(new ProtocolError('CANCELLED'));
      };
      const timer = setTimeout(() => {
        done(new ProtocolError('TIMEOUT', `${url} did not open in ${String(opts.timeoutMs)} ms`));
      }, opts.timeoutMs);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        conn.#attach();
        done();
      };
      ws.onerror = () => {
        done(new ProtocolError('SERVICE_UNAVAILABLE', `cannot connect to ${url}`));
      };
      ws.onclose = (ev) => {
        done(
          new ProtocolError(
            'SERVICE_UNAVAILABLE',
            `${url} closed before opening (${String(ev.code)} ${ev.reason})`,
          ),
        );
      };
    });
    return conn;
  }

  get lost(): boolean {
    return this.#lost !== undefined;
  }

  /** Send a request and wait for its reply's `d`; rejects with a ProtocolError. */
  async request(
    action: string,
    data: unknown,
    opts: {
      timeoutMs: number;
      signal?: AbortSignal | undefined;
      /** Told the request's `id` as it is sent (to name it later, e.g. in cancelCall). */
      onId?: (id: number) => void;
    },
  ): Promise<unknown> {
    if (opts.signal?.aborted === true) throw new ProtocolError('CANCELLED', action);
    if (this.#lost !== undefined || this.#ws.readyState !== OPEN) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', `${action}: not connected`);
    }
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle(id)?.reject(
          new ProtocolError('TIMEOUT', `${action}: no reply in ${String(opts.timeoutMs)} ms`),
        );
      }, opts.timeoutMs);
      const onAbort = (): void => {
        this.#settle(id)?.reject(new ProtocolError('CANCELLED', action));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        action,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
        },
      });
    });
    this.send({ a: action, d: data, id });
    opts.onId?.(id);
    return await reply;
  }

  /** Write a frame (a notification, or a reply to a server request). */
  send(frame: object): void {
    if (this.#lost !== undefined || this.#ws.readyState !== OPEN) {
      throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected');
    }
    this.#ws.send(JSON.stringify(frame));
  }

  /** Ping every `intervalMs`; end the connection after `readDeadlineMs` of silence. */
  startHeartbeat(hb: Heartbeat): void {
    clearInterval(this.#heartbeatTimer);
    const tick = Math.max(50, Math.min(hb.intervalMs, Math.floor(hb.readDeadlineMs / 4)));
    let lastPing = 0;
    this.#heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastFrameAt > hb.readDeadlineMs) {
        this.#end({ code: ClientCloseCodes.readDeadline, reason: 'read deadline passed' });
        return;
      }
      if (now - lastPing < hb.intervalMs) return;
      lastPing = now;
      const sent = performance.now();
      this.request('ping', {}, { timeoutMs: hb.readDeadlineMs }).then(
        (d) => {
          const serverNow = (d as { now?: unknown } | undefined)?.now;
          if (typeof serverNow === 'number') hb.onPong(serverNow, performance.now() - sent);
        },
        () => {
          // A lost ping is what the read deadline is for: the connection ends there.
        },
      );
    }, tick);
  }

  /** Close the socket; the connection ends now (no frame is handled after this). */
  close(code: number, reason: string): void {
    this.#end({ code, reason }, code);
  }

  /** Close with `code` and wait (at most `timeoutMs`) for the gateway to see it. */
  async closeAndWait(code: number, reason: string, timeoutMs: number): Promise<void> {
    if (this.#lost !== undefined) return;
    const ws = this.#ws;
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#end({ code, reason }, code);
      ws.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    await closed;
  }

  #attach(): void {
    this.#lastFrameAt = Date.now();
    this.#ws.onmessage = (ev) => {
      this.#onMessage(ev.data);
    };
    this.#ws.onclose = (ev) => {
      this.#end({ code: ev.code, reason: ev.reason });
    };
    this.#ws.onerror = () => {
      this.#end({ code: ClientCloseCodes.failed, reason: 'socket error' });
    };
  }

  #onMessage(data: unknown): void {
    if (this.#lost !== undefined) return;
    this.#lastFrameAt = Date.now();
    if (typeof data !== 'string') {
      this.#handlers.onFrame({ a: '', invalid: 'binary frame' });
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      this.#handlers.onFrame({ a: '', invalid: 'not JSON' });
      return;
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      this.#handlers.onFrame({ a: '', invalid: 'not an object' });
      return;
    }
    const f = frame as Record<string, unknown>;
    const id = f['id'];
    if (typeof id === 'number' && typeof f['s'] === 'boolean') {
      const p = this.#settle(id);
      if (p === undefined) return; // answered after its deadline: the caller has moved on
      if (f['a'] !== `${p.action}R`) {
        p.reject(new ProtocolError('SYSTEM', `reply ${String(f['a'])} to ${p.action}`));
      } else if (f['s']) {
        p.resolve(f['d']);
      } else {
        p.reject(ProtocolError.fromCode(typeof f['e'] === 'number' ? f['e'] : 0x500));
      }
      return;
    }
    this.#handlers.onFrame(f);
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    this.#pending.delete(id);
    p.cleanup();
    return p;
  }

  #end(info: LostInfo, closeCode?: number): void {
    if (this.#lost !== undefined) return;
    this.#lost = info;
    clearInterval(this.#heartbeatTimer);
    this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = this.#ws.onerror = null;
    try {
      if (this.#ws.readyState <= OPEN) {
        this.#ws.close(closeCode ?? ClientCloseCodes.readDeadline, info.reason.slice(0, 120));
      }
    } catch {
      // an implementation that refuses a close code: the socket is abandoned all the same
    }
    for (const id of [...this.#pending.keys()]) {
      const p = this.#settle(id);
      p?.reject(
        new ProtocolError('SERVICE_UNAVAILABLE', `${p.action}: connection lost (${info.reason})`),
      );
    }
    this.#handlers.onLost(info);
  }
}
