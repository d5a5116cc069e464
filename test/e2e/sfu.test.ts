/**
 * Real WebRTC through the SFU: Chromium pages running the SDK (pages/sfu.ts: `connect`, then
 * `RoomMedia`, as a web application uses them) to a platform of the rooms service,
 * a gateway and a media node on the real NATS and PostgreSQL. Each page sends its fake camera
 * (two simulcast layers), microphone (a WAV) and a data channel; the media node makes consumers
 * for the others. The tests: two pages, a third, a data message, pause, the media events
 * (consumer layers and scores, the dominant speaker, a camera that silently stops: a freeze), a
 * leave, the death of the mediasoup worker hosting the room (every page renegotiates), a
 * closed producer. Each stands alone: the ones that only look share a room of three pages
 * while it is sound (a failure spends it, and the next test makes a room of its own); the ones
 * that end something make their own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { artifactDir, mediasoupWorkerPids, mintToken } from '@switchboard/devstack';
import { startSfu, type SfuPlatform } from '../sfu/platform.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.ts';
import type { Peer } from '@switchboard/protocol';
import type { ConsumerStat, PageState, SfuApi } from './pages/sfu.ts';
import { serveSfuPage, type SfuPageServer } from './sfu-page.ts';

const MEDIA_TIMEOUT_MS = 20_000;

/** In page.evaluate callbacks (serialised into the page: no closure over test code). */
type PageGlobal = { sfu: SfuApi };

class SfuPage {
  readonly label: string;
  readonly page: Page;
  /** Uncaught page errors and console errors. */
  readonly errors: string[] = [];
  socketId = '';

  private constructor(label: string, page: Page) {
    this.label = label;
    this.page = page;
    page.on('pageerror', (e) => this.errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') this.errors.push(m.text());
    });
  }

  static async open(browser: Browser, url: string, label: string): Promise<SfuPage> {
    const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
    const p = new SfuPage(label, page);
    await page.goto(url);
    await page.waitForFunction(() => 'sfu' in globalThis);
    return p;
  }

  async start(wsUrl: string, room: string): Promise<unknown> {
    const bearer = await mintToken({ sub: this.label, rooms: [room] });
    const joined = await this.page.evaluate(
      async (args) => await (globalThis as unknown as PageGlobal).sfu.start(args),
      {
        wsUrl,
        roomId: room,
        bearer,
        label: this.label,
      },
    );
    this.socketId = (joined as { socketId: string }).socketId;
    return joined;
  }

  async stats(): Promise<ConsumerStat[]> {
    return await this.page.evaluate(
      async () => await (globalThis as unknown as PageGlobal).sfu.stats(),
    );
  }

  async state(): Promise<PageState> {
    return await this.page.evaluate(() => (globalThis as unknown as PageGlobal).sfu.state());
  }

  async send(text: string): Promise<void> {
    await this.page.evaluate(async (t) => {
      await (globalThis as unknown as PageGlobal).sfu.send(t);
    }, text);
  }

  async request(a: string, d: unknown): Promise<unknown> {
    return await this.page.evaluate(
      async ([action, data]) =>
        await (globalThis as unknown as PageGlobal).sfu.request(action, data),
      [a, d] as const,
    );
  }

  async pause(kind: 'audio' | 'video', paused: boolean): Promise<void> {
    await this.page.evaluate(
      async ([k, p]) => {
        await (globalThis as unknown as PageGlobal).sfu.pause(k, p);
      },
      [kind, paused] as const,
    );
  }

  async closeProducer(kind: 'audio' | 'video'): Promise<void> {
    await this.page.evaluate(async (k) => {
      await (globalThis as unknown as PageGlobal).sfu.closeProducer(k);
    }, kind);
  }

  /** Enable or disable the local track of `kind` (the server is not told). */
  async setTrackEnabled(kind: 'audio' | 'video', enabled: boolean): Promise<void> {
    await this.page.evaluate(
      ([k, e]) => {
        (globalThis as unknown as PageGlobal).sfu.setTrackEnabled(k, e);
      },
      [kind, enabled] as const,
    );
  }

  /** Stop (`false`) or restart sending `kind`'s RTP without telling the server. */
  async sending(kind: 'audio' | 'video', on: boolean): Promise<void> {
    await this.page.evaluate(
      async ([k, o]) => {
        await (globalThis as unknown as PageGlobal).sfu.sending(k, o);
      },
      [kind, on] as const,
    );
  }

  async leave(): Promise<void> {
    await this.page.evaluate(async () => {
      await (globalThis as unknown as PageGlobal).sfu.leave();
    });
  }
}

/** Poll `probe` until it returns true; on timeout, fail with the last `detail` it gave. */
async function until(
  what: string,
  probe: () => Promise<{ ok: boolean; detail?: unknown }>,
  timeoutMs = MEDIA_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const r = await probe();
    if (r.ok) return;
    last = r.detail;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(last)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The payloads of the events `a` a page received, in order. */
function eventsOf(s: PageState, a: string): Record<string, unknown>[] {
  return s.events.filter((e) => e.a === a).map((e) => e.d ?? {});
}

/** The events `a` a page received at or after `since` (epoch ms). */
function eventsSince(s: PageState, a: string, since: number): PageState['events'] {
  return s.events.filter((e) => e.a === a && e.at >= since);
}

async function producerOf(p: SfuPage, kind: 'audio' | 'video'): Promise<string> {
  const id = (await p.state()).producers[kind];
  if (id === undefined) throw new Error(`${p.label} has no ${kind} producer`);
  return id;
}

/** The id of `on`'s open consumer of `from`'s camera. */
async function videoConsumerOf(on: SfuPage, from: SfuPage): Promise<string> {
  const c = (await on.state()).consumers.find(
    (x) => !x.closed && x.kind === 'video' && x.peer.socketId === from.socketId,
  );
  if (c === undefined) throw new Error(`${on.label} has no video consumer of ${from.label}`);
  return c.consumerId;
}

/** Open consumers of `from`'s media on `on`, of at least generation `minGeneration`. */
function fresh(stats: ConsumerStat[], from: SfuPage, minGeneration: number): ConsumerStat[] {
  return stats.filter(
    (c) => !c.closed && c.peer.socketId === from.socketId && c.generation >= minGeneration,
  );
}

/** Wait until `on` decodes video frames and receives audio packets from each of `from`. */
async function waitMedia(on: SfuPage, from: SfuPage[], minGeneration = 0): Promise<ConsumerStat[]> {
  let stats: ConsumerStat[] = [];
  await until(`${on.label} to receive ${from.map((p) => p.label).join(', ')}`, async () => {
    stats = await on.stats();
    const ok = from.every((peer) => {
      const mine = fresh(stats, peer, minGeneration);
      return (
        mine.some((c) => c.kind === 'video' && c.framesDecoded > 0) &&
        mine.some((c) => c.kind === 'audio' && c.packetsReceived > 0)
      );
    });
    return { ok, detail: { stats, state: ok ? null : await on.state() } };
  });
  return stats;
}

/** Join-to-first-frame of `on` for `from`'s video: from `on`'s connect, and from `from`'s. */
async function logFirstFrame(on: SfuPage, from: SfuPage, minGeneration = 0): Promise<number> {
  const video = fresh(await on.stats(), from, minGeneration).find((c) => c.kind === 'video');
  const at = video?.firstFrameAt ?? null;
  if (at === null) throw new Error(`${on.label}: no first frame of ${from.label}`);
  const own = at - (await on.state()).connectAt;
  const theirs = at - (await from.state()).connectAt;
  console.log(
    `[sfu e2e] ${on.label} first frame of ${from.label}: ${own} ms after it began to connect, ` +
      `${theirs} ms after ${from.label}'s`,
  );
  return own;
}

let sfu: SfuPlatform;
let server: SfuPageServer;
let browser: Browser;
/** Every page open now (a test's own, and the shared room's). */
const pages: SfuPage[] = [];
/** Where the fake microphones' WAV is. */
let wavDir = '';
let rooms = 0;

/** Pages `labels`, joined in that order to a new room, each receiving all the others. */
async function openRoom(...labels: string[]): Promise<SfuPage[]> {
  const room = `sfu-e2e-${String(++rooms)}`;
  const joined: SfuPage[] = [];
  for (const label of labels) {
    const p = await SfuPage.open(browser, server.url, label);
    pages.push(p);
    expect(await p.start(sfu.wsUrl(), room)).toMatchObject({ roomSize: joined.length + 1 });
    joined.push(p);
  }
  for (const p of joined)
    await waitMedia(
      p,
      joined.filter((o) => o !== p),
    );
  return joined;
}

/** Close every open page (their sessions end with them). */
async function closePages(): Promise<void> {
  const open = pages.splice(0);
  await Promise.allSettled(open.map((p) => p.page.close()));
}

interface Trio {
  alice: SfuPage;
  bob: SfuPage;
  carol: SfuPage;
}
/** The room of three that the looking tests share, while it is sound. */
let shared: Trio | undefined;

async function trio(): Promise<Trio> {
  if (shared === undefined) {
    const [alice, bob, carol] = await openRoom('alice', 'bob', 'carol');
    if (alice === undefined || bob === undefined || carol === undefined) throw new Error('no trio');
    shared = { alice, bob, carol };
  }
  return shared;
}

/** The shared room is not to be used again (a test failed in it, or changed it for good). */
async function spend(): Promise<void> {
  shared = undefined;
  await closePages();
}

/**
 * What the fake microphones play, looped: 600 ms of a loud tone, then 400 ms of a faint one.
 * Chromium's own fake microphone only beeps briefly, which mediasoup's active-speaker observer
 * hardly counts as speech: it wants runs of loud 20 ms frames (its long-term window counts
 * 100 ms runs) above the quietest level it heard (the noise floor: the faint tone here). With
 * the beeps, the one page left unmuted took 11 s to become dominant.
 */
function speechLikeWav(): Buffer {
  const rate = 48_000;
  const n = rate;
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const amp = t < 0.6 ? 0.5 : 0.003;
    data.writeInt16LE(Math.round(amp * 32767 * Math.sin(2 * Math.PI * 440 * t)), i * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

beforeAll(async () => {
  wavDir = mkdtempSync(join(tmpdir(), 'sfu-e2e-'));
  const wav = join(wavDir, 'microphone.wav');
  writeFileSync(wav, speechLikeWav());
  server = await serveSfuPage();
  // The page has an origin of its own: the gateways admit it (and only it) by name.
  sfu = await startSfu(inject('natsUrl'), inject('pgServerUrl'), {
    env: { WS_ALLOWED_ORIGINS: new URL(server.url).origin },
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // Host candidates as plain loopback addresses, not mDNS names nobody resolves here; every
    // page's microphone plays the WAV.
    args: [
      ...CHROMIUM_ARGS,
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
});

/** The services' output, kept as artifacts, and shown once when a test fails. */
function dumpLogs(): string {
  const dir = artifactDir('e2e');
  const procs = [sfu.platform.get('rooms'), ...sfu.gateways, ...sfu.media];
  const parts: string[] = [];
  for (const p of procs) {
    const out = p.process.output();
    writeFileSync(join(dir, `sfu-${p.process.name}.log`), `${out}\n`);
    parts.push(`----- ${p.process.name} (last lines)\n${out.split('\n').slice(-40).join('\n')}`);
  }
  return parts.join('\n');
}

afterEach(async ({ task }) => {
  if (task.result?.state !== 'fail') return;
  for (const p of pages) {
    const s = await p.state().catch(() => null);
    console.log(
      `[sfu e2e] ${p.label}: page errors ${JSON.stringify(p.errors)}; state ${JSON.stringify(s && { ...s, events: s.events.map((e) => e.a) })}`,
    );
  }
  console.log(dumpLogs());
  await spend();
});

afterAll(async () => {
  dumpLogs();
  await closePages();
  await browser.close();
  await server.close();
  await sfu.stop();
  rmSync(wavDir, { recursive: true, force: true });
});

describe('SFU: browsers on the SDK through the gateway and a media node', () => {
  it('two pages receive each other’s video and audio', async () => {
    const [alice, bob] = await openRoom('alice', 'bob');
    if (alice === undefined || bob === undefined) throw new Error('no pages');
    const bobFirst = await logFirstFrame(bob, alice);
    await logFirstFrame(alice, bob);
    expect(bobFirst).toBeGreaterThan(0);

    for (const p of [alice, bob]) {
      const s = await p.state();
      expect(s.errors).toEqual([]);
      expect(s.transports).toEqual({ send: 'connected', recv: 'connected' });
      // exactly one video and one audio consumer of the other, with the sources it declared
      const open = s.consumers.filter((c) => !c.closed);
      expect(open.map((c) => `${c.kind}:${c.source}`).sort()).toEqual([
        'audio:microphone',
        'video:camera',
      ]);
    }
    await closePages();
  });

  it('a third page receives both, and both receive it', async () => {
    const { alice, bob, carol } = await trio();
    await logFirstFrame(carol, alice);
    await logFirstFrame(carol, bob);
    await logFirstFrame(alice, carol);
    await carol.page.screenshot({ path: join(artifactDir('e2e'), 'sfu-carol.png') });
  });

  it('a data channel message reaches the others with its sender', async () => {
    const { alice, bob, carol } = await trio();
    // every page has an open data consumer of every other page
    const all = [alice, bob, carol];
    for (const p of all) {
      await until(`${p.label}'s data consumers`, async () => {
        const s = await p.state();
        const others = all.filter((o) => o !== p);
        const ok = others.every((o) =>
          s.dataConsumers.some(
            (d) => d.open && d.peer.socketId === o.socketId && d.label === 'chat',
          ),
        );
        return { ok, detail: s.dataConsumers };
      });
    }
    await alice.send('hello from alice');
    for (const p of [bob, carol]) {
      await until(`${p.label} to receive alice's message`, async () => {
        const s = await p.state();
        return { ok: s.messages.length > 0, detail: s.messages };
      });
      const s = await p.state();
      expect(s.messages.map((m) => ({ text: m.text, from: m.from, label: m.label }))).toEqual([
        {
          text: 'hello from alice',
          from: { socketId: alice.socketId, userId: 'alice' },
          label: 'chat',
        },
      ]);
    }
    // not echoed to the sender
    expect((await alice.state()).messages).toEqual([]);
  });

  it('pausing a producer reaches its consumers; transport stats', async () => {
    const { alice, bob, carol } = await trio();
    const videoOf = async (on: SfuPage): Promise<string> => {
      const c = (await on.state()).consumers.find(
        (x) => !x.closed && x.kind === 'video' && x.peer.socketId === alice.socketId,
      );
      if (c === undefined) throw new Error(`${on.label} has no video consumer of alice`);
      return c.consumerId;
    };
    const producerId = (await alice.state()).producers['video'];
    const expectEvent = async (on: SfuPage, a: string): Promise<void> => {
      const consumerId = await videoOf(on);
      await until(`${a} at ${on.label}`, async () => {
        const s = await on.state();
        return {
          ok: s.events.some(
            (e) =>
              e.a === a && e.d?.['consumerId'] === consumerId && e.d['producerId'] === producerId,
          ),
          detail: s.events.slice(-5),
        };
      });
    };
    await alice.pause('video', true);
    for (const p of [bob, carol]) await expectEvent(p, 'eventProducerPaused');
    await alice.pause('video', false);
    for (const p of [bob, carol]) await expectEvent(p, 'eventProducerResumed');
    // and the video flows again
    const before = fresh(await bob.stats(), alice, 0).find((c) => c.kind === 'video');
    await until("bob's video of alice to advance after the resume", async () => {
      const now = fresh(await bob.stats(), alice, 0).find((c) => c.kind === 'video');
      return { ok: (now?.framesDecoded ?? 0) > (before?.framesDecoded ?? 0) + 10, detail: now };
    });

    const s = await alice.state();
    const stats = (await alice.request('getTransportStats', {
      transportId: s.sendTransportId,
    })) as {
      stats: Record<string, unknown>[];
    };
    expect(stats.stats.length).toBeGreaterThan(0);
    expect(stats.stats[0]).toMatchObject({ transportId: s.sendTransportId });
    expect(Number(stats.stats[0]?.['bytesReceived'])).toBeGreaterThan(0);
  });

  it('every video consumer starts with its layers and a score (eventConsumerLayersChanged, eventConsumerScore)', async () => {
    const { alice, bob, carol } = await trio();
    const all = [alice, bob, carol];
    for (const p of all) {
      const video = (await p.state()).consumers.filter((c) => !c.closed && c.kind === 'video');
      expect(video.map((c) => c.peer.userId)).toEqual(
        all.filter((o) => o !== p).map((o) => o.label),
      );
      // A simulcast consumer announces the layer it starts forwarding, with its score.
      await until(
        `${p.label} to get layers and a score above 0 of each video consumer`,
        async () => {
          const s = await p.state();
          const scored = new Set(
            eventsOf(s, 'eventConsumerScore')
              .filter((d) => Number(d['score']) > 0 && Number(d['producerScore']) > 0)
              .map((d) => d['consumerId']),
          );
          const layered = new Set(
            eventsOf(s, 'eventConsumerLayersChanged')
              // Whichever layer it starts with: the lowest, or the highest when the bandwidth
              // estimate already allows it.
              .filter(
                (d) =>
                  typeof (d['layers'] as { spatialLayer?: number } | null)?.spatialLayer ===
                  'number',
              )
              .map((d) => d['consumerId']),
          );
          return {
            ok: video.every((c) => scored.has(c.consumerId) && layered.has(c.consumerId)),
            detail: s.events.filter(
              (e) => e.a === 'eventConsumerScore' || e.a === 'eventConsumerLayersChanged',
            ),
          };
        },
      );
      // Every score is of one of this page's consumers, within the protocol's ranges; every
      // layer change of one of its video consumers (audio has no layers).
      const s = await p.state();
      const mine = new Set(s.consumers.map((c) => c.consumerId));
      const ids = new Set(video.map((c) => c.consumerId));
      for (const d of eventsOf(s, 'eventConsumerScore')) {
        expect(mine.has(String(d['consumerId']))).toBe(true);
        for (const k of ['score', 'producerScore']) {
          expect(d[k]).toBeGreaterThanOrEqual(0);
          expect(d[k]).toBeLessThanOrEqual(10);
        }
      }
      for (const d of eventsOf(s, 'eventConsumerLayersChanged')) {
        expect(ids.has(String(d['consumerId']))).toBe(true);
      }
    }
  });

  it('the only unmuted microphone becomes the dominant speaker (eventActiveSpeaker)', async () => {
    const { alice, bob, carol } = await trio();
    const all = [alice, bob, carol];
    const audioOf = new Map<string, string>();
    for (const p of all) audioOf.set(p.socketId, await producerOf(p, 'audio'));
    // What the observer said so far, all microphones playing the same WAV (a page hears what it
    // said after the page joined): each names a member with its audio producer. Alice, alone
    // at first, was the first.
    for (const p of all) {
      for (const d of eventsOf(await p.state(), 'eventActiveSpeaker')) {
        const peer = d['peer'] as Peer;
        expect(all.find((o) => o.socketId === peer.socketId)?.label).toBe(peer.userId);
        expect(d['producerId']).toBe(audioOf.get(peer.socketId));
      }
    }
    const before = eventsOf(await alice.state(), 'eventActiveSpeaker');
    expect(before[0]?.['peer']).toEqual({ socketId: alice.socketId, userId: 'alice' });
    console.log(
      `[sfu e2e] dominant speakers so far: ${JSON.stringify(before.map((d) => (d['peer'] as Peer).userId))}`,
    );
    // The observer speaks only when the dominant speaker changes: the one left speaking is a
    // page that is not dominant now; the others' tracks are disabled (they send silence).
    const current = (before.at(-1)?.['peer'] as Peer | undefined)?.socketId;
    const speaker = [carol, bob, alice].find((p) => p.socketId !== current) ?? carol;
    const muted = all.filter((p) => p !== speaker);
    const expected = {
      peer: { socketId: speaker.socketId, userId: speaker.label },
      producerId: audioOf.get(speaker.socketId),
    };
    const mutedAt = Date.now();
    for (const p of muted) await p.setTrackEnabled('audio', false);
    try {
      for (const p of all) {
        await until(
          `${p.label} to hear that ${speaker.label} is the dominant speaker`,
          async () => {
            const ev = (await p.state()).events.filter((e) => e.a === 'eventActiveSpeaker');
            return { ok: isDeepStrictEqual(ev.at(-1)?.d, expected), detail: ev.slice(-3) };
          },
        );
      }
      const last = (await speaker.state()).events
        .filter((e) => e.a === 'eventActiveSpeaker')
        .at(-1);
      console.log(
        `[sfu e2e] ${speaker.label} dominant ${String((last?.at ?? 0) - mutedAt)} ms after the others muted`,
      );
      // and stays so while the others are silent
      await new Promise((r) => setTimeout(r, 1000));
      for (const p of all) {
        expect(eventsOf(await p.state(), 'eventActiveSpeaker').at(-1)).toEqual(expected);
      }
    } finally {
      for (const p of muted) await p.setTrackEnabled('audio', true);
    }
  });

  it('a camera that silently stops sending freezes at its consumers (eventFreeze)', async () => {
    const { alice, bob, carol } = await trio();
    const all = [alice, bob, carol];
    const viewers = [alice, bob];
    // no freeze while all media flowed (the pause above was announced: not a freeze)
    for (const p of all) expect(eventsOf(await p.state(), 'eventFreeze')).toEqual([]);
    const producerId = await producerOf(carol, 'video');
    const freeze = { from: { socketId: carol.socketId, userId: 'carol' }, producerId };
    const consumerOf = new Map<SfuPage, string>();
    for (const p of viewers) consumerOf.set(p, await videoConsumerOf(p, carol));

    const stoppedAt = Date.now();
    await carol.sending('video', false);
    for (const p of viewers) {
      const consumerId = consumerOf.get(p);
      // the freeze, and the producer's score dropping to 0
      await until(`${p.label} to see carol's camera freeze`, async () => {
        const s = await p.state();
        const frozen = eventsSince(s, 'eventFreeze', stoppedAt).length > 0;
        const zero = eventsSince(s, 'eventConsumerScore', stoppedAt).some(
          (e) => e.d?.['consumerId'] === consumerId && e.d?.['producerScore'] === 0,
        );
        return { ok: frozen && zero, detail: { frozen, zero, events: s.events.slice(-6) } };
      });
    }
    for (const p of all) {
      const ev = (await p.state()).events.filter((e) => e.a === 'eventFreeze');
      if (p === carol) {
        // the sender is not told of its own freeze
        expect(ev).toEqual([]);
        continue;
      }
      // only carol's camera froze
      expect(ev.length).toBeGreaterThan(0);
      for (const e of ev) expect(e.d).toEqual(freeze);
      console.log(
        `[sfu e2e] ${p.label}: carol's camera stopped → eventFreeze after ` +
          `${String((ev[0]?.at ?? 0) - stoppedAt)} ms (${String(ev.length)} received)`,
      );
    }

    const restartedAt = Date.now();
    await carol.sending('video', true);
    for (const p of viewers) {
      const consumerId = consumerOf.get(p);
      const frames = async (): Promise<number> =>
        (await p.stats()).find((c) => c.consumerId === consumerId)?.framesDecoded ?? 0;
      const before = await frames();
      await until(`${p.label} to decode carol's camera again`, async () => {
        const s = await p.state();
        const scored = eventsSince(s, 'eventConsumerScore', restartedAt).some(
          (e) => e.d?.['consumerId'] === consumerId && Number(e.d?.['producerScore']) > 0,
        );
        const now = await frames();
        return { ok: scored && now > before + 10, detail: { scored, before, now } };
      });
    }
    for (const p of all) expect((await p.state()).errors).toEqual([]);
  });

  it('a page that leaves has its consumers closed at the others', async () => {
    const { alice, bob, carol } = await trio();
    const before = new Map<SfuPage, PageState>();
    for (const p of [alice, bob]) before.set(p, await p.state());
    await carol.leave();
    expect((await carol.state()).closed).toBe('left');
    for (const p of [alice, bob]) {
      const s0 = before.get(p);
      if (s0 === undefined) throw new Error('no state');
      const carolsConsumers = s0.consumers
        .filter((c) => c.peer.socketId === carol.socketId && !c.closed)
        .map((c) => c.consumerId);
      const carolsData = s0.dataConsumers
        .filter((d) => d.peer.socketId === carol.socketId)
        .map((d) => d.dataConsumerId);
      expect(carolsConsumers).toHaveLength(2);
      expect(carolsData).toHaveLength(1);
      await until(`${p.label} to close carol's consumers`, async () => {
        const s = await p.state();
        const closed = new Set(
          s.events
            .filter((e) => e.a === 'eventConsumerClosed')
            .map((e) => String(e.d?.['consumerId'])),
        );
        const dataClosed = new Set(
          s.events
            .filter((e) => e.a === 'eventDataConsumerClosed')
            .map((e) => String(e.d?.['dataConsumerId'])),
        );
        const ok =
          carolsConsumers.every((id) => closed.has(id)) &&
          carolsData.every((id) => dataClosed.has(id));
        return { ok, detail: { closed: [...closed], dataClosed: [...dataClosed] } };
      });
      const s = await p.state();
      // and nothing of the others was closed
      expect(s.consumers.filter((c) => !c.closed).map((c) => c.peer.userId)).toEqual([
        p === alice ? 'bob' : 'alice',
        p === alice ? 'bob' : 'alice',
      ]);
      expect(s.errors).toEqual([]);
    }
    await spend(); // carol is gone from it
  });

  it('the worker hosting the room dies: every page renegotiates and video flows again', async () => {
    // The worker hosts every room of the node: only this test's pages are open to see it die.
    await spend();
    const [alice, bob, carol] = await openRoom('alice', 'bob', 'carol');
    if (alice === undefined || bob === undefined || carol === undefined)
      throw new Error('no pages');
    await carol.leave();
    const mediaPid = sfu.media[0]?.process.pid;
    if (mediaPid === undefined) throw new Error('no media node pid');
    const workers = mediasoupWorkerPids(mediaPid);
    expect(workers).toHaveLength(1);
    const [workerPid] = workers;
    if (workerPid === undefined) throw new Error('no worker');
    const generations = new Map<SfuPage, number>();
    for (const p of [alice, bob]) generations.set(p, (await p.state()).generation);

    const killedAt = Date.now();
    process.kill(workerPid, 'SIGKILL');

    for (const p of [alice, bob]) {
      await until(`${p.label} to get eventMediaReset and renegotiate`, async () => {
        const s = await p.state();
        return {
          ok: s.resets >= 1 && s.generation > (generations.get(p) ?? 0),
          detail: { resets: s.resets, generation: s.generation, errors: s.errors },
        };
      });
    }
    for (const [p, other] of [
      [alice, bob],
      [bob, alice],
    ] as const) {
      const g = (generations.get(p) ?? 0) + 1;
      const first = fresh(await waitMedia(p, [other], g), other, g).find((c) => c.kind === 'video');
      if (first === undefined) throw new Error('no fresh video consumer');
      // and the fresh video advances
      await until(`${p.label}'s fresh video of ${other.label} to advance`, async () => {
        const now = fresh(await p.stats(), other, g).find((c) => c.consumerId === first.consumerId);
        return {
          ok: (now?.framesDecoded ?? 0) > first.framesDecoded + 10,
          detail: now,
        };
      });
      const s = await p.state();
      const reset = s.events.find((e) => e.a === 'eventMediaReset');
      expect(reset?.d).toEqual({ reason: 'worker' });
      const video = fresh(await p.stats(), other, g).find((c) => c.kind === 'video');
      console.log(
        `[sfu e2e] ${p.label}: worker killed → eventMediaReset after ${(reset?.at ?? 0) - killedAt} ms, ` +
          `first fresh frame of ${other.label} after ${(video?.firstFrameAt ?? 0) - killedAt} ms`,
      );
      expect(s.errors).toEqual([]);
      expect(s.transports).toEqual({ send: 'connected', recv: 'connected' });
      // the old consumers were all dropped; exactly one video and one audio of the other now
      expect(s.consumers.filter((c) => c.generation < g).every((c) => c.closed)).toBe(true);
      expect(
        s.consumers
          .filter((c) => !c.closed)
          .map((c) => `${c.peer.userId}:${c.kind}`)
          .sort(),
      ).toEqual([`${other.label}:audio`, `${other.label}:video`]);
      const counts: Record<string, number> = {};
      for (const e of s.events) counts[e.a] = (counts[e.a] ?? 0) + 1;
      console.log(`[sfu e2e] ${p.label}: events received ${JSON.stringify(counts)}`);
    }
    // the page that left hears nothing of it
    expect((await carol.state()).resets).toBe(0);
    expect(mediasoupWorkerPids(mediaPid)).not.toContain(workerPid);
    await alice.page.screenshot({ path: join(artifactDir('e2e'), 'sfu-alice-after-reset.png') });
    for (const p of pages) expect(p.errors).toEqual([]);
    await closePages();
  });

  it('closing a producer closes its consumers only', async () => {
    const [alice, bob] = await openRoom('alice', 'bob');
    if (alice === undefined || bob === undefined) throw new Error('no pages');
    const audio = (await bob.state()).consumers.find(
      (c) => !c.closed && c.kind === 'audio' && c.peer.socketId === alice.socketId,
    );
    if (audio === undefined) throw new Error("bob has no audio consumer of alice's");
    await alice.closeProducer('audio');
    await until("bob's consumer of alice's audio to close", async () => {
      const s = await bob.state();
      const c = s.consumers.find((x) => x.consumerId === audio.consumerId);
      return { ok: c?.closedBy === 'server', detail: c };
    });
    const s = await bob.state();
    expect(s.consumers.filter((c) => !c.closed).map((c) => `${c.peer.userId}:${c.kind}`)).toEqual([
      'alice:video',
    ]);
    // the video still flows
    const before = fresh(await bob.stats(), alice, 0).find((c) => c.kind === 'video');
    await until("bob's video of alice to advance", async () => {
      const now = fresh(await bob.stats(), alice, 0).find((c) => c.kind === 'video');
      return { ok: (now?.framesDecoded ?? 0) > (before?.framesDecoded ?? 0) + 10, detail: now };
    });
    expect(s.errors).toEqual([]);
    await closePages();
  });
});
