/**
 * Room members' presence, by user, from the room-events stream (the events service, two
 * replicas sharing one durable consumer): online with a user's first session in any room,
 * offline — with when it was last seen — once its last session has left (a dropped socket
 * after its reconnect window); each change announced once, the state in NATS KV.
 */
import { Kvm } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import {
  hostSubjects,
  memberPresence,
  memberPresenceBucket,
  memberPresenceChange,
  userToken,
  type MemberPresenceChange,
} from '@switchboard/protocol';
import { joinVia, type TestClient } from '../signaling/client.ts';
import { sleep } from '../signaling/fixtures.ts';
import { TIMINGS } from '../signaling/platform.ts';
import { useEventsPlatform, type EventsPlatform } from './platform.ts';

let sp: EventsPlatform;
const changes: MemberPresenceChange[] = [];
const open: TestClient[] = [];

useEventsPlatform(open, async (p) => {
  sp = p;
  for (const id of ['events-a', 'events-b']) await sp.startReplica(id);
  sp.bus.subscribe(hostSubjects.members(sp.bus.prefix), memberPresenceChange, (c) => {
    changes.push(c);
  });
});

const join = joinVia(() => sp, open);

async function until(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function summary(userId: string): Promise<unknown> {
  const kv = await new Kvm(sp.nc).open(memberPresenceBucket(sp.prefix));
  const entry = await kv.get(`user.${userToken(userId)}`);
  if (entry?.operation !== 'PUT') return undefined;
  const parsed = memberPresence.parse(entry.json());
  if (!parsed.ok) throw new Error('malformed summary');
  return parsed.value;
}

const of = (userId: string): MemberPresenceChange[] => changes.filter((c) => c.userId === userId);

describe('member presence', () => {
  it('online with the first session in any room, offline after the last; announced once each', async () => {
    const user = 'presence.alice@example.com';
    const a = await join('gw1', 'mp-room-1', user);
    await until(() => of(user).length === 1, 10_000, 'online');
    expect(of(user)[0]).toMatchObject({ userId: user, status: 'online', sessions: 1 });
    const b = await join('gw2', 'mp-room-2', user);
    await until(
      async () => ((await summary(user)) as { sessions?: number } | undefined)?.sessions === 2,
      10_000,
      'two sessions',
    );
    a.close();
    await sleep(1000);
    expect(of(user)).toHaveLength(1);
    const leftAt = Date.now();
    b.close();
    await until(() => of(user).length === 2, 10_000, 'offline');
    const off = of(user)[1];
    expect(off).toMatchObject({ status: 'offline', sessions: 0 });
    expect(off?.lastSeen).toBeGreaterThanOrEqual(leftAt - 1000);
    expect(await summary(user)).toMatchObject({ status: 'offline', sessions: 0 });
  });

  it('a dropped socket stays online through its reconnect window, then goes offline', async () => {
    const user = 'presence-bob';
    const c = await join('gw1', 'mp-room-3', user);
    await until(() => of(user).length === 1, 10_000, 'online');
    c.kill();
    await sleep(TIMINGS.RECONNECT_WINDOW_MS / 2);
    expect(of(user)).toHaveLength(1);
    await until(() => of(user).length === 2, TIMINGS.RECONNECT_WINDOW_MS + 10_000, 'offline');
    expect(of(user)[1]?.status).toBe('offline');
  });
});
