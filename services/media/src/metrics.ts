/** The media node's Prometheus metrics. */
import { Counter, Gauge, type Registry } from '@switchboard/service';
import type { WorkerPool } from './workers.ts';

export interface MediaMetrics {
  events: Counter<'event'>;
  freezes: Counter;
  workerDeaths: Counter;
}

export function mediaMetrics(registry: Registry, pool: WorkerPool): MediaMetrics {
  new Gauge({
    name: 'sb_media_workers',
    help: 'mediasoup workers alive on this node',
    registers: [registry],
    collect() {
      this.set(pool.live().length);
    },
  });
  new Gauge({
    name: 'sb_media_worker_load',
    help: 'Transports + consumers per mediasoup worker (placement load)',
    labelNames: ['slot'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of pool.live()) this.set({ slot: String(s.index) }, s.load);
    },
  });
  return {
    events: new Counter({
      name: 'sb_media_events_total',
      help: 'Media events sent to client sockets, by event',
      labelNames: ['event'],
      registers: [registry],
    }),
    freezes: new Counter({
      name: 'sb_media_freezes_total',
      help: 'Video producers that froze (score 0 or no bytes)',
      registers: [registry],
    }),
    workerDeaths: new Counter({
      name: 'sb_media_worker_deaths_total',
      help: 'mediasoup workers that died (each is restarted in its slot)',
      registers: [registry],
    }),
  };
}

export function roomsGauge(registry: Registry, rooms: () => number): void {
  new Gauge({
    name: 'sb_media_rooms',
    help: 'Rooms hosted on this node',
    registers: [registry],
    collect() {
      this.set(rooms());
    },
  });
}
