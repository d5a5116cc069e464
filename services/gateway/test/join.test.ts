/**
 * A connection becoming a session's (signaling/join.ts) on its own: attach before the rooms
 * service is asked, commit once it agreed, roll back when it refused, and undo when the
 * outcome is unknown (TIMEOUT, CANCELLED) — against hand-written fakes of what a join talks
 * to: the bus (FakeBus: each rooms method answers what the test scripted), the router's
 * attachments (FakeRouter: attach, commit and rollback recorded in order), the token verifier,
 * the TURN credentials and the disconnector. test/signaling/ runs the real thing across
 * processes; this checks the order of the steps and what crosses the bus.
 */
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  ProtocolError,
  Rooms,
  sessionGrants,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
} from '@switchboard/protocol';
import type { Grant } from '../src/auth.ts';
import { Joins, type JoinsOptions } from '../src/signaling/join.ts';
import type { Attachable } from '../src/signaling/router.ts';

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

type Step = string;

/** A fake bus: the rooms methods answer (or fail with) what the test scripted. */
class FakeBus {
  readonly asked: { method: string; request: unknown }[] = [];
  readonly #answers = new Map<string, () => unknown>();
  readonly #steps: Step[];

  constructor(steps: Step[]) {
    this.#steps = steps;
  }

  answer<M extends RpcMethod>(method: M, reply: RpcReply<M> | ProtocolError): void {
    this.#answers.set(method.method, () => {
      if (reply instanceof ProtocolError) throw reply;
      return reply;
    });
  }

  request<M extends RpcMethod>(method: M, request: RpcRequest<M>): Promise<RpcReply<M>> {
    this.#steps.push(`request ${method.method}`);
    this.asked.push({ method: method.method, request });
    const answer = this.#answers.get(method.method);
    if (answer === undefined) return Promise.reject(new Error(`${method.method} not scripted`));
    try {
      return Promise.resolve(answer() as RpcReply<M>);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/** A fake of the router's attachments: what a commit replaces is the test's to say. */
class FakeRouter {
  replaced: Attachable | undefined;
  readonly roomStates: string[] = [];
  readonly #steps: Step[];

  constructor(steps: Step[]) {
    this.#steps = steps;
  }

  attach(socketId: string, roomId: string) {
    this.#steps.push(`attach ${roomId}`);
    return {
      commit: (roomSeq?: number) => {
        this.#steps.push(`commit ${String(roomSeq)}`);
        return this.replaced;
      },
      rollback: () => {
        this.#steps.push(`rollback ${socketId === '' ? '?' : 'socket'}`);
      },
    };
  }

  sendRoomState(socketId: string): Promise<void> {
    this.roomStates.push(socketId);
    return Promise.resolve();
  }
}

const grantOf = (userId: string, rooms: string[]): Grant =>
  ({ userId, rooms, exp: Math.floor(Date.now() / 1000) + 3600 }) as unknown as Grant;

function joins(opts: { grant?: Grant; holder?: 'same' | 'other'; expired?: boolean } = {}) {
  const steps: Step[] = [];
  const bus = new FakeBus(steps);
  const router = new FakeRouter(steps);
  const submitted: unknown[] = [];
  const attached: { session: unknown; leaveIfClosed: boolean }[] = [];
  const conn = {
    connectionId: 'c'.repeat(32),
    detached: [] as string[],
    detach(reason: string) {
      this.detached.push(reason);
    },
  };
  const grant = opts.grant ?? grantOf('alice', ['room-1']);
  const o: JoinsOptions = {
    bus,
    router,
    verifier: {
      verify: () => Promise.resolve(grant),
      mayJoin: (g, roomId) => g.rooms.includes(roomId),
    },
    iceServers: { for: () => undefined },
    disconnector: {
      submit: (d) => {
        steps.push('undo');
        submitted.push(d);
      },
    },
    gatewayId: 'gw-1',
    gatewayStartedAt: 1,
    auth: { clockToleranceMs: 0, legacyResume: false },
    log: pino({ level: 'silent' }),
    conn: conn as unknown as Attachable,
    ip: '127.0.0.1',
    signal: new AbortController().signal,
    credentials: {
      sameHolder: () => {
        if (opts.holder === 'other') throw new ProtocolError('AUTH_FAILED', 'another holder');
      },
      expired: () => opts.expired === true,
    },
    begin: () => steps.push('begin'),
    attached: (session, leaveIfClosed) => {
      steps.push('attached');
      attached.push({ session, leaveIfClosed });
    },
  };
  return { j: new Joins(o), steps, bus, router, submitted, attached, conn };
}

const JOIN = {
  roomId: 'room-1',
  bearer: 'token',
  platform: 'Web',
} as unknown as Parameters<Joins['join']>[0];

const joinReply = {
  socketId: 'x',
  roomSize: 1,
  sessions: [],
  roomSeq: 7,
} as unknown as RpcReply<typeof Rooms.join>;

const session = {
  socketId: 'a'.repeat(32),
  roomId: 'room-1',
  userId: 'alice',
  platform: 'Web',
  tokenExpiresAt: Date.now() + 60_000,
  grants: sessionGrants(undefined),
} as unknown as RpcReply<typeof Rooms.lookup>;

const reconnectReply = {
  roomSize: 2,
  roomSeq: 9,
  session,
} as unknown as RpcReply<typeof Rooms.reconnect>;

const RESUME = { socketId: 'a'.repeat(32), resumeToken: 'r'.repeat(43) } as Parameters<
  Joins['reconnect']
>[0];

describe('join', () => {
  it('attaches before asking, commits with the room sequence, and keeps the resume token off the bus', async () => {
    const { j, steps, bus, attached } = joins();
    bus.answer(Rooms.join, joinReply);
    const reply = (await j.join(JOIN)) as { resumeToken: string; roomSeq?: number };
    expect(steps).toEqual(['begin', 'attach room-1', 'request join', 'commit 7', 'attached']);
    expect(reply.roomSeq).toBeUndefined();
    expect(reply.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const sent = bus.asked[0]?.request as { resumeHash: string; userId: string };
    expect(sent.resumeHash).toBe(sha256(reply.resumeToken));
    expect(JSON.stringify(bus.asked)).not.toContain(reply.resumeToken);
    expect(sent.userId).toBe('alice');
    // A join that closed meanwhile leaves: the client never saw its socketId.
    expect(attached[0]?.leaveIfClosed).toBe(true);
  });

  it('a room the token does not grant: refused before anything is attached or asked', async () => {
    const { j, steps } = joins();
    await expect(j.join({ ...JOIN, roomId: 'room-2' })).rejects.toMatchObject({
      errorName: 'ROOM_IS_NOT_JOINABLE',
    });
    expect(steps).toEqual(['begin']);
  });

  it('a refusal rolls the attachment back, and nothing is undone', async () => {
    const { j, steps, bus, submitted } = joins();
    bus.answer(Rooms.join, new ProtocolError('ROOM_IS_FULL'));
    await expect(j.join(JOIN)).rejects.toMatchObject({ errorName: 'ROOM_IS_FULL' });
    expect(steps).toEqual(['begin', 'attach room-1', 'request join', 'rollback socket']);
    expect(submitted).toEqual([]);
  });

  for (const unknown of ['TIMEOUT', 'CANCELLED'] as const) {
    it(`${unknown}: rolled back, and the session the rooms service may have made leaves`, async () => {
      const { j, steps, bus, submitted, conn } = joins();
      bus.answer(Rooms.join, new ProtocolError(unknown));
      await expect(j.join(JOIN)).rejects.toMatchObject({ errorName: unknown });
      expect(steps).toEqual(['begin', 'attach room-1', 'request join', 'rollback socket', 'undo']);
      const sent = bus.asked[0]?.request as { socketId: string };
      expect(submitted).toEqual([
        { socketId: sent.socketId, connectionId: conn.connectionId, leave: true },
      ]);
    });
  }
});

describe('reconnect', () => {
  it('looks up, attaches, resumes with the next token’s hash, replaces the old socket, sends the room', async () => {
    const { j, steps, bus, router, attached } = joins();
    const old = { detached: [] as string[], detach: (r: string) => old.detached.push(r) };
    router.replaced = old as unknown as Attachable;
    bus.answer(Rooms.lookup, session);
    bus.answer(Rooms.reconnect, reconnectReply);
    const reply = (await j.reconnect(RESUME)) as { roomSize: number; resumeToken: string };
    expect(steps).toEqual([
      'begin',
      'request lookup',
      'attach room-1',
      'request reconnect',
      'commit 9',
      'attached',
    ]);
    expect(reply.roomSize).toBe(2);
    expect(reply.resumeToken).not.toBe(RESUME.resumeToken);
    const [lookup, reconnect] = bus.asked.map((a) => a.request) as {
      resumeHash: string;
      nextResumeHash?: string;
    }[];
    expect(lookup?.resumeHash).toBe(sha256(RESUME.resumeToken ?? ''));
    expect(reconnect?.nextResumeHash).toBe(sha256(reply.resumeToken));
    expect(JSON.stringify(bus.asked)).not.toContain(RESUME.resumeToken);
    expect(old.detached).toEqual(['replaced']);
    expect(attached[0]?.leaveIfClosed).toBe(false);
    expect(router.roomStates).toEqual([RESUME.socketId]);
  });

  it('refuses what it can before asking anything: no resume token, the same token twice', async () => {
    const { j, steps } = joins();
    await expect(j.reconnect({ socketId: RESUME.socketId })).rejects.toMatchObject({
      errorName: 'AUTH_FAILED',
    });
    await expect(
      j.reconnect({ ...RESUME, nextResumeToken: RESUME.resumeToken }),
    ).rejects.toMatchObject({ errorName: 'JSON_FIELD_INVALID' });
    expect(steps).toEqual(['begin', 'begin']);
  });

  it('a fresher token of another holder, or an expired session: refused before attaching', async () => {
    for (const opts of [{ holder: 'other' as const }, { expired: true }]) {
      const { j, steps, bus } = joins(opts);
      bus.answer(Rooms.lookup, session);
      const bearer = 'holder' in opts ? { bearer: 'fresh' } : {};
      await expect(j.reconnect({ ...RESUME, ...bearer })).rejects.toMatchObject({
        errorName: 'AUTH_FAILED',
      });
      expect(steps).toEqual(['begin', 'request lookup']);
    }
  });

  it('CANCELLED while resuming: rolled back, and the attachment the rooms service may have made undone', async () => {
    const { j, steps, bus, submitted, conn } = joins();
    bus.answer(Rooms.lookup, session);
    bus.answer(Rooms.reconnect, new ProtocolError('CANCELLED'));
    await expect(j.reconnect(RESUME)).rejects.toMatchObject({ errorName: 'CANCELLED' });
    expect(steps.slice(-3)).toEqual(['request reconnect', 'rollback socket', 'undo']);
    expect(submitted).toEqual([
      { socketId: RESUME.socketId, connectionId: conn.connectionId, leave: false },
    ]);
  });
});
