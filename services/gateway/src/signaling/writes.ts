/**
 * Client socket writes held to the end of the event-loop turn. A socket often gets several
 * frames in one turn (a relay's reply and relays from its peers, read from NATS together);
 * corked, they leave in one write instead of one syscall per frame — syscalls are most of
 * what a relay costs. What must follow the writes (a relay's acknowledgement: delivered
 * means written) waits for them with `afterWrites`.
 */
import type { WebSocket } from '@fastify/websocket';

/** The part of a net.Socket that corking needs. */
interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableCorked: number;
}

let corked: Corkable[] = [];
let waiting: (() => void)[] = [];
let scheduled = false;

/**
 * Hold what is written to `ws` from now until the end of this turn. ws has no public handle
 * on its socket; without one (another ws version), frames are written one by one as before.
 */
export function corkForTurn(ws: WebSocket): void {
  const sock = (ws as unknown as { _socket?: Corkable | null })._socket;
  if (sock === undefined || sock === null || sock.writableCorked > 0) return;
  sock.cork();
  corked.push(sock);
  if (scheduled) return;
  scheduled = true;
  // After the I/O callbacks of this turn, so everything they write joins in.
  setImmediate(flush);
}

/** Run `fn` (which must not throw) once the writes held now went out: at once if none. */
export function afterWrites(fn: () => void): void {
  if (corked.length === 0) {
    fn();
    return;
  }
  waiting.push(fn);
}

function flush(): void {
  scheduled = false;
  const socks = corked;
  const fns = waiting;
  corked = [];
  waiting = [];
  // A destroyed socket ignores it; one that was ended has been flushed by end().
  for (const s of socks) s.uncork();
  for (const fn of fns) fn();
}
