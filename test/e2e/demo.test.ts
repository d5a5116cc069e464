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
import type { Browser } from 'playwright-core';
import { artifactDir, mediasoupWorkerPids, type ServiceProcess } from '@switchboard/devstack';
import { startSfu, SFU_TIMINGS, type SfuPlatform } from '../sfu/platform.ts';
import { launchChromium, openInChromium } from './browsers.ts';
import { until, type DemoPage } from './demo-page.ts';

const ROOM = 'demo-e2e';

let sfu: SfuPlatform;
let browser: Browser;
let gwA: ServiceProcess;
let gwB: ServiceProcess;
const pages: DemoPage[] = [];

const ws = (gw: ServiceProcess): string => `${gw.url.replace(/^http/, 'ws')}/api`;

async function openDemo(
  gw: ServiceProcess,
  name: string,
  gateways: string[],
  extra: Record<string, string> = {},
): Promise<DemoPage> {
  const q = new URLSearchParams({
    room: ROOM,
    name,
    autojoin: '1',
    gateways: gateways.join(','),
    ...extra,
  });
  const page = await openInChromium(browser, `${gw.url}/?${q.toString()}`, name);
  pages.push(page);
  return page;
}

/** No page reported an error. */
async function expectNoErrors(): Promise<void> {
  for (const p of pages) await p.expectNoErrors();
}

async function shot(page: DemoPage, name: string): Promise<void> {
  await page.driver.screenshot(join(artifactDir('e2e'), `demo-${name}.png`));
}

beforeAll(async () => {
  sfu = await startSfu(inject('natsUrl'), inject('pgServerUrl'), {
    // Pages served by one gateway fail over to another (another origin here: another port).
    env: { GATEWAY_DEV_TOKENS: 'true', DEV_TOKEN_TTL_S: '300', WS_ALLOWED_ORIGINS: '*' },
  });
  gwA = await sfu.spawn('gateway', 'gateway-a');
  gwB = await sfu.spawn('gateway', 'gateway-b');
  browser = await launchChromium(['--disable-features=WebRtcHideLocalIpsWithMdns']);
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
    for (const page of [alice, bob]) await page.connected();

    // Both remote videos play.
    await alice.playingSoon('bob');
    await bob.playingSoon('alice');
    const a0 = await alice.state();
    expect(a0.tiles.map((t) => t.userId)).toEqual(['bob']);
    // The member list: the page that joined first heard of bob with eventJoin, bob saw alice
    // in joinR.sessions.
    expect(a0.members).toEqual(['you (alice)', 'bob']);
    expect((await bob.state()).members).toEqual(['you (bob)', 'alice']);
    expect(a0.tiles[0]?.audio).toBeGreaterThan(0);
    // The data channel: a chat message reaches the other page.
    await alice.chat('hello from alice');
    await bob.received('alice', 'hello from alice');
    await shot(alice, 'alice-joined');
    await shot(bob, 'bob-joined');

    // bob mutes his camera: alice's video of him stops; unmuted, it plays again.
    await bob.act('muteCamera', true);
    await until('bob shown paused on alice', async () => {
      const s = await alice.state();
      return s.tiles.find((t) => t.userId === 'bob')?.videos[0]?.paused === true;
    });
    await new Promise((r) => setTimeout(r, 500)); // frames in flight when it paused
    expect(await alice.playing('bob', 0, 1500)).toBe(0);
    await shot(alice, 'bob-muted');
    await bob.act('muteCamera', false);
    await alice.playingSoon('bob');

    // bob shares his screen (Chromium's fake capture): alice gets a second video, then loses it.
    await bob.act('shareScreen', true);
    await until("bob's screen on alice", async () => {
      const tile = (await alice.state()).tiles.find((t) => t.userId === 'bob');
      return tile?.videos.some((v) => v.source === 'screen' && v.frames > 5);
    });
    await shot(alice, 'bob-sharing');
    await bob.act('shareScreen', false);
    await until("bob's screen gone on alice", async () => {
      const tile = (await alice.state()).tiles.find((t) => t.userId === 'bob');
      return tile !== undefined && !tile.videos.some((v) => v.source === 'screen');
    });

    // Gateway A dies: alice resumes on B inside the window (same socketId, no rejoin).
    const before = await alice.state();
    const killedAt = Date.now();
    await gwA.process.kill();
    const resumed = await until('alice resumed', async () => {
      const s = await alice.state();
      return s.resumed > 0 && s.sessionState === 'connected' ? s : undefined;
    });
    expect(Date.now() - killedAt).toBeLessThan(SFU_TIMINGS.RECONNECT_WINDOW_MS);
    expect(resumed.socketId).toBe(before.socketId);
    expect(resumed.rejoined).toBe(0);
    expect(resumed.restarts).toBe(0);
    await alice.playingSoon('bob');
    await bob.playingSoon('alice');
    // bob never saw alice leave: her tile is still the same session's.
    expect((await bob.state()).tiles.map((t) => t.socketId)).toEqual([before.socketId]);
    await shot(alice, 'alice-resumed');

    await expectNoErrors();
  });

  it('the media starts again after the SFU loses its worker, and after a rejoin', async () => {
    const [alice, bob] = [pages[0], pages[1]];
    if (alice === undefined || bob === undefined) throw new Error('the pages of the test before');
    const node = sfu.media[0];
    if (node === undefined) throw new Error('no media node');

    // The worker hosting the room dies: eventMediaReset; both pages set their media up again.
    const consumersBefore = (await alice.state()).tiles.flatMap((t) =>
      t.videos.map((v) => v.consumerId),
    );
    for (const pid of mediasoupWorkerPids(node.process.pid)) process.kill(pid, 'SIGKILL');
    for (const page of [alice, bob]) {
      await until('the media restarted', async () => (await page.state()).restarts > 0);
    }
    await alice.playingSoon('bob');
    await bob.playingSoon('alice');
    const after = await alice.state();
    expect(after.tiles.flatMap((t) => t.videos.map((v) => v.consumerId))).not.toEqual(
      consumersBefore,
    );
    expect(after.rejoined).toBe(0);

    // carol's only gateway stops answering for longer than the window: when it is back, her
    // session is gone; the SDK joins again (a new socketId) and publishes again.
    const gwC = await sfu.spawn('gateway', 'gateway-c');
    const carol = await openDemo(gwC, 'carol', [ws(gwC)], { heartbeat: '500' });
    await carol.connected();
    await carol.playingSoon('alice');
    await alice.playingSoon('carol');
    const first = (await carol.state()).socketId;
    gwC.process.signal('SIGSTOP');
    try {
      // Her read deadline (2 × 500 ms + 5 s) passes, the rooms service takes gateway C for
      // dead and her window (3 s) ends.
      await until(
        'carol gone from the room',
        async () => !(await alice.state()).tiles.some((t) => t.socketId === first),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      gwC.process.signal('SIGCONT');
    }
    const rejoined = await until('carol rejoined', async () => {
      const s = await carol.state();
      // Rejoined, then the media set up again (transports recreated, tracks published).
      return s.rejoined > 0 && s.restarts > 0 && s.sessionState === 'connected' ? s : undefined;
    });
    expect(rejoined.socketId).not.toBe(first);
    await carol.playingSoon('alice');
    await alice.playingSoon('carol');
    await shot(carol, 'carol-rejoined');
    await expectNoErrors();
  });
});
