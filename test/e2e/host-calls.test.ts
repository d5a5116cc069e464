/**
 * Calls to hosts with a real browser, through the running platform (gateways on real NATS):
 * Chromium calls a Node (werift) host with the SDK's signIn/call over its native
 * RTCPeerConnection, and a Node caller calls a Chromium page that serves as a host. The
 * signaling crosses two gateways; the RPC over the data channel is peer to peer, so it
 * survives the host's gateway dying.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { mintToken, type ServiceProcess } from '@switchboard/devstack';
import { signIn } from '@switchboard/client';
import { Agent } from '@switchboard/example-agent';
import {
  MAX_STREAMS_PER_CHANNEL,
  hostSubjects,
  presenceChange,
  type PresenceChange,
} from '@switchboard/protocol';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';
import {
  HOSTS_CHROMIUM_FLAGS,
  inPage,
  serveHostsPage,
  type HostsPageServer,
} from './hosts-page.ts';
import { HostTest } from './hosts-service.ts';
import { createWeriftPeer, serveNodeHost, wsUrl, type NodeHost } from './hosts-fixtures.ts';

const PRESENCE = { HOST_PRESENCE_INTERVAL_MS: '500', HOST_READ_DEADLINE_GRACE_MS: '1000' };

let sp: SignalingPlatform;
let pages: HostsPageServer;
let browser: Browser;
const closers: (() => Promise<void>)[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  pages = await serveHostsPage();
  // The page has an origin of its own: the gateways admit it (and only it) by name.
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'), {
    ...PRESENCE,
    WS_ALLOWED_ORIGINS: new URL(pages.url).origin,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...HOSTS_CHROMIUM_FLAGS],
  });
});

afterAll(async () => {
  // Pages, hosts and callers first (they hang up their peers), then the browser and platform.
  for (const close of closers.reverse()) await close();
  await browser.close();
  await pages.close();
  await sp.stop();
});

async function openPage(): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(pages.url);
  closers.push(async () => {
    await inPage(page, 'close').catch(() => undefined);
    await page.close();
  });
  return page;
}

async function nodeHost(name: string, urls: string[]): Promise<NodeHost> {
  const token = await mintToken({ sub: `agent-${name}`, rooms: [], extra: { host: name } });
  const h = await serveNodeHost(urls, token);
  closers.push(async () => {
    await h.agent.close();
  });
  return h;
}

async function callerToken(sub: string, call: string[]): Promise<string> {
  return await mintToken({ sub, rooms: [], extra: { call } });
}

describe('Chromium caller → Node host (werift) through two gateways', () => {
  let host: NodeHost;
  let page: Page;

  beforeAll(async () => {
    host = await nodeHost('browser-target', [wsUrl(sp.gw2)]);
    page = await openPage();
    const token = await callerToken('chromium-caller', ['browser-*']);
    expect(await inPage(page, 'signIn', { urls: [wsUrl(sp.gw1)], token })).toBe('chromium-caller');
    const { callId, setupMs } = await inPage(page, 'call', {
      host: 'browser-target',
      timeoutMs: 10_000,
    });
    expect(callId).not.toBe('');
    expect(setupMs).toBeGreaterThan(0);
    expect(host.agent.peers).toBe(1);
  });

  it('unary (ping) and server streaming (metrics)', async () => {
    expect((await inPage(page, 'ping', 41)).seq).toBe(41);
    const rss = await inPage(page, 'metrics', 3);
    expect(rss).toHaveLength(3);
    // The host's own figures: a Node process's resident size.
    for (const r of rss) expect(r).toBeGreaterThan(1_000_000);
  });

  it('a 16 MiB message both ways, content verified on each side', async () => {
    const chars = await inPage(page, 'fullEchoChars');
    const before = host.echoed.length;
    const r = await inPage(page, 'echo', chars);
    expect(r.same).toBe(true);
    // What reached the host is what the page sent (the way back is checked by `same`).
    expect(host.echoed.slice(before)).toEqual([r.sha256]);
  });

  it(`the ${String(MAX_STREAMS_PER_CHANNEL + 1)}th stream is refused while ${String(MAX_STREAMS_PER_CHANNEL)} are open; one cancelled mid-way frees its slot`, async () => {
    // One endless metrics stream (a sample in), then hanging calls up to the limit.
    await inPage(page, 'openStream');
    await inPage(page, 'openHanging', MAX_STREAMS_PER_CHANNEL - 1);
    await expect.poll(() => host.hanging, { timeout: 15_000 }).toBe(MAX_STREAMS_PER_CHANNEL - 1);
    expect(await inPage(page, 'pingOutcome')).toBe('RESOURCE_EXHAUSTED');
    // The stream is cancelled mid-way (AbortSignal): its reset reaches the host before the
    // next call on the same ordered channel, so that one finds the slot free.
    expect(await inPage(page, 'cancelStream')).toBe('CANCELLED');
    expect(await inPage(page, 'pingOutcome')).toBe('OK');
    const outcomes = await inPage(page, 'cancelHanging');
    expect(new Set(outcomes)).toEqual(new Set(['CANCELLED']));
    await expect.poll(() => host.hanging, { timeout: 10_000 }).toBe(0);
    expect(await inPage(page, 'pingOutcome')).toBe('OK');
  });

  it('a deadline expiring: DEADLINE_EXCEEDED, and the host stops the handler', async () => {
    const r = await inPage(page, 'deadline', 300);
    expect(r.status).toBe('DEADLINE_EXCEEDED');
    expect(r.elapsedMs).toBeGreaterThanOrEqual(290);
    expect(r.elapsedMs).toBeLessThan(3000);
    await expect.poll(() => host.hanging, { timeout: 5000 }).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});

describe('Node caller (werift) → Chromium host (BrowserPeer)', () => {
  it('calls the page by name; unary, a stream and a 1 MiB echo', async () => {
    const page = await openPage();
    const hostToken = await mintToken({
      sub: 'chromium-host',
      rooms: [],
      extra: { host: 'page-host' },
    });
    expect(await inPage(page, 'serve', { urls: [wsUrl(sp.gw1)], token: hostToken })).toBe(
      'page-host',
    );
    const caller = await signIn(wsUrl(sp.gw2), {
      token: await callerToken('node-caller', ['page-*']),
      createPeer: createWeriftPeer,
    });
    closers.push(async () => {
      await caller.close();
    });
    const call = await caller.call('page-host', { timeoutMs: 10_000 });
    closers.push(async () => {
      await call.close();
    });
    expect(await inPage(page, 'hostPeers')).toBe(1);
    const who = await call.rpc.stub(HostTest).whoami({});
    expect(who.runtime).toMatch(/Chrome\//);
    const agent = call.rpc.stub(Agent);
    expect((await agent.ping({ seq: 3 })).seq).toBe(3);
    const samples = [];
    for await (const m of agent.metrics({ intervalMs: 10, count: 4 })) samples.push(m);
    expect(samples).toHaveLength(4);
    const data = 'z'.repeat(1 << 20);
    expect((await agent.echo({ data })).data === data).toBe(true);
    // The caller hangs up: the host lets go of the call when its data channel closes (the
    // peer connection itself may take many seconds to notice).
    await call.close();
    const deadline = Date.now() + 5000;
    while ((await inPage(page, 'hostPeers')) !== 0) {
      if (Date.now() > deadline) throw new Error('the page host still holds the call');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(pageErrors).toEqual([]);
  });
});

describe("the host's gateway SIGKILLed during a call", () => {
  it('the data channel keeps working; the host resumes on another gateway, never offline', async () => {
    const gw3: ServiceProcess = await sp.spawn('gateway', 'gateway-3', PRESENCE);
    closers.push(async () => {
      await gw3.process.stop('SIGKILL');
    });
    const changes: PresenceChange[] = [];
    const sub = sp.bus.subscribe(hostSubjects.presenceAll(sp.bus.prefix), presenceChange, (c) => {
      if (c.host === 'survivor') changes.push(c);
    });
    closers.push(async () => {
      sub.unsubscribe();
    });
    // gw3 first: the SDK goes on to gw2 by itself when gw3 is gone.
    const host = await nodeHost('survivor', [wsUrl(gw3), wsUrl(sp.gw2)]);
    const states: string[] = [];
    host.agent.on('state', (s) => {
      states.push(s.state);
    });
    const page = await openPage();
    await inPage(page, 'signIn', {
      urls: [wsUrl(sp.gw1)],
      token: await callerToken('chromium-caller-2', ['survivor']),
    });
    await inPage(page, 'call', { host: 'survivor', timeoutMs: 10_000 });
    expect((await inPage(page, 'ping', 1)).seq).toBe(1);
    await expect.poll(() => changes.some((c) => c.status === 'online')).toBe(true);

    gw3.process.signal('SIGKILL');
    await gw3.process.exited;
    // Peer to peer: the call does not go through any gateway.
    expect((await inPage(page, 'ping', 2)).seq).toBe(2);
    await expect
      .poll(() => states.includes('reconnecting') && host.agent.state === 'connected', {
        timeout: 15_000,
      })
      .toBe(true);
    expect((await inPage(page, 'ping', 3)).seq).toBe(3);
    // Past a whole read deadline and sweep after the kill: still no offline change.
    await new Promise((r) => setTimeout(r, 3000));
    expect(changes.filter((c) => c.status !== 'online')).toEqual([]);
    expect(host.agent.peers).toBe(1);
    expect((await inPage(page, 'ping', 4)).seq).toBe(4);
  });
});
