/**
 * The signaling platform of the tests: the rooms service and two gateways on the real
 * NATS and PostgreSQL, with short windows so expiry is observable, plus a bus client for
 * operator calls (configureRoom, roomInfo).
 */
import { pino } from 'pino';
import { Bus } from '@switchboard/bus';
import { ServiceProcess, startPlatform, uniquePrefix, type Platform } from '@switchboard/devstack';

export const TIMINGS = {
  RECONNECT_WINDOW_MS: 3000,
  GATEWAY_HEARTBEAT_MS: 300,
  GATEWAY_DEAD_AFTER_MS: 1500,
  SWEEP_INTERVAL_MS: 200,
} as const;

/** Steps at 1, 2 and 10 members, so joins and leaves cross them. */
export const LADDER = [
  { maxSize: 1, width: 1280, height: 720, frameRate: 30 },
  { maxSize: 2, width: 960, height: 540, frameRate: 30 },
  { maxSize: 10, width: 640, height: 360, frameRate: 24 },
  { maxSize: 100000, width: 320, height: 180, frameRate: 15 },
];

export interface SignalingPlatform {
  platform: Platform;
  gw1: ServiceProcess;
  gw2: ServiceProcess;
  bus: Bus;
  /** Start one more process of `name` on the same NATS and database. */
  spawn(name: 'gateway' | 'rooms', label: string): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export async function startSignaling(
  natsUrl: string,
  pgServerUrl: string,
  env: Record<string, string> = {},
): Promise<SignalingPlatform> {
  const subjectPrefix = uniquePrefix('sig');
  const platform = await startPlatform({
    natsUrl,
    subjectPrefix,
    pgServerUrl,
    names: ['rooms', 'gateway'],
    env: {
      ...Object.fromEntries(Object.entries(TIMINGS).map(([k, v]) => [k, String(v)])),
      USER_MEDIA_LADDER: JSON.stringify(LADDER),
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  const extra: ServiceProcess[] = [];
  const spawn = async (name: 'gateway' | 'rooms', label: string): Promise<ServiceProcess> => {
    const p = await ServiceProcess.start(name, { ...platform.env }, { label });
    extra.push(p);
    await p.waitReady();
    return p;
  };
  let gw2: ServiceProcess;
  try {
    gw2 = await spawn('gateway', 'gateway-2');
  } catch (err) {
    await platform.stop();
    throw err;
  }
  const bus = new Bus({
    servers: natsUrl,
    prefix: subjectPrefix,
    service: 'gateway',
    instanceId: 'test-operator',
    log: pino({ level: 'silent' }),
    requestTimeoutMs: 5000,
  });
  await bus.whenConnected(AbortSignal.timeout(10_000));
  return {
    platform,
    gw1: platform.get('gateway'),
    gw2,
    bus,
    spawn,
    async stop() {
      await bus.close();
      // Gateways first, while a rooms service still takes their last disconnects (else
      // each would retry them until its shutdown deadline).
      const all = [...extra, ...platform.services.values()];
      for (const kind of ['gateway', 'rooms'] as const) {
        await Promise.all(
          all
            .filter((p) => p.name === kind && p.process.running)
            .map(async (p) => {
              await p.stop();
            }),
        );
      }
      await platform.stop();
    },
  };
}
