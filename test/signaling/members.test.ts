/**
 * Who is in the room: the token's `name` and `metadata` reach the other members, in
 * `joinR.sessions` and in `eventJoin` when someone arrives (never of a hidden member); the
 * `bitrate` a client announces in `join` is in its room.join event (null when it announced
 * none).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintToken } from '@switchboard/devstack';
import { roomEvent, roomEventSubject, type JoinReply, type RoomEvent } from '@switchboard/protocol';
import { TestClient } from './client.ts';
import { sleep } from './fixtures.ts';
import { startSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];
const joins: RoomEvent<'room.join'>[] = [];

beforeAll(async () => {
  sp = await startSignaling(inject('natsUrl'), inject('pgServerUrl'));
  sp.bus.subscribe(roomEventSubject(sp.bus.prefix, 'room.join'), roomEvent['room.join'], (e) => {
    joins.push(e);
  });
});

afterAll(async () => {
  for (const c of open) c.kill();
  await sp.stop();
});

async function join(
  gw: 'gw1' | 'gw2',
  room: string,
  user: string,
  claims: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<{ c: TestClient; reply: JoinReply }> {
  const c = await TestClient.connect(sp[gw].url);
  open.push(c);
  const r = await c.request('join', {
    roomId: room,
    bearer: await mintToken({ sub: user, rooms: [room], extra: claims }),
    platform: 'Web',
    ...extra,
  });
  expect(r.s, JSON.stringify(r)).toBe(true);
  return { c, reply: r.d as JoinReply };
}

describe('who is in the room', () => {
  it('names and metadata in joinR.sessions and eventJoin; hidden members arrive for nobody', async () => {
    const room = 'members-1';
    const alice = await join(
      'gw1',
      room,
      'alice',
      { name: 'Alice', metadata: '{"role":"teacher"}' },
      { bitrate: 1_500_000 },
    );
    expect(alice.reply.sessions).toEqual([]);
    const bob = await join('gw2', room, 'bob', { name: 'Bob' });
    expect(bob.reply.sessions).toEqual([
      {
        socketId: alice.reply.socketId,
        userId: 'alice',
        name: 'Alice',
        metadata: '{"role":"teacher"}',
      },
    ]);
    const arrived = await alice.c.event('eventJoin');
    expect(arrived.d).toEqual({
      roomId: room,
      roomSize: 2,
      socketId: bob.reply.socketId,
      userId: 'bob',
      name: 'Bob',
    });
    // Nobody hears of a hidden member's arrival; nor does the one arriving hear of itself.
    const recorder = await join('gw1', room, 'rec', { grants: { hidden: true } });
    expect(recorder.reply.sessions).toHaveLength(2);
    await sleep(500);
    expect(alice.c.events('eventJoin')).toHaveLength(1);
    expect(bob.c.events('eventJoin')).toHaveLength(0);
    expect(recorder.c.events('eventJoin')).toHaveLength(0);
  });

  it('room.join carries the bitrate announced in join, or null', async () => {
    const room = 'members-2';
    const a = await join('gw1', room, 'carol', {}, { bitrate: 800_000 });
    const b = await join('gw2', room, 'dave', {});
    const deadline = Date.now() + 10_000;
    const of = (socketId: string): RoomEvent<'room.join'> | undefined =>
      joins.find((e) => e.socketId === socketId);
    while (of(a.reply.socketId) === undefined || of(b.reply.socketId) === undefined) {
      if (Date.now() > deadline) throw new Error('room.join events did not come');
      await sleep(50);
    }
    expect(of(a.reply.socketId)?.bitrate).toBe(800_000);
    expect(of(b.reply.socketId)?.bitrate).toBeNull();
  });

  it('a bad bitrate or oversized metadata is refused', async () => {
    const c = await TestClient.connect(sp.gw1.url);
    open.push(c);
    const r = await c.request('join', {
      roomId: 'members-3',
      bearer: await mintToken({ sub: 'eve', rooms: ['members-3'] }),
      platform: 'Web',
      bitrate: -1,
    });
    expect(r.s).toBe(false);
    const big = await TestClient.connect(sp.gw1.url);
    open.push(big);
    const r2 = await big.request('join', {
      roomId: 'members-3',
      bearer: await mintToken({
        sub: 'eve',
        rooms: ['members-3'],
        extra: { metadata: 'm'.repeat(4097) },
      }),
      platform: 'Web',
    });
    expect(r2.s).toBe(false);
  });
});
