/**
 * Room members' presence, by user, derived from the room-events stream: a user is online
 * while it holds a session in any room (one in its reconnect window included: the session
 * has not left), offline — with when it was last seen — once its last session leaves.
 *
 * One durable consumer of the stream (`member_presence`), shared by every replica of this
 * service, with one event in flight at a time (`max_ack_pending` 1): events are applied in
 * stream order whichever replica takes them, and a replica that dies mid-event leaves it to
 * be delivered again (every step is idempotent: a session's key is put on its join and
 * deleted on its leave). The state is the KV bucket `memberPresenceBucket(p)`:
 * `session.<user>.<socketId>` per session and `user.<user>` the summary (MemberPresence);
 * changes go out on `<p>.presence.user.<user>`.
 *
 * It runs off the membership's hot path: a join is never slower for it.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Bus } from '@switchboard/bus';
import {
  hostSubjects,
  memberPresence,
  memberPresenceBucket,
  roomEvent,
  roomEventStream,
  roomEventSubject,
  userToken,
  type MemberPresence,
  type MemberPresenceChange,
} from '@switchboard/protocol';
import { sleep, type Logger } from '@switchboard/service';
import { ReadFailures } from './read-failures.ts';

export const MEMBER_PRESENCE_CONSUMER = 'member_presence';
const NS_PER_MS = 1_000_000;
const PULL_EXPIRES_MS = 2000;

export class MemberPresenceUpdater {
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  /** Events applied by this replica. */
  applied = 0;

  constructor(bus: Bus, log: Logger) {
    this.#bus = bus;
    this.#log = log.child({ component: 'member-presence' });
  }

  start(): void {
    this.#loop = this.#run().catch((err: unknown) => {
      this.#log.error({ err }, 'member presence stopped');
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    const stopped = (): boolean => signal.aborted;
    let failures = 0;
    const failed = new ReadFailures(this.#log, 'member presence');
    while (!stopped()) {
      try {
        await this.#bus.whenConnected(signal);
        const nc = this.#bus.connection;
        if (nc === undefined) throw new Error('no NATS connection');
        const p = this.#bus.prefix;
        const stream = roomEventStream(p);
        const jsm = await jetstreamManager(nc, { timeout: 5000 });
        await jsm.consumers.add(stream, {
          durable_name: MEMBER_PRESENCE_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          // In order, whichever replica pulls: one event at a time.
          max_ack_pending: 1,
          ack_wait: 10_000 * NS_PER_MS,
        });
        const kv = await new Kvm(nc).create(memberPresenceBucket(p), { history: 1 });
        const consumer = await jetstream(nc).consumers.get(stream, MEMBER_PRESENCE_CONSUMER);
        failures = 0;
        failed.reading();
        while (!stopped()) {
          const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
          if (msg === null) continue;
          await this.#apply(kv, msg);
        }
      } catch (err) {
        if (stopped()) return;
        failures += 1;
        // No stream yet (the rooms service creates it), or NATS went away: try again.
        failed.failed(err);
        await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)), signal);
      }
    }
  }

  async #apply(kv: KV, msg: JsMsg): Promise<void> {
    const p = this.#bus.prefix;
    let raw: unknown;
    try {
      raw = msg.json();
    } catch {
      raw = undefined;
    }
    if (msg.subject === roomEventSubject(p, 'room.join')) {
      const parsed = roomEvent['room.join'].parse(raw);
      if (parsed.ok) {
        const e = parsed.value;
        await kv.put(
          sessionKey(e.userId, e.socketId),
          JSON.stringify({ roomId: e.roomId, since: e.ts }),
        );
        await this.#summarize(kv, e.userId, e.ts);
      }
    } else if (msg.subject === roomEventSubject(p, 'room.leave')) {
      const parsed = roomEvent['room.leave'].parse(raw);
      if (parsed.ok) {
        const e = parsed.value;
        await kv.delete(sessionKey(e.userId, e.socketId));
        await this.#summarize(kv, e.userId, e.ts);
      }
    }
    // room.created / room.closed say nothing of users; a malformed event cannot be fixed by
    // retrying (only the rooms service writes the stream): acked either way.
    msg.ack();
    this.applied += 1;
  }

  /** Recount the user's sessions; write the summary, and announce a change of status. */
  async #summarize(kv: KV, userId: string, at: number): Promise<void> {
    const tok = userToken(userId);
    let sessions = 0;
    for await (const key of await kv.keys(`session.${tok}.*`)) {
      const entry = await kv.get(key);
      if (entry?.operation === 'PUT') sessions += 1;
    }
    const prev = await readSummary(kv, tok);
    const status = sessions > 0 ? 'online' : 'offline';
    const next: MemberPresence = {
      userId,
      status,
      sessions,
      // A redelivered older event never moves lastSeen back.
      lastSeen: Math.max(at, prev?.lastSeen ?? 0),
    };
    await kv.put(`user.${tok}`, JSON.stringify(next));
    if (prev?.status === status) return;
    const change: MemberPresenceChange = { ...next, at: Date.now() };
    try {
      this.#bus.publish(hostSubjects.member(this.#bus.prefix, userId), change);
    } catch (err) {
      this.#log.warn({ err }, 'member presence change not published');
    }
  }
}

/** The user's summary as this service wrote it (undefined: none, or unreadable). */
async function readSummary(kv: KV, tok: string): Promise<MemberPresence | undefined> {
  const entry = await kv.get(`user.${tok}`);
  if (entry?.operation !== 'PUT') return undefined;
  let raw: unknown;
  try {
    raw = entry.json();
  } catch {
    return undefined;
  }
  const parsed = memberPresence.parse(raw);
  return parsed.ok ? parsed.value : undefined;
}

function sessionKey(userId: string, socketId: string): string {
  return `session.${userToken(userId)}.${socketId}`;
}
