/**
 * The SFU platform of the tests: the rooms service, gateways and media nodes on the real
 * NATS and PostgreSQL, with short heartbeats and windows so failures are observable.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { Bus } from '@switchboard/bus';
import {
  ServiceProcess,
  harnessNatsAuth,
  startPlatform,
  uniquePrefix,
  type Platform,
} from '@switchboard/devstack';

export const SFU_TIMINGS = {
  RECONNECT_WINDOW_MS: 3000,
  GATEWAY_HEARTBEAT_MS: 300,
  GATEWAY_DEAD_AFTER_MS: 1500,
  SWEEP_INTERVAL_MS: 200,
  MEDIA_HEARTBEAT_MS: 300,
  MEDIA_NODE_DEAD_AFTER_MS: 1500,
  MEDIA_RECONCILE_MS: 1000,
  MEDIA_FREEZE_CHECK_MS: 1000,
} as const;

export interface SfuOptions {
  /** Media nodes to run (default 1). */
  mediaNodes?: number;
  /** mediasoup workers per media node (default 1). */
  workers?: number;
  /** Extra gateways beyond the first (default 0). */
  extraGateways?: number;
  env?: Record<string, string>;
}

export interface SfuPlatform {
  platform: Platform;
  gateways: ServiceProcess[];
  media: ServiceProcess[];
  /** A bus client for operator calls and for watching subjects. */
  bus: Bus;
  subjectPrefix: string;
  /** `ws://…/api` of gateway `i`. */
  wsUrl(i?: number): string;
  /** Start one more process of `name` on the same NATS and database. */
  spawn(
    name: 'gateway' | 'rooms' | 'media' | 'events' | 'api',
    label: string,
    env?: Record<string, string>,
  ): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

/**
 * The rooms service, its gateways (one, plus `extraGateways`) and media nodes (`mediaNodes`,
 * default 1) on the real NATS and PostgreSQL, and a bus client of the tests.
 */
export async function startSfu(
  natsUrl: string,
  pgServerUrl: string,
  opts: SfuOptions = {},
): Promise<SfuPlatform> {
  const subjectPrefix = uniquePrefix('sfu');
  const workers = String(opts.workers ?? 1);
  const platform = await startPlatform({
    natsUrl,
    subjectPrefix,
    pgServerUrl,
    names: ['rooms', 'gateway'],
    env: {
      ...Object.fromEntries(Object.entries(SFU_TIMINGS).map(([k, v]) => [k, String(v)])),
      MEDIASOUP_WORKERS: workers,
      LOG_LEVEL: 'info',
      ...opts.env,
    },
  });
  const extra: ServiceProcess[] = [];
  const spawn = async (
    name: 'gateway' | 'rooms' | 'media' | 'events' | 'api',
    label: string,
    env: Record<string, string> = {},
  ): Promise<ServiceProcess> => {
    const p = await ServiceProcess.start(name, { ...platform.env, ...env }, { label });
    extra.push(p);
    await p.waitReady();
    return p;
  };
  const gateways = [platform.get('gateway')];
  const media: ServiceProcess[] = [];
  const bus = new Bus({
    servers: natsUrl,
    // The tests' own identity (everything): it watches subjects and makes operator calls.
    auth: harnessNatsAuth(),
    prefix: subjectPrefix,
    service: 'gateway',
    instanceId: 'test-operator',
    log: pino({ level: 'silent' }),
    requestTimeoutMs: 5000,
  });
  const stop = async (): Promise<void> => {
    await bus.close();
    // The API and the gateways first, while the rooms service still takes their last
    // requests and disconnects.
    const all = [...extra, ...platform.services.values()];
    for (const kind of ['api', 'gateway', 'media', 'events', 'rooms'] as const) {
      await Promise.all(
        all
          .filter((p) => p.name === kind && p.process.running)
          .map(async (p) => {
            await p.stop();
          }),
      );
    }
    await platform.stop();
  };
  try {
    for (let i = 0; i < (opts.extraGateways ?? 0); i++) {
      gateways.push(await spawn('gateway', `gateway-${String(i + 2)}`));
    }
    for (let i = 0; i < (opts.mediaNodes ?? 1); i++) {
      media.push(
        await spawn('media', `media-${String(i + 1)}`, { INSTANCE_ID: `media-${String(i + 1)}` }),
      );
    }
    await bus.whenConnected(AbortSignal.timeout(10_000));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    platform,
    gateways,
    media,
    bus,
    subjectPrefix,
    wsUrl: (i = 0) => {
      const gw = gateways[i];
      if (gw === undefined) throw new Error(`no gateway ${String(i)}`);
      return `${gw.url.replace(/^http/, 'ws')}/api`;
    },
    spawn,
    stop,
  };
}

/**
 * A test file's (or describe's) platform: started by `start` before its tests and handed to
 * `started` (which may set up more on it); after them, what consumes before what it consumes
 * from — the clients kept in `open` killed, the platform stopped, then what `closeLast` holds
 * (servers the platform's services were clients of) closed.
 */
export function usePlatform<P extends { stop(): Promise<void> }>(
  start: () => Promise<P>,
  open: readonly { kill(): void }[],
  started: (platform: P) => void | Promise<void>,
  closeLast: readonly { close(): Promise<void> }[] = [],
): void {
  let platform: P | undefined;
  beforeAll(async () => {
    platform = await start();
    await started(platform);
  });
  afterAll(async () => {
    for (const c of open) c.kill();
    await platform?.stop();
    for (const c of closeLast) await c.close();
  });
}

/**
 * A test file's (or describe's) SFU platform (`opts`): started before its tests and handed to
 * `started`, stopped after them, the clients kept in `open` killed first.
 */
export function useSfu(
  open: readonly { kill(): void }[],
  started: (sfu: SfuPlatform) => void | Promise<void>,
  opts: SfuOptions = {},
): void {
  usePlatform(
    async () => await startSfu(inject('natsUrl'), inject('pgServerUrl'), opts),
    open,
    started,
  );
}
