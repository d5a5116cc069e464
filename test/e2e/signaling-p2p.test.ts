/**
 * Real WebRTC through the signaling path: two Chromium pages, each connected to a different
 * gateway process, join one room and set up a peer connection using only the protocol's
 * exchangeSdp and exchangeCandidate relays. Both remote videos play (their frame counts
 * advance). Peer to peer, so it tests signaling alone; the SFU has its own tests.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { artifactDir, mintToken, waitFor } from '@switchboard/devstack';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';

const PAGE_SCRIPT = join(import.meta.dirname, 'pages', 'p2p.js');

let sp: SignalingPlatform;
let browser: Browser;

beforeAll(async () => {
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // Host candidates as plain loopback addresses, not mDNS names nobody resolves here.
    args: [...CHROMIUM_ARGS, '--disable-features=WebRtcHideLocalIpsWithMdns'],
  });
});

afterAll(async () => {
  await browser.close();
  await sp.stop();
});

interface P2PState {
  errors: string[];
  connection: string;
  socketId: string | null;
  events: string[];
}

async function openPage(gatewayUrl: string, errors: string[]): Promise<Page> {
  // The test's own script goes into the gateway's page inline, which its CSP forbids.
  const page = await browser.newPage({ bypassCSP: true });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${gatewayUrl}/`);
  await page.addScriptTag({ path: PAGE_SCRIPT });
  return page;
}

async function start(page: Page, gatewayUrl: string, user: string): Promise<unknown> {
  const bearer = await mintToken({ sub: user, rooms: ['p2p-room'] });
  const wsUrl = `${gatewayUrl.replace(/^http/, 'ws')}/api`;
  return await page.evaluate(
    async (args) => {
      const w = globalThis as unknown as { startP2P: (a: typeof args) => Promise<unknown> };
      return await w.startP2P(args);
    },
    { wsUrl, bearer, roomId: 'p2p-room' },
  );
}

async function state(page: Page): Promise<P2PState> {
  return await page.evaluate(() => (globalThis as unknown as { p2pState: P2PState }).p2pState);
}

async function frames(page: Page): Promise<number> {
  return await page.evaluate(() =>
    (globalThis as unknown as { remoteFrames: () => number }).remoteFrames(),
  );
}

describe('WebRTC between two browsers through two gateways', () => {
  it('connects and plays both remote videos', async () => {
    const errors: string[] = [];
    const a = await openPage(sp.gw1.url, errors);
    const b = await openPage(sp.gw2.url, errors);
    expect(await start(a, sp.gw1.url, 'alice')).toMatchObject({ roomSize: 1, sessions: [] });
    expect(await start(b, sp.gw2.url, 'bob')).toMatchObject({ roomSize: 2 });

    for (const page of [a, b]) {
      await waitFor(
        'the peer connection',
        async () => (await state(page)).connection === 'connected',
        {
          timeoutMs: 20_000,
        },
      );
    }
    for (const page of [a, b]) {
      const first = await (async () => {
        let n = 0;
        await waitFor('remote video frames', async () => (n = await frames(page)) > 0, {
          timeoutMs: 20_000,
        });
        return n;
      })();
      await waitFor('remote video to advance', async () => (await frames(page)) > first + 10, {
        timeoutMs: 20_000,
      });
    }
    const dir = artifactDir('e2e');
    await a.screenshot({ path: join(dir, 'p2p-alice.png') });
    await b.screenshot({ path: join(dir, 'p2p-bob.png') });

    const sa = await state(a);
    const sb = await state(b);
    expect(sa.errors).toEqual([]);
    expect(sb.errors).toEqual([]);
    expect(sa.events).toContain('eventExchangeSdp');
    expect(sa.events).toContain('eventExchangeCandidate');
    expect(sb.events).toContain('eventExchangeSdp');
    expect(errors).toEqual([]);
    await a.close();
    await b.close();
  });
});
