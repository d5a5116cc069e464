/**
 * The demo web app in real Chromium (Debian's, fake camera and microphone): two pages open
 * the page the gateway serves at `/`, get dev tokens from it and join one room through the
 * client SDK; both remote videos play (their <video> elements render frames); muting the
 * camera stops the other page's video; with two gateways, the gateway one page is on is
 * SIGKILLed and that page resumes through the other one inside the reconnect window — the
 * same socketId, no rejoin, its remote video playing again. Screenshots in artifacts/e2e/.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { artifactDir, mediasoupWorkerPids, type ServiceProcess } from '@switchboard/devstack';
import { startSfu, SFU_TIMINGS, type SfuPlatform } from '../sfu/platform.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';

const ROOM = 'demo-e2e';
const MEDIA_TIMEOUT_MS = 20_000;

/** What window.demo.state() returns (services/gateway/web/demo.ts). */
interface DemoState {
  sessionState: string;
  socketId: string | null;
  resumed: number;
  rejoined: number;
  restarts: number;
  errors: string[];
  tiles: {
    socketId: string;
    userId: string;
    videos: { consumerId: string; source: string; paused: boolean; frames: number }[];
    audio: number;
  }[];
  local: Record<string, { muted: boolean; producerId: string | null } | null>;
  messages: { from: string; text: string }[];
  members: string[];
}
type PageGlobal = {
  demo: {
    state(): DemoState;
    muteCamera(muted: boolean): Promise<void>;
    muteMicrophone(muted: boolean): Promise<void>;
    leave(): Promise<void>;
    sendChat(text: string): Promise<void>;
    shareScreen(on: boolean): Promise<void>;
  };
};

let sfu: SfuPlatform;
let browser: Browser;
let gwA: ServiceProcess;
let gwB: ServiceProcess;
const pages: { label: string; page: Page; errors: string[] }[] = [];

const ws = (gw: ServiceProcess): string => `${gw.url.replace(/^http/, 'ws')}/api`;

async function openDemo(
  gw: ServiceProcess,
  name: string,
  gateways: string[],
  extra: Record<string, string> = {},
): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  pages.push({ label: name, page, errors });
  const q = new URLSearchParams({
    room: ROOM,
    name,
    autojoin: '1',
    gateways: gateways.join(','),
    ...extra,
  });
  const res = await page.goto(`${gw.url}/?${q.toString()}`);
  expect(res?.status()).toBe(200);
  await page.waitForFunction(() => 'demo' in globalThis);
  return page;
}

async function state(page: Page): Promise<DemoState> {
  return await page.evaluate(() => (globalThis as unknown as PageGlobal).demo.state());
}

/** The frames rendered so far by `page`'s video of the member named `from`. */
async function framesFrom(page: Page, from: string): Promise<number | undefined> {
  const s = await state(page);
  const tile = s.tiles.find((t) => t.userId === from);
  return tile?.videos.find((v) => v.source === 'camera')?.frames;
}

async function until<T>(
  what: string,
  f: () => Promise<T | undefined | false>,
  timeoutMs = MEDIA_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Wait until `from`'s video on `page` plays (more than 10 frames within a second). */
async function playingSoon(page: Page, from: string): Promise<void> {
  await until(`${from}'s video playing`, async () => (await playing(page, from, 10, 1000)) > 0);
}

/** Frames of `from`'s video on `page` grow by more than `min` within `windowMs`. */
async function playing(page: Page, from: string, min = 10, windowMs = 1500): Promise<number> {
  const start = await until(`${from}'s video on the page`, () => framesFrom(page, from));
  await new Promise((r) => setTimeout(r, windowMs));
  const end = (await framesFrom(page, from)) ?? 0;
  return end - start > min ? end - start : 0;
}

/** No page reported an error (the chat's tries before its channel opened aside). */
async function expectNoErrors(): Promise<void> {
  for (const p of pages) {
    const errors = (await state(p.page)).errors.filter(
      (e) => !e.startsWith('chat: SERVICE_UNAVAILABLE'),
    );
    expect(errors, p.label).toEqual([]);
    expect(p.errors, p.label).toEqual([]);
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(artifactDir('e2e'), `demo-${name}.png`) });
}

beforeAll(async () => {
  sfu = await startSfu(inject('natsUrl'), inject('pgServerUrl'), {
    // Pages served by one gateway fail over to another (another origin here: another port).
    env: { GATEWAY_DEV_TOKENS: 'true', DEV_TOKEN_TTL_S: '300', WS_ALLOWED_ORIGINS: '*' },
  });
  gwA = await sfu.spawn('gateway', 'gateway-a');
  gwB = await sfu.spawn('gateway', 'gateway-b');
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, '--disable-features=WebRtcHideLocalIpsWithMdns'],
  });
});

afterAll(async () => {
  const dir = artifactDir('e2e');
  for (const p of [...sfu.gateways, gwA, gwB, ...sfu.media]) {
    writeFileSync(join(dir, `demo-${p.process.name}.log`), `${p.process.output()}\n`);
  }
  await browser.close();
  await sfu.stop();
});

describe('demo web app', () => {
  it('serves dev tokens only where the flag is on', async () => {
    const res = await fetch(`${gwA.url}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: ROOM, name: 'x' }),
    });
    expect(res.status).toBe(200);
    const bad = await fetch(`${gwA.url}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'no spaces allowed', name: 'x' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { name: 'JSON_FIELD_INVALID' } });
    // The platform's first gateway runs without the flag: no such route.
    // (A gateway without the flag refuses the published development secret: its own here.)
    const off = await sfu.spawn('gateway', 'gateway-no-dev', {
      GATEWAY_DEV_TOKENS: 'false',
      AUTH_HS256_SECRET: 'a-secret-of-this-test-only-0123456789abcdef',
    });
    const none = await fetch(`${off.url}/dev/token`, { method: 'POST', body: '{}' });
    expect(none.status).toBe(404);
    await off.stop();
  });

  it('two pages see and hear each other; muting stops the video; a dead gateway is survived', async () => {
    // alice on gateway A (B as its fallback), bob on gateway B.
    const alice = await openDemo(gwA, 'alice', [ws(gwA), ws(gwB)]);
    const bob = await openDemo(gwB, 'bob', [ws(gwB), ws(gwA)]);
    for (const page of [alice, bob]) {
      await page.waitForSelector('body[data-state="connected"]', { timeout: MEDIA_TIMEOUT_MS });
    }

    // Both remote videos play.
    await playingSoon(alice, 'bob');
    await playingSoon(bob, 'alice');
    const a0 = await state(alice);
    expect(a0.tiles.map((t) => t.userId)).toEqual(['bob']);
    // The member list: the page that joined first heard of bob with eventJoin, bob saw alice
    // in joinR.sessions.
    expect(a0.members).toEqual(['you (alice)', 'bob']);
    expect((await state(bob)).members).toEqual(['you (bob)', 'alice']);
    expect(a0.tiles[0]?.audio).toBeGreaterThan(0);
    // The data channel: a chat message reaches the other page.
    await until('the data channel to open', async () => {
      try {
        await alice.evaluate(async () => {
          await (globalThis as unknown as PageGlobal).demo.sendChat('hello from alice');
        });
        return true;
      } catch {
        return false; // not open yet (SERVICE_UNAVAILABLE)
      }
    });
    await until('bob to get the message', async () =>
      (await state(bob)).messages.some((m) => m.from === 'alice' && m.text === 'hello from alice'),
    );
    await shot(alice, 'alice-joined');
    await shot(bob, 'bob-joined');

    // bob mutes his camera: alice's video of him stops; unmuted, it plays again.
    await bob.evaluate(async () => {
      await (globalThis as unknown as PageGlobal).demo.muteCamera(true);
    });
    await until('bob shown paused on alice', async () => {
      const s = await state(alice);
      return s.tiles.find((t) => t.userId === 'bob')?.videos[0]?.paused === true;
    });
    await new Promise((r) => setTimeout(r, 500)); // frames in flight when it paused
    expect(await playing(alice, 'bob', 0, 1500)).toBe(0);
    await shot(alice, 'bob-muted');
    await bob.evaluate(async () => {
      await (globalThis as unknown as PageGlobal).demo.muteCamera(false);
    });
    await playingSoon(alice, 'bob');

    // bob shares his screen (Chromium's fake capture): alice gets a second video, then loses it.
    await bob.evaluate(async () => {
      await (globalThis as unknown as PageGlobal).demo.shareScreen(true);
    });
    await until("bob's screen on alice", async () => {
      const tile = (await state(alice)).tiles.find((t) => t.userId === 'bob');
      return tile?.videos.some((v) => v.source === 'screen' && v.frames > 5);
    });
    await shot(alice, 'bob-sharing');
    await bob.evaluate(async () => {
      await (globalThis as unknown as PageGlobal).demo.shareScreen(false);
    });
    await until("bob's screen gone on alice", async () => {
      const tile = (await state(alice)).tiles.find((t) => t.userId === 'bob');
      return tile !== undefined && !tile.videos.some((v) => v.source === 'screen');
    });

    // Gateway A dies: alice resumes on B inside the window (same socketId, no rejoin).
    const before = await state(alice);
    const killedAt = Date.now();
    await gwA.process.kill();
    const resumed = await until('alice resumed', async () => {
      const s = await state(alice);
      return s.resumed > 0 && s.sessionState === 'connected' ? s : undefined;
    });
    expect(Date.now() - killedAt).toBeLessThan(SFU_TIMINGS.RECONNECT_WINDOW_MS);
    expect(resumed.socketId).toBe(before.socketId);
    expect(resumed.rejoined).toBe(0);
    expect(resumed.restarts).toBe(0);
    await playingSoon(alice, 'bob');
    await playingSoon(bob, 'alice');
    // bob never saw alice leave: her tile is still the same session's.
    expect((await state(bob)).tiles.map((t) => t.socketId)).toEqual([before.socketId]);
    await shot(alice, 'alice-resumed');

    await expectNoErrors();
  });

  it('the media starts again after the SFU loses its worker, and after a rejoin', async () => {
    const [alice, bob] = [pages[0]?.page, pages[1]?.page];
    if (alice === undefined || bob === undefined) throw new Error('the pages of the test before');
    const node = sfu.media[0];
    if (node === undefined) throw new Error('no media node');

    // The worker hosting the room dies: eventMediaReset; both pages set their media up again.
    const consumersBefore = (await state(alice)).tiles.flatMap((t) =>
      t.videos.map((v) => v.consumerId),
    );
    for (const pid of mediasoupWorkerPids(node.process.pid)) process.kill(pid, 'SIGKILL');
    for (const page of [alice, bob]) {
      await until('the media restarted', async () => (await state(page)).restarts > 0);
    }
    await playingSoon(alice, 'bob');
    await playingSoon(bob, 'alice');
    const after = await state(alice);
    expect(after.tiles.flatMap((t) => t.videos.map((v) => v.consumerId))).not.toEqual(
      consumersBefore,
    );
    expect(after.rejoined).toBe(0);

    // carol's only gateway stops answering for longer than the window: when it is back, her
    // session is gone; the SDK joins again (a new socketId) and publishes again.
    const gwC = await sfu.spawn('gateway', 'gateway-c');
    const carol = await openDemo(gwC, 'carol', [ws(gwC)], { heartbeat: '500' });
    await carol.waitForSelector('body[data-state="connected"]', { timeout: MEDIA_TIMEOUT_MS });
    await playingSoon(carol, 'alice');
    await playingSoon(alice, 'carol');
    const first = (await state(carol)).socketId;
    gwC.process.signal('SIGSTOP');
    try {
      // Her read deadline (2 × 500 ms + 5 s) passes, the rooms service takes gateway C for
      // dead and her window (3 s) ends.
      await until(
        'carol gone from the room',
        async () => !(await state(alice)).tiles.some((t) => t.socketId === first),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      gwC.process.signal('SIGCONT');
    }
    const rejoined = await until('carol rejoined', async () => {
      const s = await state(carol);
      // Rejoined, then the media set up again (transports recreated, tracks published).
      return s.rejoined > 0 && s.restarts > 0 && s.sessionState === 'connected' ? s : undefined;
    });
    expect(rejoined.socketId).not.toBe(first);
    await playingSoon(carol, 'alice');
    await playingSoon(alice, 'carol');
    await shot(carol, 'carol-rejoined');
    await expectNoErrors();
  });
});
