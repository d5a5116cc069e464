/**
 * Client socket writes: one write per socket and event-loop turn. A socket often gets several
 * frames in one turn (a relay's reply and relays from its peers, read from NATS together);
 * they leave in one write instead of one per frame — syscalls are most of what a relay costs.
 *
 * The frames are framed here (RFC 6455 §5.2: a server's frames are final, unmasked, text);
 * headers and small payloads are copied into one buffer handed to the TCP socket once (a big
 * payload, shared by many sockets, is written beside it uncopied): `ws.send` costs a header
 * buffer and two stream writes per frame, and a corked stream a writev of all of those
 * chunks, which a profile of the relay path put at a tenth of the gateway's CPU. Control frames (ping, close)
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
  cork(): void;
  uncork(): void;
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

  /**
   * Write what is queued now. Headers and small payloads are copied into one buffer; a big
   * payload (a room's eventBatch, the same bytes for every member) is written as it is, not
   * copied once per member: then the socket is corked for one writev of the pieces.
   */
  flush(): void {
    const frames = this.#frames;
    if (frames.length === 0) return;
    this.#frames = [];
    this.#bytes = 0;
    // After a close frame (ws answered the client's close, or the socket ended) nothing more
    // may be sent: the client is leaving, and what was queued for it goes nowhere.
    const sock = this.#sock;
    if (sock === undefined || sock.destroyed || this.#ws.readyState !== this.#ws.OPEN) return;
    const chunks: Buffer[] = [];
    let copied = 0;
    for (const p of frames) copied += headerLength(p.length) + (p.length < COPY_MAX ? p.length : 0);
    let out = Buffer.allocUnsafe(copied);
    let at = 0;
    for (const p of frames) {
      at = header(out, at, p.length);
      if (p.length < COPY_MAX) {
        at += p.copy(out, at);
        continue;
      }
      chunks.push(out.subarray(0, at), p);
      out = out.subarray(at);
      at = 0;
    }
    if (at > 0) chunks.push(out.subarray(0, at));
    // No callback: a write that fails errors the socket, which ws then destroys, and the
    // connection's 'close' handler runs as for any drop.
    if (chunks.length === 1) {
      sock.write(chunks[0] as Buffer);
      return;
    }
    sock.cork();
    for (const c of chunks) sock.write(c);
    sock.uncork();
  }
}

/** Payloads shorter than this are copied next to their header; longer ones are written as they are. */
const COPY_MAX = 4096;

/** Write a text frame's header for a payload of `n` bytes at `at`; returns where it ends. */
function header(out: Buffer, at: number, n: number): number {
  out[at] = FIN_TEXT;
  if (n < 126) {
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 65_536) {
    out[at + 1] = 126;
    out.writeUInt16BE(n, at + 2);
    return at + 4;
  }
  out[at + 1] = 127;
  out.writeUInt32BE(Math.floor(n / 2 ** 32), at + 2);
  out.writeUInt32BE(n >>> 0, at + 6);
  return at + 10;
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
