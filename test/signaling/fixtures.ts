import type { Bus } from '@switchboard/bus';
import {
  DURABLE_ROOM_EVENTS,
  roomEvent,
  roomEventSubject,
  type ClientStats,
  type DurableRoomEventName,
} from '@switchboard/protocol';
/** Payloads and small helpers the signaling tests share. */

/** A minimal SDP: enough for the gateway (it checks the shape and `v=0`, not the media). */
export function sdp(
  type: 'offer' | 'answer',
  tag: string,
): { type: 'offer' | 'answer'; sdp: string } {
  return { type, sdp: `v=0\r\no=- ${tag} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` };
}

/** A client's answer to getClientStats: one connected send transport, nothing else. */
export const CLIENT_STATS: ClientStats = {
  at: 1,
  transports: [{ direction: 'send', state: 'connected' }],
  producers: [],
  consumers: [],
  sendBitrate: 1000,
  recvBitrate: 0,
  packetsLost: 0,
};

/** A host candidate numbered `n` (distinct port per n). */
export function candidate(n: number): { candidate: string; sdpMid: string; sdpMLineIndex: number } {
  return {
    candidate: `candidate:${n} 1 udp 2122260223 192.0.2.1 ${40000 + n} typ host`,
    sdpMid: '0',
    sdpMLineIndex: 0,
  };
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it holds (every 50 ms), failing after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms: ${String(check)}`);
    await sleep(50);
  }
}

/** A durable room event as a test saw it on its subject. */
export interface SeenRoomEvent {
  type: DurableRoomEventName;
  roomId: string;
  data: Record<string, unknown>;
}

/** Every durable room event published on `bus`'s prefix from now on, in arrival order. */
export function collectRoomEvents(bus: Bus): SeenRoomEvent[] {
  const seen: SeenRoomEvent[] = [];
  for (const type of DURABLE_ROOM_EVENTS) {
    bus.subscribe(roomEventSubject(bus.prefix, type), roomEvent[type], (e) => {
      seen.push({ type, roomId: e.roomId, data: e });
    });
  }
  return seen;
}
