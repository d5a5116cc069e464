/**
 * After this gateway was cut off from NATS, what it missed may have changed its sessions:
 * the rooms service may have taken it for dead (sessions put in their window, or ended),
 * and detach messages sent meanwhile were lost. So it lists its sockets to the rooms
 * service: sessions still attached to them are active again, the others' sockets close
 * (4002) and their clients join again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BusLike } from '@switchboard/bus';
import { Rooms } from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';
import type { Disconnector } from './disconnector.ts';
import type { Router } from './router.ts';

const CHUNK = 500;
const BACKOFF_MS = [500, 1000, 2000, 5000];
const GIVE_UP_MS = 5 * 60_000;

export async function resync(
  deps: {
    bus: BusLike;
    router: Router;
    disconnector: Disconnector;
    gatewayId: string;
    gatewayStartedAt: number;
    log: Logger;
  },
  signal: AbortSignal,
): Promise<void> {
  const { bus, router, disconnector, gatewayId, gatewayStartedAt, log } = deps;
  const started = Date.now();
  const all = router.attachments();
  let gone = 0;
  for (let i = 0; i < all.length; i += CHUNK) {
    const chunk = all.slice(i, i + CHUNK);
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await bus.request(
          Rooms.resync,
          { gatewayId, gatewayStartedAt, sessions: chunk },
          { signal },
        );
        const goneIds = new Set(reply.gone.map((g) => g.socketId));
        for (const g of reply.gone) router.detach(g.socketId, g.connectionId, 'expired');
        gone += reply.gone.length;
        // Closed while the request was out: the rooms service just made it active again.
        for (const s of chunk) {
          if (!goneIds.has(s.socketId) && !router.holds(s.socketId, s.connectionId)) {
            disconnector.submit({ ...s, leave: false });
          }
        }
        break;
      } catch (err) {
        if (signal.aborted || Date.now() - started > GIVE_UP_MS) throw err;
        const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] ?? 5000;
        if (attempt === 0) log.warn({ err }, `resync failed; retrying every ${wait} ms or so`);
        await sleep(wait, undefined, { signal });
      }
    }
  }
  log.info({ sockets: all.length, gone }, 'resynced sessions with the rooms service');
}
