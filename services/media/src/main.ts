import { availableParallelism } from 'node:os';
import { MediaConfig } from '@switchboard/protocol';
import { Counter, Gauge, runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { WorkerPool } from './workers.ts';

await runService({
  name: 'media',
  version: pkg.version,
  config: MediaConfig,
  async setup(svc) {
    const { config } = svc;
    const pool = await WorkerPool.create({
      count: config.MEDIASOUP_WORKERS === 0 ? availableParallelism() : config.MEDIASOUP_WORKERS,
      listenIp: config.MEDIASOUP_LISTEN_IP,
      announcedAddress: config.MEDIASOUP_ANNOUNCED_ADDRESS,
      portBase: config.MEDIASOUP_RTC_PORT,
      logLevel: config.MEDIASOUP_LOG_LEVEL,
      workerBin: config.MEDIASOUP_WORKER_BIN,
      log: svc.log,
    });
    svc.readiness.add('mediasoup', () => pool.healthy);
    svc.onShutdown('mediasoup', async () => {
      await pool.close();
    });

    new Gauge({
      name: 'sb_media_workers',
      help: 'mediasoup workers alive on this node',
      registers: [svc.metrics],
      collect() {
        this.set(pool.slots.filter((s) => !s.worker.died && !s.worker.closed).length);
      },
    });
    const died = new Counter({
      name: 'sb_media_worker_deaths_total',
      help: 'mediasoup workers that died (each is restarted in its slot)',
      registers: [svc.metrics],
    });
    pool.on('workerdied', () => {
      died.inc();
    });
  },
});
