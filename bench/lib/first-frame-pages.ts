/**
 * Browser side of `bench/first-frame.ts`: Chromium through playwright-core, and the two pages
 * of the end-to-end tests served as they are from one local HTTP server on 127.0.0.1 (an
 * origin where getUserMedia works): `/sfu` (test/e2e/pages/sfu.ts bundled with
 * the SDK by test/e2e/sfu-page.ts; window.sfu) and `/p2p` (test/e2e/pages/p2p.ts, likewise;
 * window.startP2P). Both are blank documents running only their script.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { bundleP2PPage } from '../../test/e2e/p2p-page.ts';
import { bundleSfuPage } from '../../test/e2e/sfu-page.ts';

export { chromium, type Browser, type BrowserContext, type Page };

export interface PageServer {
  /** `http://127.0.0.1:<port>` (no trailing slash): pages at /sfu and /p2p. */
  origin: string;
  close(): Promise<void>;
}

const html = (title: string, script: string): string => `<!doctype html>
<html>
  <head><meta charset="utf-8" /><link rel="icon" href="data:," /><title>${title}</title></head>
  <body style="margin:8px;background:#fff">
    <script src="${script}"></script>
  </body>
</html>
`;

/** Bundle the SFU and P2P pages, and serve both. */
export async function servePages(): Promise<PageServer> {
  const sfuJs = await bundleSfuPage();
  const p2pJs = await bundleP2PPage();
  const routes = new Map<string, { type: string; body: string }>([
    ['/sfu', { type: 'text/html', body: html('sfu', '/sfu.js') }],
    ['/sfu.js', { type: 'text/javascript', body: sfuJs }],
    ['/p2p', { type: 'text/html', body: html('p2p', '/p2p.js') }],
    ['/p2p.js', { type: 'text/javascript', body: p2pJs }],
  ]);
  const server = createServer((req, res) => {
    const route = routes.get(req.url ?? '');
    if (route === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': `${route.type}; charset=utf-8`,
      'cache-control': 'no-store',
    });
    res.end(route.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${String(port)}`,
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
