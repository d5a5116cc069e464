/**
 * Client socket writes: one write per socket and event-loop turn. A socket often gets several
 * frames in one turn (a relay's reply and relays from its peers, read from NATS together);
 * they leave in one write instead of one per frame — syscalls are most of what a relay costs.
 *
 * The frames are framed here (RFC 6455 §5.2: a server's frames are final, unmasked, text) and
 * copied into one buffer handed to the TCP socket once: `ws.send` costs a header buffer and
 * two stream writes per frame, and a corked stream a writev of all of those chunks, which a
 * profile of the relay path put at a tenth of the gateway's CPU. Control frames (ping, close)
 * still go through ws: `flush()` writes what is queued before a close so that it comes
 * first. What must follow the writes (a relay's acknowledgement: delivered means written)
 * waits for them with `afterWrites`.
 */
/** The part of a ws WebSocket that writing needs. */
interface WebSocketLike {
  readonly readyState: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  send(data: Buffer, opts: { binary: false }): void;
}

/** The part of a net.Socket that writing needs. */
interface RawSocket {
  write(chunk: Buffer): boolean;
  readonly destroyed: boolean;
}

const FIN_TEXT = 0x81;

/** The frame header's length for a payload of `n` bytes (no mask: a server's frames). */
function headerLength(n: number): number {
  return n < 126 ? 2 : n < 65_536 ? 4 : 10;
}

/** The queued frames of one socket, written when the turn ends (or before a close). */
export class FrameWriter {
  readonly #ws: WebSocketLike;
  readonly #sock: RawSocket | undefined;
  #frames: Buffer[] = [];
  /** Bytes queued: headers and payloads. */
  #bytes = 0;

  constructor(ws: WebSocketLike) {
    this.#ws = ws;
    // ws has no public handle on its socket; without one (another ws version) frames are
    // sent one by one with ws.send.
    const sock = (ws as unknown as { _socket?: RawSocket | null })._socket;
    this.#sock = sock === null ? undefined : sock;
  }

  /** Bytes queued here and not yet taken by the socket, and those the socket still holds. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount + this.#bytes;
  }

  /** Queue one text frame (its UTF-8 payload) for the end of this turn. */
  text(payload: Buffer): void {
    if (this.#sock === undefined) {
      this.#ws.send(payload, { binary: false });
      return;
    }
    if (this.#frames.length === 0) queue(this);
    this.#frames.push(payload);
    this.#bytes += headerLength(payload.length) + payload.length;
  }

  /** Write what is queued now, as one buffer. */
  flush(): void {
    const frames = this.#frames;
    if (frames.length === 0) return;
    const out = Buffer.allocUnsafe(this.#bytes);
    this.#frames = [];
    this.#bytes = 0;
    let at = 0;
    for (const p of frames) {
      const n = p.length;
      out[at] = FIN_TEXT;
      if (n < 126) {
        out[at + 1] = n;
        at += 2;
      } else if (n < 65_536) {
        out[at + 1] = 126;
        out.writeUInt16BE(n, at + 2);
        at += 4;
      } else {
        out[at + 1] = 127;
        out.writeUInt32BE(Math.floor(n / 2 ** 32), at + 2);
        out.writeUInt32BE(n >>> 0, at + 6);
        at += 10;
      }
      at += p.copy(out, at);
    }
    // After a close frame (ws answered the client's close, or the socket ended) nothing more
    // may be sent: the client is leaving, and what was queued for it goes nowhere.
    const sock = this.#sock;
    if (sock === undefined || sock.destroyed || this.#ws.readyState !== this.#ws.OPEN) return;
    // No callback: a write that fails errors the socket, which ws then destroys, and the
    // connection's 'close' handler runs as for any drop.
    sock.write(out);
  }
}

let pending: FrameWriter[] = [];
let waiting: (() => void)[] = [];
let scheduled = false;

function queue(w: FrameWriter): void {
  pending.push(w);
  if (scheduled) return;
  scheduled = true;
  // After the I/O callbacks of this turn, so everything they write joins in.
  setImmediate(flushAll);
}

/** Run `fn` (which must not throw) once the writes queued now went out: at once if none. */
export function afterWrites(fn: () => void): void {
  if (pending.length === 0) {
    fn();
    return;
  }
  waiting.push(fn);
}

function flushAll(): void {
  scheduled = false;
  const writers = pending;
  const fns = waiting;
  pending = [];
  waiting = [];
  for (const w of writers) w.flush();
  for (const fn of fns) fn();
}
