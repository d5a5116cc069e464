/**
 * The page of the host-call tests and the calls benchmark: pages/hosts.ts bundled with the
 * SDK (@switchboard/client, @switchboard/rpc) in memory by rolldown and served from
 * 127.0.0.1, like sfu-page.ts. The page exposes functions on globalThis that the tests drive
 * with page.evaluate.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { build } from 'rolldown';
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

async function bundle(): Promise<string> {
  const out = await build({
    input: ENTRY,
    platform: 'browser',
    write: false,
    logLevel: 'warn',
    output: { format: 'iife', minify: false },
  });
  const chunk = out.output.find((o) => o.type === 'chunk');
  if (chunk === undefined) throw new Error('rolldown produced no chunk for the hosts page');
  return chunk.code;
}

const HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8" /><link rel="icon" href="data:," /><title>hosts</title></head>
  <body><script src="/hosts.js"></script></body>
</html>
`;

export interface HostsPageServer {
  url: string;
  close(): Promise<void>;
}

/** Serve the bundled page at `/` on 127.0.0.1. */
export async function serveHostsPage(): Promise<HostsPageServer> {
  const js = await bundle();
  const server = createServer((req, res) => {
    if (req.url === '/hosts.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(js);
    } else if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(HTML);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${String(port)}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
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
