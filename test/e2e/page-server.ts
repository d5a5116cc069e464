/**
 * A test page: a script bundled in memory with what it imports (rolldown, which the lockfile
 * already has as Vite's bundler and which needs no install script), served with a bare HTML
 * page from 127.0.0.1 — an origin secure enough for getUserMedia, talking to the gateways
 * like any other web client.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'rolldown';

/**
 * `entry` and what it imports, bundled for a browser: the code, and every import specifier
 * the bundler resolved on the way (to check what a browser bundle pulls in).
 */
export async function browserBundle(
  entry: string,
  format: 'iife' | 'esm' = 'esm',
): Promise<{ code: string; imported: Set<string> }> {
  const imported = new Set<string>();
  const out = await build({
    input: entry,
    platform: 'browser',
    write: false,
    logLevel: 'warn',
    output: { format, minify: false },
    plugins: [
      {
        name: 'record-imports',
        resolveId(source) {
          imported.add(source);
          return null;
        },
      },
    ],
  });
  const chunk = out.output.find((o) => o.type === 'chunk');
  if (chunk === undefined) throw new Error(`rolldown produced no chunk for ${entry}`);
  return { code: chunk.code, imported };
}

/** `entry` and what it imports, as one classic script. */
export async function bundlePage(entry: string): Promise<string> {
  return (await browserBundle(entry, 'iife')).code;
}

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** Serve a page titled `name` at `/` that runs `js` (served at `/<name>.js`), on 127.0.0.1. */
export async function servePage(name: string, js: string): Promise<PageServer> {
  const html = `<!doctype html>
<html>
  <head><meta charset="utf-8" /><link rel="icon" href="data:," /><title>${name}</title></head>
  <body style="margin:8px;background:#fff"><script src="/${name}.js"></script></body>
</html>
`;
  const server = createServer((req, res) => {
    if (req.url === `/${name}.js`) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(js);
    } else if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
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
