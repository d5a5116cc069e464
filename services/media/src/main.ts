import { availableParallelism } from 'node:os';
import { MediaConfig } from '@switchboard/protocol';
import { runService } from '@switchboard/service';
import pkg from '../package.json' with { type: 'json' };
import { mediaMetrics, roomsGauge } from './metrics.ts';
import { MediaNode } from './node.ts';
import { WorkerPool } from './workers.ts';
import { PlainTargets } from './plain-targets.ts';

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
    // The workers outlive the node's goodbye.
    svc.onShutdown(
      'mediasoup',
      async () => {
        await pool.close();
      },
      { after: ['media-node'] },
    );

    const metrics = mediaMetrics(svc.metrics, pool);
    pool.on('workerdied', () => {
      metrics.workerDeaths.inc();
    });
    const node = new MediaNode({
      bus: svc.bus,
      pool,
      nodeId: svc.instanceId,
      limits: {
        maxLoad: config.MEDIASOUP_WORKER_MAX_LOAD,
        maxTransportsPerPeer: config.MEDIA_MAX_TRANSPORTS_PER_PEER,
        maxProducersPerPeer: config.MEDIA_MAX_PRODUCERS_PER_PEER,
        initialOutgoingBitrate: config.MEDIA_INITIAL_OUTGOING_BITRATE,
      },
      plainListen: config.MEDIA_PLAIN_TRANSPORTS
        ? { ip: config.MEDIASOUP_LISTEN_IP, announcedAddress: config.MEDIASOUP_ANNOUNCED_ADDRESS }
        : undefined,
      plainTargets: PlainTargets.parse(config.MEDIA_PLAIN_ALLOWED_CIDRS),
      recvTransportsPerMin: config.MEDIA_RECV_TRANSPORTS_PER_MIN,
      heartbeatMs: config.MEDIA_HEARTBEAT_MS,
      reconcileMs: config.MEDIA_RECONCILE_MS,
      freezeCheckMs: config.MEDIA_FREEZE_CHECK_MS,
      log: svc.log,
      metrics,
    });
    roomsGauge(svc.metrics, () => node.rooms);
    node.start();
    svc.onShutdown('media-node', async () => {
      await node.stop(AbortSignal.timeout(5000));
    });
  },
});
