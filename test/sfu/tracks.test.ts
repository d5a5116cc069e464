/**
 * Tracks through the server API's side of the rooms service, with real mediasoup producers
 * (hand-written RTP parameters, as in media.test.ts): the media node reports each producer
 * that begins and ends (kept with the member, track.published / track.unpublished); a track
 * muted by the API is paused at every consumer, its owner told and unable to resume it until
 * it is unmuted (an owner's own pause survives the unmute); grants that stop allowing a
 * source close its producer at once.
 */
import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  ProtocolError,
  RoomsAdmin,
  type WebRtcTransportInfo,
} from '@switchboard/protocol';
import { TestClient } from '../signaling/client.ts';
import { collectRoomEvents, waitUntil, type SeenRoomEvent } from '../signaling/fixtures.ts';
import { useSfu, type SfuPlatform } from './platform.ts';
import { opusParameters, vp8Parameters } from './rtp.ts';

const open: TestClient[] = [];
let sfu: SfuPlatform;
let seq = 0;
let events: SeenRoomEvent[] = [];

useSfu(open, (p) => {
  sfu = p;
  events = collectRoomEvents(sfu.bus);
});

async function member(
  roomId: string,
): Promise<{ c: TestClient; send: WebRtcTransportInfo; socketId: string }> {
  const c = await TestClient.join(sfu.gateways[0]?.url ?? '', roomId, `t${seq++}`);
  open.push(c);
  const caps = await c.ok('getRouterRtpCapabilities');
  const send = (await c.ok('createWebRtcTransport', { direction: 'send' })) as WebRtcTransportInfo;
  await c.ok('createWebRtcTransport', { direction: 'recv', rtpCapabilities: caps });
  return { c, send, socketId: c.socketId ?? '' };
}

async function produce(
  m: { c: TestClient; send: WebRtcTransportInfo },
  kind: 'video' | 'audio',
): Promise<string> {
  const r = (await m.c.ok('produce', {
    transportId: m.send.id,
    kind,
    rtpParameters: kind === 'video' ? vp8Parameters(2000 + seq) : opusParameters(3000 + seq),
    source: kind === 'video' ? 'camera' : 'microphone',
  })) as { id: string };
  return r.id;
}

async function tracksOf(roomId: string, socketId: string) {
  return (await sfu.bus.request(RoomsAdmin.getParticipant, { roomId, socketId })).tracks;
}

const typesIn = (roomId: string): string[] =>
  events.filter((e) => e.roomId === roomId).map((e) => e.type);

describe('tracks', () => {
  it('are kept with their member while published, with track.published and track.unpublished', async () => {
    const roomId = 'tr-life';
    const a = await member(roomId);
    const cam = await produce(a, 'video');
    const mic = await produce(a, 'audio');
    await waitUntil(async () => (await tracksOf(roomId, a.socketId)).length === 2);
    expect(await tracksOf(roomId, a.socketId)).toMatchObject([
      { trackId: cam, kind: 'video', source: 'camera', muted: false },
      { trackId: mic, kind: 'audio', source: 'microphone', muted: false },
    ]);
    await a.c.ok('closeProducer', { producerId: cam });
    await waitUntil(async () => (await tracksOf(roomId, a.socketId)).length === 1);
    // Leaving with a track: its end comes before the leave, once.
    a.c.close();
    await waitUntil(() => typesIn(roomId).includes('room.closed'));
    await new Promise((r) => setTimeout(r, 500));
    expect(typesIn(roomId)).toEqual([
      'room.created',
      'room.join',
      'track.published',
      'track.published',
      'track.unpublished',
      'track.unpublished',
      'room.leave',
      'room.closed',
    ]);
    const ended = events.filter((e) => e.roomId === roomId && e.type === 'track.unpublished');
    expect(ended.map((e) => e.data['trackId'])).toEqual([cam, mic]);
  });

  it('muted by the API: paused at every consumer, the owner told and unable to resume', async () => {
    const roomId = 'tr-mute';
    const a = await member(roomId);
    const b = await member(roomId);
    const c = await member(roomId);
    const mic = await produce(a, 'audio');
    for (const m of [b, c]) await m.c.event('eventNewConsumer');
    await waitUntil(async () => (await tracksOf(roomId, a.socketId)).length === 1);

    const muted = await sfu.bus.request(RoomsAdmin.muteTrack, {
      roomId,
      socketId: a.socketId,
      trackId: mic,
      muted: true,
    });
    expect(muted).toMatchObject({ trackId: mic, muted: true });
    expect((await a.c.event('eventProducerMuted')).d).toEqual({ producerId: mic, muted: true });
    for (const m of [b, c]) {
      expect((await m.c.event('eventProducerPaused')).d).toMatchObject({ producerId: mic });
    }
    const resume = await a.c.request('resumeProducer', { producerId: mic });
    expect(resume).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    expect((await tracksOf(roomId, a.socketId))[0]?.muted).toBe(true);

    // Unmuted: resumed everywhere, the owner told.
    await sfu.bus.request(RoomsAdmin.muteTrack, {
      roomId,
      socketId: a.socketId,
      trackId: mic,
      muted: false,
    });
    await a.c.waitFor((f) => f.a === 'eventProducerMuted' && !(f.d as { muted: boolean }).muted);
    for (const m of [b, c]) await m.c.event('eventProducerResumed');

    // The owner pauses while muted: the unmute leaves it paused.
    await sfu.bus.request(RoomsAdmin.muteTrack, {
      roomId,
      socketId: a.socketId,
      trackId: mic,
      muted: true,
    });
    await a.c.ok('pauseProducer', { producerId: mic });
    await sfu.bus.request(RoomsAdmin.muteTrack, {
      roomId,
      socketId: a.socketId,
      trackId: mic,
      muted: false,
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.c.events('eventProducerResumed')).toHaveLength(1);
    await a.c.ok('resumeProducer', { producerId: mic });
    await waitUntil(() => b.c.events('eventProducerResumed').length === 2);
    await waitUntil(() => typesIn(roomId).filter((t) => t === 'track.muted').length === 4);

    // Someone else's track, or a made-up one: not found.
    const code = await sfu.bus
      .request(RoomsAdmin.muteTrack, { roomId, socketId: b.socketId, trackId: mic, muted: true })
      .then(
        () => 0,
        (err: unknown) => (err instanceof ProtocolError ? err.code : -1),
      );
    expect(code).toBe(ErrorCodes.MEDIA_NOT_FOUND.code);
  });

  it('grants that stop allowing a source close its producer at once', async () => {
    const roomId = 'tr-grants';
    const a = await member(roomId);
    const b = await member(roomId);
    const cam = await produce(a, 'video');
    const mic = await produce(a, 'audio');
    await waitUntil(() => b.c.events('eventNewConsumer').length === 2);
    await sfu.bus.request(RoomsAdmin.updateParticipant, {
      roomId,
      socketId: a.socketId,
      grants: { canPublishSources: ['microphone'] },
    });
    await b.c.event('eventConsumerClosed');
    await waitUntil(async () => (await tracksOf(roomId, a.socketId)).length === 1);
    expect((await tracksOf(roomId, a.socketId))[0]?.trackId).toBe(mic);
    // And it cannot publish its camera again.
    const again = await a.c.request('produce', {
      transportId: a.send.id,
      kind: 'video',
      rtpParameters: vp8Parameters(9999),
      source: 'camera',
    });
    expect(again).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    // The event reaches NATS through the outbox relay, after the commit the row shows.
    await waitUntil(() =>
      events.some(
        (e) => e.roomId === roomId && e.type === 'track.unpublished' && e.data['trackId'] === cam,
      ),
    );
  });
});
