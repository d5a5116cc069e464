/**
 * Real WebRTC through the signaling path: two Chromium pages, each connected to a different
 * gateway process, join one room and set up a peer connection using only the protocol's
 * exchangeSdp and exchangeCandidate relays, through the SDK's Session (pages/p2p.ts). Both remote videos play (their frame counts
 * advance). Peer to peer, so it tests signaling alone; the SFU has its own tests.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { artifactDir, mintToken, waitFor } from '@switchboard/devstack';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';
import { bundleP2PPage } from './p2p-page.ts';
import type { P2PGlobal, P2PState } from './pages/p2p.ts';

/** The page's script (pages/p2p.ts) with the SDK, bundled. */
let pageScript: string;
let sp: SignalingPlatform;
let browser: Browser;

beforeAll(async () => {
  pageScript = await bundleP2PPage();
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

async function openPage(gatewayUrl: string, errors: string[]): Promise<Page> {
  // The test's own script goes into the gateway's page inline, which its CSP forbids.
  const page = await browser.newPage({ bypassCSP: true });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${gatewayUrl}/`);
  await page.addScriptTag({ content: pageScript });
  return page;
}

async function start(page: Page, gatewayUrl: string, user: string): Promise<unknown> {
  const bearer = await mintToken({ sub: user, rooms: ['p2p-room'] });
  const wsUrl = `${gatewayUrl.replace(/^http/, 'ws')}/api`;
  return await page.evaluate(
    async (args) => await (globalThis as unknown as P2PGlobal).startP2P(args),
    { wsUrl, bearer, roomId: 'p2p-room' },
  );
}

async function state(page: Page): Promise<P2PState> {
  const s = await page.evaluate(() => (globalThis as unknown as P2PGlobal).p2pState);
  if (s === undefined) throw new Error('the page has not started');
  return s;
}

async function frames(page: Page): Promise<number> {
  return await page.evaluate(() => (globalThis as unknown as P2PGlobal).remoteFrames());
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
