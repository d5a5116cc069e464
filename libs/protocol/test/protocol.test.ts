import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  ProtocolError,
  clientActionData,
  clientFrame,
  errorName,
  replyError,
  replyOk,
  roomEvent,
  roomEventSubject,
  serverEventData,
  subjects,
  parseRpcSubject,
  Media,
  MediaNodeAdmin,
  Ping,
  validator,
  SubjectPrefix,
  type ErrorName,
} from '@switchboard/protocol';

const socketId = 'a'.repeat(32);

describe('error codes', () => {
  it('has one name per code and keeps the original numbering', () => {
    const codes = Object.values(ErrorCodes).map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(ErrorCodes.JSON.code).toBe(0x502);
    expect(ErrorCodes.JSON_FIELD_MISSING.code).toBe(0x503);
    expect(ErrorCodes.AUTH_FAILED.code).toBe(0x506);
    expect(ErrorCodes.UNKNOWN_ACTION.code).toBe(0x510);
    expect(ErrorCodes.USER_NOT_AUTHENTICATED.code).toBe(0x511);
    expect(ErrorCodes.SOCKET_ID_DOES_NOT_EXIST.code).toBe(0x512);
    expect(ErrorCodes.ROOM_IS_NOT_JOINABLE.code).toBe(0x522);
    expect(ErrorCodes.ROOM_ALREADY_JOINED.code).toBe(0x523);
    expect(ErrorCodes.ROOM_IS_FULL.code).toBe(0x524);
    expect(ErrorCodes.SDP_DECODE.code).toBe(0x528);
    expect(ErrorCodes.SYSTEM.code).toBe(0x500);
  });

  it('maps codes back to names, unknown codes to SYSTEM', () => {
    for (const name of Object.keys(ErrorCodes) as ErrorName[]) {
      expect(errorName(ErrorCodes[name].code)).toBe(name);
    }
    expect(errorName(0x999)).toBeUndefined();
    expect(ProtocolError.fromCode(0x999).errorName).toBe('SYSTEM');
    const e = new ProtocolError('ROOM_IS_FULL', 'capacity 10');
    expect(e.code).toBe(0x524);
    expect(e.message).toBe('The room is full: capacity 10');
  });

  it('carry their retry class: what a caller does, in the one table', () => {
    const byClass = (retry: string): ErrorName[] =>
      (Object.keys(ErrorCodes) as ErrorName[]).filter((n) => ErrorCodes[n].retry === retry);
    // A client gives up at once on these (the SDK's session and link; the request as it is
    // will never be accepted).
    expect(byClass('never')).toEqual(
      expect.arrayContaining([
        'AUTH_FAILED',
        'PERMISSION_DENIED',
        'ROOM_IS_NOT_JOINABLE',
        'ROOM_IS_FULL',
        'JSON',
        'JSON_FIELD_MISSING',
        'JSON_FIELD_INVALID',
        'UNKNOWN_ACTION',
      ]),
    );
    // Sent again after a backoff (a gateway's disconnect delivery retries only these).
    expect(byClass('backoff').sort()).toEqual(
      [
        'CALL_LIMIT',
        'CANCELLED',
        'RATE_LIMITED',
        'SERVICE_UNAVAILABLE',
        'SHUTTING_DOWN',
        'TIMEOUT',
      ].sort(),
    );
    // A user's other session in its reconnect window may end: a client's rejoin tries again.
    expect(ErrorCodes.TOO_MANY_SESSIONS.retry).toBe('depends');
    expect(ErrorCodes.SYSTEM.retry).toBe('depends');
    expect(new ProtocolError('TIMEOUT').retry).toBe('backoff');
    expect(ProtocolError.fromCode(0x999).retry).toBe('depends');
  });
});

describe('client wire protocol (003)', () => {
  it('accepts the documented join request', () => {
    const frame = {
      a: 'join',
      d: {
        roomId: 'room-1',
        bearer: 'eyJ.x.y',
        platform: 'Web',
        deviceName: 'iPhone 7',
        networkType: 'wifi',
        version: 'chrome v57',
        appVersion: '110',
        orientation: 90,
        camera: 'front',
      },
    };
    expect(clientFrame.check(frame)).toBe(true);
    expect(clientActionData.join.check(frame.d)).toBe(true);
  });

  it('reports missing and wrong fields separately', () => {
    const missing = clientActionData.join.parse({ bearer: 'x', platform: 'Web' });
    expect(missing.ok).toBe(false);
    if (!missing.ok)
      expect(missing.issues.some((i) => i.missing && i.path.includes('roomId'))).toBe(true);

    const wrong = clientActionData.join.parse({
      roomId: 'r',
      bearer: 'x',
      platform: 'Web',
      orientation: 45,
    });
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) expect(wrong.issues.every((i) => !i.missing)).toBe(true);
  });

  it('accepts the documented candidate and SDP relays', () => {
    expect(
      clientActionData.exchangeCandidate.check({
        to: socketId,
        candidate: {
          candidate:
            'candidate:1321500371 2 udp 1685987070 78.201.204.97 35188 typ srflx raddr 192.168.0.22 rport 35188 generation 0 ufrag fhni network-id 2 network-cost 10',
          sdpMid: 'audio',
          sdpMLineIndex: 0,
        },
      }),
    ).toBe(true);
    expect(
      clientActionData.exchangeSdp.check({ to: socketId, sdp: { type: 'offer', sdp: 'v=0\r\n' } }),
    ).toBe(true);
    expect(
      clientActionData.exchangeSdp.check({
        to: 'not-a-socket-id',
        sdp: { type: 'offer', sdp: '' },
      }),
    ).toBe(false);
    expect(clientActionData.orientationChange.check({ orientation: 270, camera: 'back' })).toBe(
      true,
    );
    expect(clientActionData.reconnect.check({ socketId })).toBe(true);
  });

  it('validates server events as documented', () => {
    const from = { socketId, userId: 'u1' };
    expect(
      serverEventData.eventLeave.check({ roomId: 'r', roomSize: 1, socketId, userId: 'u1' }),
    ).toBe(true);
    expect(
      serverEventData.eventOrientationChange.check({
        from,
        platform: 'iOS',
        orientation: 0,
        camera: 'front',
      }),
    ).toBe(true);
    expect(
      serverEventData.eventUserMediaConfiguration.check({
        audio: true,
        video: { width: { max: 640 }, height: { max: 480 }, frameRate: { min: 15 } },
      }),
    ).toBe(true);
  });

  it('builds replies with and without the id extension', () => {
    expect(replyOk('reconnect', { roomSize: 2 })).toEqual({
      a: 'reconnectR',
      s: true,
      d: { roomSize: 2 },
    });
    expect(replyOk('exchangeSdp', undefined, 7)).toEqual({ a: 'exchangeSdpR', s: true, id: 7 });
    expect(replyError('join', 0x524, 'req-1')).toEqual({
      a: 'joinR',
      s: false,
      e: 0x524,
      id: 'req-1',
    });
  });

  it('rejects envelopes that are not requests', () => {
    expect(clientFrame.check({ d: {} })).toBe(false);
    expect(clientFrame.check({ a: 42 })).toBe(false);
    expect(clientFrame.check({ a: 'join', id: { nested: true } })).toBe(false);
    expect(clientFrame.check([])).toBe(false);
  });
});

describe('bus subjects', () => {
  it('puts every subject under the deployment prefix', () => {
    expect(subjects.rpc('sb', Ping.rooms)).toBe('sb.rooms.rpc.ping');
    expect(subjects.rpc('acme.prod', Ping.gateway)).toBe('acme.prod.gateway.rpc.ping');
    expect(subjects.queue('rooms')).toBe('sb-rooms');
  });

  it('addresses a media node’s methods to one node, and reads every RPC subject back', () => {
    expect(subjects.rpc('sb', Media.produce, 'media-1')).toBe('sb.media.node.media-1.rpc.produce');
    expect(subjects.rpc('sb', MediaNodeAdmin.muteProducer, '*')).toBe(
      'sb.media.node.*.rpc.muteProducer',
    );
    expect(() => subjects.rpc('sb', Media.produce)).toThrow(/needs an address/);
    expect(() => subjects.rpc('sb', Media.produce, 'a.b')).toThrow(/needs an address/);
    expect(() => subjects.rpc('sb', Ping.rooms, 'media-1')).toThrow(/not addressed/);
    for (const [m, to] of [
      [Ping.rooms, undefined],
      [Media.produce, 'media-1'],
      [MediaNodeAdmin.enforceGrants, 'node_2'],
    ] as const) {
      for (const prefix of ['sb', 'acme.prod']) {
        expect(parseRpcSubject(prefix, subjects.rpc(prefix, m, to))).toEqual({
          service: m.service,
          method: m.method,
          to,
        });
      }
    }
    for (const other of [
      'sb.rooms.rpc',
      'sb.nope.rpc.ping',
      'sb.media.node.x.rpc',
      'sb.media.node.x.y.rpc.produce',
      'sb.sig.sock.abc.def',
      'other.rooms.rpc.ping',
      'sb.rooms.rpc.ping.extra',
    ]) {
      expect(parseRpcSubject('sb', other), other).toBeUndefined();
    }
  });

  it('accepts only NATS-safe prefixes', () => {
    const v = validator(SubjectPrefix);
    for (const ok of ['sb', 'acme.prod', 't_1a2b']) expect(v.check(ok)).toBe(true);
    for (const bad of ['', 'a..b', 'a.*', 'a.>', 'a b', '.sb', 'sb.'])
      expect(v.check(bad)).toBe(false);
  });
});

describe('room events (003)', () => {
  const envelope = { id: '1b4e28ba-2fa1-41d2-883f-0016d3cca427', ts: 1, seq: 1 };
  it('accepts the documented payloads on prefixed subjects', () => {
    expect(
      roomEvent['room.join'].check({
        ...envelope,
        roomId: 'r',
        roomSize: 2,
        socketId,
        userId: 'u1',
        platform: 'Web',
        appVersion: '110',
        version: 'chrome v57',
        ip: '192.0.2.1',
        bitrate: 500_000,
      }),
    ).toBe(true);
    expect(
      roomEvent['room.leave'].check({
        ...envelope,
        roomId: 'r',
        roomSize: 1,
        socketId,
        userId: 'u1',
      }),
    ).toBe(true);
    // The documented payload alone lacks the envelope (id, ts, seq) every durable event has.
    expect(
      roomEvent['room.leave'].check({ roomId: 'r', roomSize: 1, socketId, userId: 'u1' }),
    ).toBe(false);
    expect(
      roomEvent['room.live'].check({
        ts: 1,
        roomId: 'r',
        roomSize: 1,
        sessions: [{ socketId, userId: 'u1' }],
      }),
    ).toBe(true);
    expect(roomEvent['room.live'].check({ roomId: 'r', roomSize: 1 })).toBe(false);
    expect(roomEventSubject('sb', 'room.join')).toBe('sb.room.join');
  });
});

describe('signaling messages', () => {
  it('every server event has a frame schema, and broadcasts validate their event', async () => {
    const { EventFrameSchema, ServerEvents, MediaEvents, roomBroadcast } =
      await import('@switchboard/protocol');
    // eventBatch is the gateway's own framing of events it writes: never one a broadcast carries.
    expect(EventFrameSchema.anyOf.map((s) => s.properties.a.const).sort()).toEqual(
      [...Object.keys(ServerEvents), ...Object.keys(MediaEvents)]
        .filter((a) => a !== 'eventBatch')
        .sort(),
    );
    const leave = {
      a: 'eventLeave',
      d: { roomId: 'r', roomSize: 1, socketId, userId: 'u' },
    };
    expect(roomBroadcast.check({ roomId: 'r', event: leave })).toBe(true);
    expect(roomBroadcast.check({ roomId: 'r', event: { ...leave, d: { roomSize: 1 } } })).toBe(
      false,
    );
    expect(roomBroadcast.check({ roomId: 'r', event: { a: 'eventNope', d: {} } })).toBe(false);
  });

  it('room ids become single subject tokens, even with dots', async () => {
    const { roomToken, signalingSubjects } = await import('@switchboard/protocol');
    expect(roomToken('a.b.c')).not.toContain('.');
    expect(signalingSubjects.room('sb', 'team.42').split('.')).toHaveLength(4);
    expect(signalingSubjects.socket('sb', socketId, 'x.y').split('.')).toHaveLength(5);
    expect(roomToken('a.b')).not.toBe(roomToken('a_b'));
    // The room a socket's (or a call's) subject was sent on, read back.
    for (const room of ['x.y', 'plain', 'a b/c']) {
      for (const subject of [
        signalingSubjects.socket('acme.prod', socketId, room),
        signalingSubjects.call('sb', socketId, room),
      ]) {
        expect(signalingSubjects.senderRoom(subject)).toBe(roomToken(room));
      }
    }
  });
});

describe('module graph', () => {
  it('has no import cycle (a bundler may then evaluate a schema before what it uses)', async () => {
    const { readdir, readFile } = await import('node:fs/promises');
    const dir = new URL('../src/', import.meta.url);
    const graph = new Map<string, string[]>();
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.ts')) continue;
      const text = await readFile(new URL(file, dir), 'utf8');
      const deps: string[] = [];
      // Value imports only: `import type …` and all-`type` specifier lists are erased.
      for (const m of text.matchAll(
        /^import\s+(?!type\s)([^;]*?)\s+from\s+'\.\/([\w-]+\.ts)';/gms,
      )) {
        const names = /\{([^}]*)\}/.exec(m[1] ?? '')?.[1];
        const allTypes =
          names !== undefined &&
          !/^[\w\s,]*\{/.test(m[1] ?? '') &&
          names.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '));
        if (!allTypes) deps.push(m[2] ?? '');
      }
      graph.set(file, deps);
    }
    const cycles: string[] = [];
    const visit = (file: string, path: string[]): void => {
      for (const dep of graph.get(file) ?? []) {
        const at = path.indexOf(dep);
        if (at >= 0) cycles.push([...path.slice(at), dep].join(' → '));
        else visit(dep, [...path, dep]);
      }
    };
    for (const file of graph.keys()) visit(file, [file]);
    expect(cycles).toEqual([]);
    expect(graph.size).toBeGreaterThan(10);
  });
});
