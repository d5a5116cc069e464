/**
 * The page of the SFU end-to-end test: pages/sfu.ts (the SDK's web client) bundled and served
 * from 127.0.0.1 (page-server.ts); the page talks to the gateway's WebSocket like any other
 * web client.
 */
import { join } from 'node:path';
import { bundlePage, servePage, type PageServer } from './page-server.ts';

export const SFU_PAGE_ENTRY = join(import.meta.dirname, 'pages', 'sfu.ts');

/** The page script and the SDK as one classic script. */
export async function bundleSfuPage(): Promise<string> {
  return await bundlePage(SFU_PAGE_ENTRY);
}

export type SfuPageServer = PageServer;

/** Serve the bundled page at `/` (and the bundle at `/sfu.js`) on 127.0.0.1. */
export async function serveSfuPage(): Promise<SfuPageServer> {
  return await servePage('sfu', await bundleSfuPage());
}
