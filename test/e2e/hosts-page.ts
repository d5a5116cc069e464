/**
 * The page of the host-call tests and the calls benchmark: pages/hosts.ts bundled with the
 * SDK (@switchboard/client, @switchboard/rpc) and served from 127.0.0.1 (page-server.ts).
 * The page exposes functions on globalThis that the tests drive with page.evaluate.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { bundlePage, servePage, type PageServer } from './page-server.ts';
import type { HostsPageApi } from './pages/hosts.ts';

const ENTRY = join(import.meta.dirname, 'pages', 'hosts.ts');

/**
 * Chromium's flags for calls between it and werift on one machine: host candidates as plain
 * addresses (not mDNS names nobody resolves here) and 127.0.0.1 among them, which werift's
 * LOOPBACK_CONFIG insists on (Chromium leaves loopback out by default).
 */
export const HOSTS_CHROMIUM_FLAGS = [
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

export type HostsPageServer = PageServer;

/** Serve the bundled page at `/` on 127.0.0.1. */
export async function serveHostsPage(): Promise<HostsPageServer> {
  return await servePage('hosts', await bundlePage(ENTRY));
}

/** One of the page's functions (pages/hosts.ts), run in `page`. */
export async function inPage<K extends keyof HostsPageApi>(
  page: Page,
  name: K,
  ...args: Parameters<HostsPageApi[K]>
): Promise<Awaited<ReturnType<HostsPageApi[K]>>> {
  return (await page.evaluate(
    async ([n, a]) => {
      const api = (globalThis as unknown as { hosts: Record<string, (...x: unknown[]) => unknown> })
        .hosts;
      const f = api[n];
      if (f === undefined) throw new Error(`no page function ${n}`);
      return await f(...a);
    },
    [name, args] as [string, unknown[]],
  )) as Awaited<ReturnType<HostsPageApi[K]>>;
}
