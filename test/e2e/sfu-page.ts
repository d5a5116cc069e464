/**
 * The page of the SFU end-to-end test: pages/sfu.js bundled with mediasoup-client in memory
 * (rolldown, which the lockfile already has as Vite's bundler and which needs no install
 * script) and served from a local HTTP server on 127.0.0.1, so the page has a secure-enough
 * origin for getUserMedia and talks to the gateway's WebSocket like any other web client.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { build } from 'rolldown';

export const SFU_PAGE_ENTRY = join(import.meta.dirname, 'pages', 'sfu.js');

/** The page script and mediasoup-client as one classic script. */
export async function bundleSfuPage(): Promise<string> {
  const out = await build({
    input: SFU_PAGE_ENTRY,
    platform: 'browser',
    write: false,
    logLevel: 'warn',
    output: { format: 'iife', minify: false },
  });
  const chunk = out.output.find((o) => o.type === 'chunk');
  if (chunk === undefined) throw new Error('rolldown produced no chunk for the SFU page');
  return chunk.code;
}

export interface SfuPageServer {
  url: string;
  close(): Promise<void>;
}

const HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8" /><link rel="icon" href="data:," /><title>sfu</title></head>
  <body style="margin:8px;background:#fff">
    <script src="/sfu.js"></script>
  </body>
</html>
`;

/** Serve the bundled page at `/` (and the bundle at `/sfu.js`) on 127.0.0.1. */
export async function serveSfuPage(): Promise<SfuPageServer> {
  const js = await bundleSfuPage();
  const server = createServer((req, res) => {
    if (req.url === '/sfu.js') {
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
