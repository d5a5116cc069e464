/**
 * A room's router on one worker, with the room's active-speaker observer for the audio
 * produced on it. A room has one route per worker it spans.
 */
import type { types } from 'mediasoup';
import type { WorkerSlot } from './workers.ts';
import { MEDIA_CODECS } from './codecs.ts';

export interface Route {
  readonly router: types.Router;
  readonly slot: WorkerSlot;
  readonly speaker: types.ActiveSpeakerObserver;
}

export async function createRoute(slot: WorkerSlot, roomId: string): Promise<Route> {
  const router = await slot.worker.createRouter({
    mediaCodecs: MEDIA_CODECS,
    appData: { roomId },
  });
  try {
    const speaker = await router.createActiveSpeakerObserver({ interval: 300 });
    return { router, slot, speaker };
  } catch (err) {
    router.close();
    throw err;
  }
}

/** The route's worker is alive and its router open. */
export function routeAlive(route: Route): boolean {
  return !route.router.closed && !route.slot.worker.died && !route.slot.worker.closed;
}
