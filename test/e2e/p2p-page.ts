/**
 * The page of the P2P signaling test and the first-frame benchmark's baseline: pages/p2p.ts
 * (WebRTC peer to peer, signaled through the SDK's Session) bundled as one classic script.
 */
import { join } from 'node:path';
import { bundlePage } from './page-server.ts';

export const P2P_PAGE_ENTRY = join(import.meta.dirname, 'pages', 'p2p.ts');

/** The page script and the SDK as one classic script. */
export async function bundleP2PPage(): Promise<string> {
  return await bundlePage(P2P_PAGE_ENTRY);
}
