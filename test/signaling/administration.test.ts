/**
 * The rooms service's administration RPCs (RoomsAdmin, what the server API fronts), called
 * on the bus with real clients in the rooms: rooms created with an empty timeout and closed
 * after it, listed a page at a time and only where the caller's grants reach; members
 * listed, changed (the member and its peers told; new grants in force at once, and after a
 * token refresh), removed (closed with 4004 and the reason, unable to resume) and a deleted
 * room emptied (4005); data sent to a room and to some members. The HTTP front and its
 * authentication are tested in test/api.
 */
import { describe, expect, it } from 'vitest';
import { mintToken } from '@switchboard/devstack';
import { CloseCodes, ErrorCodes, ProtocolError, RoomsAdmin } from '@switchboard/protocol';
import { TestClient } from './client.ts';
import { collectRoomEvents, sleep, waitUntil, type SeenRoomEvent } from './fixtures.ts';
import { useSignaling, type SignalingPlatform } from './platform.ts';

let sp: SignalingPlatform;
const open: TestClient[] = [];
let events: SeenRoomEvent[] = [];

useSignaling(open, async (p) => {
  sp = p;
  events = collectRoomEvents(sp.bus);
});

async function join(
  gw: 'gw1' | 'gw2',
  room: string,
  user: string,
  claims: Record<string, unknown> = {},
): Promise<TestClient> {
  const c = await TestClient.join(sp[gw].url, room, user, claims);
  open.push(c);
  return c;
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
  return 0;
}

const kinds = (roomId: string): string[] =>
  events.filter((e) => e.roomId === roomId).map((e) => e.type);

describe('rooms administration', () => {
  it('creates a room that waits for members, closes it after its empty timeout', async () => {
    const roomId = 'adm-create';
    const made = await sp.bus.request(RoomsAdmin.createRoom, {
      roomId,
      capacity: 3,
      emptyTimeoutS: 1,
      metadata: '{"topic":"standup"}',
    });
    expect(made).toMatchObject({
      created: true,
      room: {
        roomId,
        capacity: 3,
        capacitySet: true,
        emptyTimeoutS: 1,
        metadata: '{"topic":"standup"}',
        roomSize: 0,
      },
    });
    // Created again: returned unchanged.
    const again = await sp.bus.request(RoomsAdmin.createRoom, { roomId, capacity: 10 });
    expect(again).toMatchObject({ created: false, room: { capacity: 3 } });
    const updated = await sp.bus.request(RoomsAdmin.updateRoom, {
      roomId,
      capacity: null,
      emptyTimeoutS: 2,
    });
    expect(updated).toMatchObject({
      capacity: 50,
      capacitySet: false,
      emptyTimeoutS: 2,
      metadata: '{"topic":"standup"}',
    });
    // A member comes and goes: the room stays for its empty timeout, then closes.
    const a = await join('gw1', roomId, 'alice');
    expect((await sp.bus.request(RoomsAdmin.getRoom, { roomId })).roomSize).toBe(1);
    a.close();
    await a.closed;
    await waitUntil(
      async () => (await sp.bus.request(RoomsAdmin.getRoom, { roomId })).roomSize === 0,
    );
    await sleep(500);
    expect((await sp.bus.request(RoomsAdmin.getRoom, { roomId })).roomId).toBe(roomId);
    await waitUntil(
      async () =>
        (await code(sp.bus.request(RoomsAdmin.getRoom, { roomId }))) ===
        ErrorCodes.ROOM_NOT_FOUND.code,
      10_000,
    );
    await waitUntil(() => kinds(roomId).includes('room.closed'));
    expect(kinds(roomId)).toEqual(['room.created', 'room.join', 'room.leave', 'room.closed']);
    expect(events.find((e) => e.roomId === roomId && e.type === 'room.leave')?.data).toMatchObject({
      reason: 'left',
    });
    expect(await code(sp.bus.request(RoomsAdmin.updateRoom, { roomId, capacity: 2 }))).toBe(
      ErrorCodes.ROOM_NOT_FOUND.code,
    );
  });

  it('lists rooms a page at a time, only those the grants cover', async () => {
    for (let i = 0; i < 7; i++) {
      await sp.bus.request(RoomsAdmin.createRoom, { roomId: `adm-list-${i}`, emptyTimeoutS: null });
    }
    await sp.bus.request(RoomsAdmin.createRoom, { roomId: 'adm-listx', emptyTimeoutS: null });
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await sp.bus.request(RoomsAdmin.listRooms, {
        limit: 3,
        only: ['adm-list-*'],
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...page.rooms.map((r) => r.roomId));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `adm-list-${i}`));
    const exact = await sp.bus.request(RoomsAdmin.listRooms, {
      limit: 10,
      only: ['adm-listx', 'adm-list-3'],
    });
    expect(exact.rooms.map((r) => r.roomId)).toEqual(['adm-list-3', 'adm-listx']);
    // A `_` in a grant is no LIKE wildcard; no grants: nothing.
    expect(
      (await sp.bus.request(RoomsAdmin.listRooms, { limit: 10, only: ['adm_list*'] })).rooms,
    ).toEqual([]);
    expect((await sp.bus.request(RoomsAdmin.listRooms, { limit: 10, only: [] })).rooms).toEqual([]);
    for (let i = 0; i < 7; i++) {
      await sp.bus.request(RoomsAdmin.deleteRoom, { roomId: `adm-list-${i}` });
    }
    await sp.bus.request(RoomsAdmin.deleteRoom, { roomId: 'adm-listx' });
  });

  it('lists, changes and tells: name, metadata and grants, which last past a token refresh', async () => {
    const roomId = 'adm-update';
    const alice = await join('gw1', roomId, 'alice', { name: 'Alice' });
    const bob = await join('gw2', roomId, 'bob');
    const list = await sp.bus.request(RoomsAdmin.listParticipants, { roomId, limit: 10 });
    expect(list.participants.map((p) => p.userId).sort()).toEqual(['alice', 'bob']);
    expect(list.participants.find((p) => p.userId === 'alice')).toMatchObject({
      name: 'Alice',
      state: 'active',
      platform: 'Web',
      tracks: [],
      grants: { publish: true, data: true },
    });

    const changed = await sp.bus.request(RoomsAdmin.updateParticipant, {
      roomId,
      socketId: alice.socketId ?? '',
      name: 'Alice (host)',
      metadata: '{"hand":true}',
      grants: { canPublish: false, canPublishData: false },
    });
    expect(changed).toMatchObject({
      name: 'Alice (host)',
      metadata: '{"hand":true}',
      grants: { publish: false, data: false, subscribe: true },
    });
    // Bob hears of it without Alice's grants; Alice hears of it with hers.
    const told = await bob.event('eventParticipantUpdated');
    expect(told.d).toEqual({
      socketId: alice.socketId,
      userId: 'alice',
      name: 'Alice (host)',
      metadata: '{"hand":true}',
    });
    const self = await alice.event('eventParticipantUpdated');
    expect(self.d).toMatchObject({ name: 'Alice (host)', grants: { publish: false } });
    // In force at once on her gateway...
    const produce = await alice.request('produceData', {
      transportId: '00000000-0000-4000-8000-000000000000',
      sctpStreamParameters: { streamId: 1, ordered: true },
    });
    expect(produce).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    // ...and after she refreshes her (unchanged) token.
    const refreshed = await alice.request('refreshToken', {
      bearer: await mintToken({ sub: 'alice', rooms: [roomId], extra: { name: 'Alice' } }),
    });
    expect(refreshed.s).toBe(true);
    expect(
      (
        await sp.bus.request(RoomsAdmin.getParticipant, {
          roomId,
          socketId: alice.socketId ?? '',
        })
      ).grants,
    ).toMatchObject({ publish: false, data: false });
    const again = await alice.request('produceData', {
      transportId: '00000000-0000-4000-8000-000000000000',
      sctpStreamParameters: { streamId: 1, ordered: true },
    });
    expect(again).toMatchObject({ s: false, e: ErrorCodes.PERMISSION_DENIED.code });
    // A null removes a field; a hidden member stays what its token made it.
    const cleared = await sp.bus.request(RoomsAdmin.updateParticipant, {
      roomId,
      socketId: alice.socketId ?? '',
      metadata: null,
    });
    expect(cleared.metadata).toBeUndefined();
    expect(
      await code(
        sp.bus.request(RoomsAdmin.updateParticipant, {
          roomId,
          socketId: bob.socketId ?? '',
          grants: { hidden: true },
        }),
      ),
    ).toBe(ErrorCodes.JSON_FIELD_INVALID.code);
    expect(
      await code(
        sp.bus.request(RoomsAdmin.getParticipant, {
          roomId: 'adm-other',
          socketId: bob.socketId ?? '',
        }),
      ),
    ).toBe(ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code);
    await waitUntil(() => kinds(roomId).includes('participant.updated'));
    expect(
      events.find((e) => e.roomId === roomId && e.type === 'participant.updated')?.data,
    ).toMatchObject({ socketId: alice.socketId, name: 'Alice (host)', grants: { publish: false } });
  });

  it('removes a member: closed with 4004 and the reason, unable to resume; peers told', async () => {
    const roomId = 'adm-remove';
    const alice = await join('gw1', roomId, 'alice');
    const bob = await join('gw2', roomId, 'bob');
    await sp.bus.request(RoomsAdmin.removeParticipant, {
      roomId,
      socketId: bob.socketId ?? '',
      reason: 'disruptive',
    });
    expect(await bob.closed).toEqual({ code: CloseCodes.removed, reason: 'disruptive' });
    const left = await alice.event('eventLeave');
    expect(left.d).toMatchObject({ socketId: bob.socketId, roomSize: 1 });
    const back = await TestClient.connect(sp.gw2.url);
    open.push(back);
    const r = await back.resume(bob);
    expect(r).toMatchObject({ s: false, e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code });
    expect(
      await code(
        sp.bus.request(RoomsAdmin.removeParticipant, { roomId, socketId: bob.socketId ?? '' }),
      ),
    ).toBe(ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code);
    await waitUntil(() => kinds(roomId).includes('room.leave'));
    expect(events.find((e) => e.roomId === roomId && e.type === 'room.leave')?.data).toMatchObject({
      socketId: bob.socketId,
      reason: 'removed',
    });
  });

  it('deletes a room: every member closed with 4005, none can resume, the room is gone', async () => {
    const roomId = 'adm-delete';
    const members = [
      await join('gw1', roomId, 'a'),
      await join('gw2', roomId, 'b'),
      await join('gw1', roomId, 'c', { grants: { hidden: true } }),
    ];
    // One of them is in its reconnect window: removed all the same.
    const gone = members[1];
    if (gone === undefined) throw new Error('three members');
    gone.kill();
    await waitUntil(async () =>
      (await sp.bus.request(RoomsAdmin.listParticipants, { roomId, limit: 10 })).participants.some(
        (p) => p.state === 'disconnected',
      ),
    );
    expect(await sp.bus.request(RoomsAdmin.deleteRoom, { roomId })).toEqual({ removed: 3 });
    for (const m of [members[0], members[2]]) {
      expect((await m?.closed)?.code).toBe(CloseCodes.roomDeleted);
    }
    const back = await TestClient.connect(sp.gw1.url);
    open.push(back);
    expect(await back.resume(gone)).toMatchObject({
      s: false,
      e: ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code,
    });
    expect(await code(sp.bus.request(RoomsAdmin.getRoom, { roomId }))).toBe(
      ErrorCodes.ROOM_NOT_FOUND.code,
    );
    expect(await code(sp.bus.request(RoomsAdmin.deleteRoom, { roomId }))).toBe(
      ErrorCodes.ROOM_NOT_FOUND.code,
    );
    await waitUntil(() => kinds(roomId).includes('room.closed'));
    const leaves = events.filter((e) => e.roomId === roomId && e.type === 'room.leave');
    expect(leaves.map((l) => l.data['reason'])).toEqual(['deleted', 'deleted', 'deleted']);
    expect(kinds(roomId).at(-1)).toBe('room.closed');
  });

  it('sends data to the room, and to some members (confirmed)', async () => {
    const roomId = 'adm-data';
    const a = await join('gw1', roomId, 'a');
    const b = await join('gw2', roomId, 'b');
    const all = await sp.bus.request(RoomsAdmin.sendData, { roomId, payload: 'hello', topic: 't' });
    expect(all).toEqual({ recipients: 2 });
    for (const c of [a, b]) {
      expect((await c.event('eventData')).d).toEqual({ payload: 'hello', topic: 't' });
    }
    const some = await sp.bus.request(RoomsAdmin.sendData, {
      roomId,
      payload: 'just b',
      socketIds: [b.socketId ?? '', 'f'.repeat(32)],
    });
    expect(some).toEqual({ recipients: 1 });
    await b.waitFor(
      (f) => f.a === 'eventData' && (f.d as { payload: string }).payload === 'just b',
    );
    await sleep(300);
    expect(a.events('eventData')).toHaveLength(1);
    // Another room's member cannot be reached through this room.
    const other = await join('gw1', 'adm-data-2', 'x');
    expect(
      await sp.bus.request(RoomsAdmin.sendData, {
        roomId,
        payload: 'no',
        socketIds: [other.socketId ?? ''],
      }),
    ).toEqual({ recipients: 0 });
    expect(
      await code(sp.bus.request(RoomsAdmin.sendData, { roomId: 'adm-nowhere', payload: 'x' })),
    ).toBe(ErrorCodes.ROOM_NOT_FOUND.code);
  });

  it('a join-made room still closes with its last member', async () => {
    const roomId = 'adm-joinmade';
    const a = await join('gw1', roomId, 'a');
    expect(await sp.bus.request(RoomsAdmin.getRoom, { roomId })).toMatchObject({
      emptyTimeoutS: 0,
      capacitySet: false,
      metadata: null,
    });
    a.close();
    await a.closed;
    await waitUntil(
      async () =>
        (await code(sp.bus.request(RoomsAdmin.getRoom, { roomId }))) ===
        ErrorCodes.ROOM_NOT_FOUND.code,
    );
  });
});
