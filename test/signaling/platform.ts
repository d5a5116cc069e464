/**
 * The signaling platform of the tests: the rooms service and two gateways on the real
 * NATS and PostgreSQL, with short windows so expiry is observable, plus a bus client for
 * operator calls (RoomsAdmin, roomInfo).
 */
import { inject } from 'vitest';
import type { Bus } from '@switchboard/bus';
import type { Platform, ServiceProcess } from '@switchboard/devstack';
import { startSfu, usePlatform } from '../sfu/platform.ts';
import { CuttableProxy } from './proxy.ts';

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
  spawn(
    name: 'gateway' | 'rooms' | 'events' | 'api',
    label: string,
    env?: Record<string, string>,
  ): Promise<ServiceProcess>;
  /**
   * Start one more process of `name` that reaches NATS through a proxy of its own, which the
   * test can cut. stop() restores the proxy first (the process and those it serves stop
   * cleanly) and closes it once everything has stopped.
   */
  spawnCuttable(
    name: 'gateway' | 'rooms',
    label: string,
  ): Promise<{ service: ServiceProcess; proxy: CuttableProxy }>;
  stop(): Promise<void>;
}

/** The rooms service and two gateways (no media node). */
export async function startSignaling(
  natsUrl: string,
  pgServerUrl: string,
  env: Record<string, string> = {},
): Promise<SignalingPlatform> {
  const sfu = await startSfu(natsUrl, pgServerUrl, {
    mediaNodes: 0,
    extraGateways: 1,
    env: {
      ...Object.fromEntries(Object.entries(TIMINGS).map(([k, v]) => [k, String(v)])),
      USER_MEDIA_LADDER: JSON.stringify(LADDER),
      // Some tests retry a refused join on the same socket after a service restart, which
      // can take longer than the 10 s default under load.
      WS_JOIN_TIMEOUT_MS: '60000',
      ...env,
    },
  });
  const [gw1, gw2] = sfu.gateways;
  if (gw1 === undefined || gw2 === undefined) throw new Error('two gateways expected');
  const proxies: CuttableProxy[] = [];
  return {
    platform: sfu.platform,
    gw1,
    gw2,
    bus: sfu.bus,
    spawn: async (name, label, env) => await sfu.spawn(name, label, env),
    spawnCuttable: async (name, label) => {
      const proxy = await CuttableProxy.start(natsUrl);
      proxies.push(proxy);
      const service = await sfu.spawn(name, label, {
        NATS_URL: `nats://127.0.0.1:${String(proxy.port)}`,
      });
      return { service, proxy };
    },
    stop: async () => {
      // A cut proxy is restored, so that the services behind it stop cleanly.
      for (const p of proxies) await p.restore();
      await sfu.stop();
      for (const p of proxies) await p.cut();
    },
  };
}

/**
 * A test file's platform: started before its tests (`env` over the defaults) and handed to
 * `started` (which may set up more on it), stopped after them, the clients kept in `open`
 * killed first.
 */
export function useSignaling(
  open: readonly { kill(): void }[],
  started: (sp: SignalingPlatform) => void | Promise<void>,
  env: Record<string, string> = {},
): void {
  usePlatform(
    async () => await startSignaling(inject('natsUrl'), inject('pgServerUrl'), env),
    open,
    started,
  );
}
