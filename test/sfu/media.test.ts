/**
 * The SFU through the platform, without a browser: clients on the gateway WebSocket, the
 * rooms service assigning the room to a media node, the media node driving real mediasoup
 * workers. RTP parameters are written by hand (what a browser would send), so producers
 * exist without media flowing; the server-initiated consumer flow, the lifecycle and bad
 * input are what is checked here. Media actually flowing is test/e2e/sfu.test.ts.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { mediasoupWorkerPids, waitFor, type ServiceProcess } from '@switchboard/devstack';
import { ErrorCodes, type WebRtcTransportInfo } from '@switchboard/protocol';
import { TestClient, type Frame } from '../signaling/client.ts';
import { SFU_TIMINGS, useSfu, type SfuPlatform } from './platform.ts';
import { opusParameters, udpSink, vp8Parameters, vp8Source } from './rtp.ts';

const open: TestClient[] = [];
let seq = 0;

const sctp = { numStreams: { OS: 1024, MIS: 1024 } };

/** A client in `roomId` with a send transport and, unless `recv` is false, a recv transport. */
async function member(
  sfu: SfuPlatform,
  roomId: string,
  opts: { recv?: boolean; gateway?: number } = {},
): Promise<{ c: TestClient; send: WebRtcTransportInfo; recv?: WebRtcTransportInfo }> {
  const c = await TestClient.join(sfu.gateways[opts.gateway ?? 0]?.url ?? '', roomId, `u${seq++}`);
  open.push(c);
  const caps = await c.ok('getRouterRtpCapabilities');
  const send = (await c.ok('createWebRtcTransport', {
    direction: 'send',
    sctpCapabilities: sctp,
  })) as WebRtcTransportInfo;
  if (opts.recv === false) return { c, send };
  const recv = (await c.ok('createWebRtcTransport', {
    direction: 'recv',
    sctpCapabilities: sctp,
    rtpCapabilities: caps,
  })) as WebRtcTransportInfo;
  return { c, send, recv };
}

/**
 * `m` produces a `kind` track (hand-written RTP parameters, SSRC `ssrc`) on its send
 * transport: the producer's id.
 */
async function produce(
  m: { c: TestClient; send: { id: string } },
  kind: 'audio' | 'video',
  ssrc: number,
  source?: string,
): Promise<string> {
  const { id } = (await m.c.ok('produce', {
    transportId: m.send.id,
    kind,
    rtpParameters: kind === 'video' ? vp8Parameters(ssrc) : opusParameters(ssrc),
    ...(source === undefined ? {} : { source }),
  })) as { id: string };
  return id;
}

const consumersOf = (c: TestClient, from = 0): Frame[] => c.events('eventNewConsumer').slice(from);

/**
 * After a media reset, `a` and `b` start again (new transports); `a` produces video (SSRC
 * `ssrc`) and, before `what` times out, `b` gets one new consumer: for it.
 */
async function startAgain(a: TestClient, b: TestClient, ssrc: number, what: string): Promise<void> {
  const from = consumersOf(b).length;
  const caps = await a.ok('getRouterRtpCapabilities');
  const send = (await a.ok('createWebRtcTransport', { direction: 'send' })) as { id: string };
  await b.ok('getRouterRtpCapabilities');
  await b.ok('createWebRtcTransport', { direction: 'recv', rtpCapabilities: caps });
  await produce({ c: a, send }, 'video', ssrc);
  await waitFor(what, async () => consumersOf(b, from).length === 1);
}

describe('one media node, one worker', () => {
  let sfu: SfuPlatform;
  useSfu(
    open,
    (p) => {
      sfu = p;
    },
    { env: { MEDIA_PLAIN_TRANSPORTS: 'true', MEDIA_RECV_TRANSPORTS_PER_MIN: '3' } },
  );

  it('creates transports through the gateway and the node the room is assigned to', async () => {
    const { c, send, recv } = await member(sfu, 'm-transports');
    expect(send.iceCandidates.length).toBeGreaterThan(0);
    expect(send.iceCandidates.map((x) => x.protocol).sort()).toEqual(['tcp', 'udp']);
    expect(send.sctpParameters?.port).toBe(5000);
    expect(recv?.id).not.toBe(send.id);
    const stats = (await c.ok('getTransportStats', { transportId: send.id })) as {
      stats: { type: string }[];
    };
    expect(stats.stats[0]?.type).toBe('webrtc-transport');
    const ice = (await c.ok('restartIce', { transportId: send.id })) as {
      iceParameters: { usernameFragment: string };
    };
    expect(ice.iceParameters.usernameFragment).not.toBe(send.iceParameters.usernameFragment);
    const rooms = await sfu.bus.request((await import('@switchboard/protocol')).Rooms.roomInfo, {
      roomId: 'm-transports',
    });
    expect(rooms.roomSize).toBe(1);
  });

  it('announces consumers, created paused, to every other peer; pause, resume and close reach them', async () => {
    const a = await member(sfu, 'm-consume');
    const b = await member(sfu, 'm-consume');
    const producerId = await produce(a, 'video', 1111, 'camera');
    const ev = await b.c.event('eventNewConsumer');
    const d = ev.d as {
      id: string;
      producerId: string;
      kind: string;
      producerPaused: boolean;
      peer: { socketId: string };
      source: string;
    };
    expect(d).toMatchObject({ producerId, kind: 'video', producerPaused: false, source: 'camera' });
    expect(d.peer.socketId).toBe(a.c.socketId);
    expect(a.c.events('eventNewConsumer')).toHaveLength(0);
    await b.c.ok('resumeConsumer', { consumerId: d.id });

    // A third peer arriving later gets a consumer for the existing producer.
    const late = await member(sfu, 'm-consume');
    const lateEv = await late.c.event('eventNewConsumer');
    expect((lateEv.d as { producerId: string }).producerId).toBe(producerId);

    await a.c.ok('pauseProducer', { producerId });
    expect((await b.c.event('eventProducerPaused')).d).toEqual({ consumerId: d.id, producerId });
    await a.c.ok('resumeProducer', { producerId });
    expect((await b.c.event('eventProducerResumed')).d).toEqual({ consumerId: d.id, producerId });
    await b.c.ok('setConsumerPreferredLayers', { consumerId: d.id, spatialLayer: 0 });
    await b.c.ok('pauseConsumer', { consumerId: d.id });

    await a.c.ok('closeProducer', { producerId });
    expect((await b.c.event('eventConsumerClosed')).d).toEqual({ consumerId: d.id });
    await late.c.event('eventConsumerClosed');
    // The consumer is gone on the node too.
    const r = await b.c.request('resumeConsumer', { consumerId: d.id });
    expect(r).toMatchObject({ s: false, e: ErrorCodes.MEDIA_NOT_FOUND.code });
  });

  it('announces data consumers and closes consumers when their producer leaves the room', async () => {
    const a = await member(sfu, 'm-leave');
    const b = await member(sfu, 'm-leave');
    await produce(a, 'audio', 2222);
    await produce(a, 'video', 3333);
    const { id: dataProducerId } = (await a.c.ok('produceData', {
      transportId: a.send.id,
      sctpStreamParameters: { streamId: 0, ordered: true },
      label: 'chat',
    })) as { id: string };
    await waitFor('two consumers', async () => consumersOf(b.c).length === 2);
    const dc = await b.c.event('eventNewDataConsumer');
    expect(dc.d).toMatchObject({ dataProducerId, label: 'chat', protocol: '' });
    const ids = consumersOf(b.c).map((e) => (e.d as { id: string }).id);

    a.c.close(1000);
    await waitFor('consumers closed', async () => b.c.events('eventConsumerClosed').length === 2);
    expect(
      b.c
        .events('eventConsumerClosed')
        .map((e) => (e.d as { consumerId: string }).consumerId)
        .sort(),
    ).toEqual(ids.sort());
    await b.c.event('eventDataConsumerClosed');
    await b.c.event('eventLeave');
  });

  it('a member that drops keeps its media through its window, and loses it when the window ends', async () => {
    const a = await member(sfu, 'm-window');
    const b = await member(sfu, 'm-window');
    await produce(a, 'video', 9001);
    const consumerId = ((await b.c.event('eventNewConsumer')).d as { id: string }).id;
    a.c.kill();
    await new Promise((r) => setTimeout(r, SFU_TIMINGS.RECONNECT_WINDOW_MS / 2));
    expect(b.c.events('eventConsumerClosed')).toHaveLength(0);
    const closed = await b.c.event('eventConsumerClosed', 10_000);
    expect(closed.d).toEqual({ consumerId });
    await b.c.event('eventLeave');
  });

  it('forwards plain RTP to a plain receiver, and reports a producer that stops as frozen', async () => {
    const a = await TestClient.join(sfu.gateways[0]?.url ?? '', 'm-plain', 'broadcaster', {
      grants: { role: 'broadcaster' },
    });
    const b = await member(sfu, 'm-plain');
    const r = await TestClient.join(sfu.gateways[0]?.url ?? '', 'm-plain', 'recorder', {
      grants: { role: 'recorder' },
    });
    open.push(a, r);
    const caps = await r.ok('getRouterRtpCapabilities');
    const sending = (await a.ok('createPlainTransport', { direction: 'send' })) as {
      id: string;
      ip: string;
      port: number;
    };
    const receiving = (await r.ok('createPlainTransport', {
      direction: 'recv',
      rtpCapabilities: caps,
    })) as { id: string };
    const sink = await udpSink();
    // Only to MEDIA_PLAIN_ALLOWED_CIDRS (loopback by default): no media to other hosts.
    for (const ip of ['10.1.2.3', '8.8.8.8', '::ffff:1.2.3.4', '169.254.169.254']) {
      expect(
        await r.request('connectPlainTransport', { transportId: receiving.id, ip, port: 9 }),
        ip,
      ).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    }
    await r.ok('connectPlainTransport', {
      transportId: receiving.id,
      ip: '127.0.0.1',
      port: sink.port,
    });
    const producerId = await produce({ c: a, send: sending }, 'video', 8001);
    const consumer = (await r.event('eventNewConsumer')).d as { id: string; producerId: string };
    expect(consumer.producerId).toBe(producerId);
    await r.ok('resumeConsumer', { consumerId: consumer.id });
    const source = vp8Source(sending, 8001);
    try {
      await waitFor('RTP forwarded to the plain receiver', async () => sink.packets > 20);
      // The WebRTC member got its consumer too, and a score once media flows.
      const webrtc = (await b.c.event('eventNewConsumer')).d as { id: string };
      await b.c.ok('resumeConsumer', { consumerId: webrtc.id });
      source.stop();
      // No more bytes: the members consuming it hear of a freeze.
      const freeze = await r.event('eventFreeze', 10_000);
      expect(freeze.d).toEqual({
        from: { socketId: a.socketId, userId: 'broadcaster' },
        producerId,
      });
      expect((await b.c.event('eventFreeze', 10_000)).d).toEqual(freeze.d);
    } finally {
      source.stop();
      sink.close();
    }
  });

  it('limits how often one user creates receiving transports in a room (churn)', async () => {
    const url = sfu.gateways[0]?.url ?? '';
    const outcomes: (number | true)[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await TestClient.join(url, 'm-churn', 'churner');
      open.push(c);
      const caps = await c.ok('getRouterRtpCapabilities');
      const r = await c.request('createWebRtcTransport', {
        direction: 'recv',
        rtpCapabilities: caps,
      });
      outcomes.push(r.s === true ? true : (r.e ?? 0));
      c.close(1000);
      await c.closed;
    }
    // MEDIA_RECV_TRANSPORTS_PER_MIN is 3 here; another user is not affected.
    expect(outcomes).toEqual([true, true, true, ErrorCodes.RATE_LIMITED.code]);
    const { recv } = await member(sfu, 'm-churn');
    expect(recv?.id).toBeDefined();
  });

  it('answers bad media input with error codes and keeps serving', async () => {
    const fresh = await TestClient.connect(sfu.gateways[0]?.url ?? '');
    open.push(fresh);
    expect(await fresh.request('getRouterRtpCapabilities')).toMatchObject({
      s: false,
      e: ErrorCodes.USER_NOT_AUTHENTICATED.code,
    });
    const { c, send } = await member(sfu, 'm-bad', { recv: false });
    const code = async (a: string, d?: unknown) => {
      const r = await c.request(a, d);
      return r.s ? 'ok' : r.e;
    };
    expect(await code('createWebRtcTransport', { direction: 'recv' })).toBe(
      ErrorCodes.JSON_FIELD_MISSING.code,
    );
    expect(await code('createWebRtcTransport', { direction: 'sideways' })).toBe(
      ErrorCodes.JSON_FIELD_INVALID.code,
    );
    expect(await code('connectWebRtcTransport', { transportId: send.id })).toBe(
      ErrorCodes.JSON_FIELD_MISSING.code,
    );
    const missing = '00000000-0000-4000-8000-000000000000';
    expect(
      await code('produce', {
        transportId: missing,
        kind: 'video',
        rtpParameters: vp8Parameters(1),
      }),
    ).toBe(ErrorCodes.MEDIA_NOT_FOUND.code);
    // mediasoup's own checks: a codec the router does not have.
    const h265 = vp8Parameters(5);
    h265.codecs[0] = { ...h265.codecs[0], mimeType: 'video/H265' } as (typeof h265.codecs)[0];
    expect(
      await code('produce', { transportId: send.id, kind: 'video', rtpParameters: h265 }),
    ).toBe(ErrorCodes.JSON_FIELD_INVALID.code);
    // A fingerprint that is not one: mediasoup refuses it, the transport stays usable.
    const dtls = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'zz' }] };
    const bad = await code('connectWebRtcTransport', {
      transportId: send.id,
      dtlsParameters: dtls,
    });
    expect([ErrorCodes.JSON_FIELD_INVALID.code, 'ok']).toContain(bad);
    expect(await code('resumeConsumer', { consumerId: missing })).toBe(
      ErrorCodes.MEDIA_NOT_FOUND.code,
    );
    // A first request that places nothing hosts nothing on the node.
    const rooms = async () =>
      /^sb_media_rooms\{[^}]*\} (\d+)/m.exec(
        await (await fetch(`${sfu.media[0]?.opsUrl ?? ''}/metrics`)).text(),
      )?.[1];
    const hosted = await rooms();
    const idle = await TestClient.join(sfu.gateways[0]?.url ?? '', 'm-idle', 'idle');
    open.push(idle);
    expect(await idle.request('resumeConsumer', { consumerId: missing })).toMatchObject({
      s: false,
      e: ErrorCodes.MEDIA_NOT_FOUND.code,
    });
    expect(await rooms()).toBe(hosted);
    // Transports are limited per session.
    let limited: unknown = 'ok';
    for (let i = 0; i < 5 && limited === 'ok'; i++) {
      limited = await code('createWebRtcTransport', { direction: 'send' });
    }
    expect(limited).toBe(ErrorCodes.MEDIA_LIMIT.code);
    // Still serving.
    expect(await code('getTransportStats', { transportId: send.id })).toBe('ok');
  });

  it('bad messages on the media subjects are refused; the node and the rooms service keep serving', async () => {
    const { mediaSubjects, Media, subjects } = await import('@switchboard/protocol');
    const subject = subjects.rpc(sfu.subjectPrefix, Media.produce, 'media-1');
    for (const payload of [{}, { roomId: 'x' }, 'not an object', { data: { transportId: 1 } }]) {
      await expect(
        sfu.bus.requestSubject(subject, payload, Media.produce.reply),
      ).rejects.toMatchObject({
        errorName: expect.stringMatching(/^JSON_FIELD_(INVALID|MISSING)$/) as unknown,
      });
    }
    // A heartbeat that is not one is dropped by the rooms service.
    sfu.bus.publish(mediaSubjects.heartbeat(sfu.subjectPrefix), { nodeId: 'x y', load: -1 });
    const { c } = await member(sfu, 'm-after-bad', { recv: false });
    expect((await c.request('getRouterRtpCapabilities')).s).toBe(true);
  });

  it('the worker hosting a room dies: its members get eventMediaReset and start again', async () => {
    const a = await member(sfu, 'm-worker');
    const b = await member(sfu, 'm-worker');
    await produce(a, 'video', 4444);
    await b.c.event('eventNewConsumer');
    const media = sfu.media[0];
    if (media === undefined) throw new Error('no media node');
    const [pid] = mediasoupWorkerPids(media.process.pid);
    if (pid === undefined) throw new Error('no worker');
    process.kill(pid, 'SIGKILL');
    expect((await a.c.event('eventMediaReset')).d).toEqual({ reason: 'worker' });
    expect((await b.c.event('eventMediaReset')).d).toEqual({ reason: 'worker' });
    // The old transports are gone; a new start works (on the respawned worker).
    const r = await a.c.request('getTransportStats', { transportId: a.send.id });
    expect(r.s).toBe(false);
    await startAgain(a.c, b.c, 5555, 'a consumer again');
    await media.waitReady();
  });
});

describe('a room that outgrows a worker', () => {
  let sfu: SfuPlatform;
  useSfu(
    open,
    (p) => {
      sfu = p;
    },
    { workers: 2, env: { MEDIASOUP_WORKER_MAX_LOAD: '3' } },
  );

  it('spreads to a second worker and pipes producers across, both ways', async () => {
    // a: send + recv (load 2) + b's consumer later; b no longer fits worker 0.
    const a = await member(sfu, 'm-pipe');
    const b = await member(sfu, 'm-pipe');
    const c = await member(sfu, 'm-pipe');
    await produce(a, 'video', 6001);
    await produce(b, 'video', 6002);
    await produce(c, 'video', 6003);
    for (const m of [a, b, c]) {
      await waitFor('two consumers each', async () => consumersOf(m.c).length === 2);
    }
    const metrics = await (await fetch(`${sfu.media[0]?.opsUrl ?? ''}/metrics`)).text();
    const loads = [...metrics.matchAll(/sb_media_worker_load\{slot="(\d)"[^}]*\} (\d+)/g)].map(
      (m) => Number(m[2]),
    );
    // Both workers carry part of the one room.
    expect(loads).toHaveLength(2);
    expect(loads.every((l) => l > 0)).toBe(true);
  });
});

describe('two workers, rooms on each', () => {
  let sfu: SfuPlatform;
  useSfu(
    open,
    (p) => {
      sfu = p;
    },
    { workers: 2 },
  );

  it('a worker that dies resets its rooms only: a room on the other worker notices nothing', async () => {
    const media = sfu.media[0];
    if (media === undefined) throw new Error('no media node');
    const loadOf = async (): Promise<number[]> => {
      const text = await (await fetch(`${media.opsUrl}/metrics`)).text();
      return [...text.matchAll(/sb_media_worker_load\{slot="(\d)"[^}]*\} (\d+)/g)]
        .sort((x, y) => Number(x[1]) - Number(y[1]))
        .map((m) => Number(m[2]));
    };
    // Each new room goes to the least-loaded worker: one member each, then see where.
    const before = await loadOf();
    const x = await member(sfu, 'w-x', { recv: false });
    const afterX = await loadOf();
    const slotX = afterX.findIndex((l, i) => l > (before[i] ?? 0));
    const y1 = await member(sfu, 'w-y', { recv: false });
    const y2 = await member(sfu, 'w-y');
    const afterY = await loadOf();
    const slotY = afterY.findIndex((l, i) => l > (afterX[i] ?? 0));
    expect(slotX).toBeGreaterThanOrEqual(0);
    expect(slotY).not.toBe(slotX);
    await produce(y1, 'video', 9101);
    const yConsumer = ((await y2.c.event('eventNewConsumer')).d as { id: string }).id;

    const pids = mediasoupWorkerPids(media.process.pid);
    const victim = pids[slotX];
    if (victim === undefined) throw new Error('no worker for the slot');
    process.kill(victim, 'SIGKILL');
    await x.c.event('eventMediaReset');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of [y1.c, y2.c]) expect(c.events('eventMediaReset')).toHaveLength(0);
    expect(y2.c.events('eventConsumerClosed')).toHaveLength(0);
    await y2.c.ok('resumeConsumer', { consumerId: yConsumer });
    await media.waitReady();
  });
});

describe('several media nodes', () => {
  let sfu: SfuPlatform;
  useSfu(
    open,
    (p) => {
      sfu = p;
    },
    { mediaNodes: 2, extraGateways: 1 },
  );

  /** The node recorded for `roomId` (null: none), as the rooms service stored it. */
  const recordedNode = async (roomId: string): Promise<string | null> => {
    const db = new pg.Client({ connectionString: sfu.platform.databaseUrl });
    await db.connect();
    try {
      const r = await db.query<{ media_node_id: string | null }>(
        'SELECT media_node_id FROM rooms WHERE id = $1',
        [roomId],
      );
      return r.rows[0]?.media_node_id ?? null;
    } finally {
      await db.end();
    }
  };
  const nodeProcess = (nodeId: string | null): ServiceProcess => {
    const p = sfu.media[Number(nodeId?.replace('media-', '')) - 1];
    if (p === undefined) throw new Error(`no media process for ${String(nodeId)}`);
    return p;
  };

  /** Which node hosts `roomId`, by asking each node's /metrics how many rooms it has. */
  const roomsPerNode = async (): Promise<number[]> =>
    await Promise.all(
      sfu.media.map(async (m) => {
        const text = await (await fetch(`${m.opsUrl}/metrics`)).text();
        return Number(/^sb_media_rooms\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? -1);
      }),
    );

  it('refuses plain transports unless the node enables them', async () => {
    const c = await TestClient.join(sfu.gateways[0]?.url ?? '', 'n-noplain', 'caster', {
      grants: { role: 'broadcaster' },
    });
    open.push(c);
    const r = await c.request('createPlainTransport', { direction: 'send' });
    expect(r).toMatchObject({ s: false, e: ErrorCodes.UNKNOWN_ACTION.code });
  });

  it('spreads rooms over the nodes; members on different gateways share one node', async () => {
    const before = await roomsPerNode();
    for (let i = 0; i < 4; i++) {
      await member(sfu, `n-spread-${String(i)}`, { gateway: i % 2 });
      await member(sfu, `n-spread-${String(i)}`, { gateway: (i + 1) % 2 });
    }
    const counts = (await roomsPerNode()).map((n, i) => n - (before[i] ?? 0));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(4);
    expect(counts.every((n) => n >= 1)).toBe(true);
  });

  it('a node hosting a room that moved elsewhere (it was taken for dead) lets it go', async () => {
    const a = await member(sfu, 'n-moved', { recv: false });
    const node = await recordedNode('n-moved');
    const other = node === 'media-1' ? 'media-2' : 'media-1';
    const db = new pg.Client({ connectionString: sfu.platform.databaseUrl });
    await db.connect();
    try {
      await db.query('UPDATE rooms SET media_node_id = $1 WHERE id = $2', [other, 'n-moved']);
    } finally {
      await db.end();
    }
    await waitFor('the old node closing the room', async () => {
      const r = await a.c.request('getTransportStats', { transportId: a.send.id });
      return r.s === false && r.e === ErrorCodes.MEDIA_NOT_FOUND.code;
    });
  });

  it('a node that stops: its rooms move, their members get eventMediaReset', async () => {
    const a = await member(sfu, 'n-fail');
    const b = await member(sfu, 'n-fail', { gateway: 1 });
    await produce(a, 'video', 7001);
    await b.c.event('eventNewConsumer');
    const first = await recordedNode('n-fail');
    expect(first).toMatch(/^media-[12]$/);
    await nodeProcess(first).process.kill();
    const reset = await a.c.event('eventMediaReset', 15_000);
    expect(reset.d).toEqual({ reason: 'node' });
    await b.c.event('eventMediaReset', 15_000);
    // Starting again lands on the surviving node, and consuming works there.
    await startAgain(a.c, b.c, 7002, 'a consumer on the other node');
    const second = await recordedNode('n-fail');
    expect(second).toMatch(/^media-[12]$/);
    expect(second).not.toBe(first);

    // A node that leaves gracefully hands its rooms over at once (no dead-node wait).
    sfu.media.push(await sfu.spawn('media', 'media-3', { INSTANCE_ID: 'media-3' }));
    const resets = a.c.events('eventMediaReset').length;
    const stopping = nodeProcess(second).stop();
    const t0 = Date.now();
    await waitFor('a reset', async () => a.c.events('eventMediaReset').length > resets, {
      timeoutMs: 5000,
    });
    const handover = Date.now() - t0;
    expect(await stopping).toBe(0);
    expect(handover).toBeLessThan(SFU_TIMINGS.MEDIA_NODE_DEAD_AFTER_MS);
    await a.c.ok('getRouterRtpCapabilities');
    expect(await recordedNode('n-fail')).toBe('media-3');
  });
});
