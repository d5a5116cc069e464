/**
 * Bundles the demo web app (web/demo.ts with the client SDK and mediasoup-client) into
 * public/dist/demo.js, which the gateway serves at `/`. The services themselves have no build
 * step; the browser needs one script. `./run setup` runs this (so do `./run start` and
 * `./run test`); it takes about a second and rewrites the bundle only when it changed.
 *
 *   node services/gateway/web/build.ts [--check]   --check: fail when the bundle is stale
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build } from 'rolldown';

const HERE = import.meta.dirname;
export const DEMO_ENTRY = join(HERE, 'demo.ts');
export const DEMO_BUNDLE = join(HERE, '..', 'public', 'dist', 'demo.js');

/** The demo as one browser script (an IIFE: no module loading at run time). */
export async function bundleDemo(): Promise<string> {
  const out = await build({
    input: DEMO_ENTRY,
    platform: 'browser',
    write: false,
    logLevel: 'warn',
    output: { format: 'iife', minify: true, sourcemap: false },
  });
  const chunk = out.output.find((o) => o.type === 'chunk');
  if (chunk === undefined) throw new Error('rolldown produced no chunk for the demo');
  return chunk.code;
}

async function main(): Promise<void> {
  const code = await bundleDemo();
  const current = existsSync(DEMO_BUNDLE) ? readFileSync(DEMO_BUNDLE, 'utf8') : undefined;
  if (current === code) return;
  if (process.argv.includes('--check')) {
    process.stderr.write(`${DEMO_BUNDLE} is stale: run node services/gateway/web/build.ts\n`);
    process.exit(1);
  }
  mkdirSync(dirname(DEMO_BUNDLE), { recursive: true });
  writeFileSync(DEMO_BUNDLE, code);
  process.stdout.write(
    `demo bundle: ${DEMO_BUNDLE} (${String(Math.round(code.length / 1024))} KiB)\n`,
  );
}

if (process.argv[1] === import.meta.filename) await main();
