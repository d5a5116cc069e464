/**
 * The bus's identities against a real nats-server (libs/protocol/src/permissions.ts): who may
 * connect, and what each identity may not do — refused by the server itself (a
 * `Permissions Violation` the client receives), not merely unanswered. The run's own NATS
 * (rendered for any one-token prefix, with passwords) shows the subjects; a second server,
 * rendered for one two-token prefix with NKeys as a deployment would be, shows the JetStream
 * rights scoped to each identity's own stream or bucket, and a service authenticating with an
 * NKey seed file. That every service still does its work with its identity is what the rest
 * of the suite shows.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pino } from 'pino';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  connect,
  credsAuthenticator,
  errors as natsErrors,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { Bus, isCreds } from '@switchboard/bus';
import {
  NatsCredentials,
  NatsServer,
  ServiceProcess,
  startPlatform,
  uniquePrefix,
  waitFor,
  type DevIdentity,
  type Platform,
} from '@switchboard/devstack';
import {
  Ping,
  Rooms,
  RoomsAdmin,
  callStream,
  hostConsumer,
  hostSubjects,
  presenceBucket,
  presenceKey,
  eventsLeaderBucket,
  isProtocolError,
  mediaSubjects,
  natsInboxPrefix,
  natsPermissions,
  renderNatsServerConfig,
  roomEventStream,
  signalingSubjects,
  subjects,
  webhookConsumer,
  webhookParkedStream,
  webhookParkedSubject,
  type NatsIdentity,
} from '@switchboard/protocol';
import { runToExit } from './run-to-exit.ts';

const execFileP = promisify(execFile);

/** Every identity of the bus, written out (not NATS_IDENTITIES): the test names what it checks. */
const IDENTITIES: readonly NatsIdentity[] = [
  'gateway',
  'rooms',
  'media',
  'events',
  'api',
  'admin',
  'tail',
];

const credentials = (): NatsCredentials => {
  const c = NatsCredentials.current();
  if (c === undefined) throw new Error('the test run has no NATS credentials');
  return c;
};

/** A connection as `identity` that records the errors the server sends it. */
interface Conn {
  nc: NatsConnection;
  errors: string[];
}

async function open(url: string, opts: Partial<ConnectionOptions>): Promise<Conn> {
  const nc = await connect({ servers: url, timeout: 3000, reconnect: false, ...opts });
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error') errors.push(s.error.message);
    }
  })();
  conns.push(nc);
  return { nc, errors };
}

const conns: NatsConnection[] = [];

async function as(identity: DevIdentity, prefix: string): Promise<Conn> {
  return await open(inject('natsUrl'), credentials().connectOptions(identity, prefix));
}

/** The server's refusal of `op` on `subject`, as the client receives it. */
async function refused(c: Conn, op: 'Publish' | 'Subscription', subject: string): Promise<void> {
  const expected = `Permissions Violation for ${op} to "${subject}"`;
  await waitFor(expected, async () => c.errors.some((e) => e.includes(expected)), {
    timeoutMs: 3000,
  });
}

/** A request the server refuses: rejected at once with the violation, and reported. */
async function requestRefused(c: Conn, subject: string): Promise<void> {
  const err = await c.nc.request(subject, '{}', { timeout: 3000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(natsErrors.RequestError);
  expect((err as Error).cause).toBeInstanceOf(natsErrors.PermissionViolationError);
  await refused(c, 'Publish', subject);
}

afterAll(async () => {
  await Promise.all(
    conns.map(async (nc) => {
      await nc.close();
    }),
  );
});

/**
 * An events service on `serverUrl` authenticated by `auth` (NATS_* variables): once ready and
 * holding its leader lease (which needs its KV bucket), with no permission refused.
 */
async function eventsLeader(
  serverUrl: string,
  prefix: string,
  auth: Record<string, string>,
  label: string,
): Promise<ServiceProcess> {
  const events = await ServiceProcess.start(
    'events',
    {
      NATS_URL: serverUrl,
      NATS_SUBJECT_PREFIX: prefix,
      ...auth,
      ROOM_LIVE_INTERVAL_MS: '1000',
      LEADER_LEASE_MS: '600',
    },
    { label },
  );
  try {
    await events.waitReady();
    await waitFor('the leader lease', async () => {
      const metrics = await events.metrics();
      return /^sb_events_leader\{[^}]*\} 1$/m.test(metrics);
    });
    expect(events.process.output()).not.toMatch(/Permissions Violation/i);
    return events;
  } catch (err) {
    await events.stop();
    throw err;
  }
}

describe('who may connect', () => {
  it('a connection without credentials is refused, as is a wrong password', async () => {
    const url = inject('natsUrl');
    const anonymous = await connect({ servers: url, timeout: 3000, reconnect: false }).then(
      async (nc) => {
        await nc.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(anonymous).toBeInstanceOf(natsErrors.AuthorizationError);
    for (const [user, pass] of [
      ['gateway', 'not-the-password'],
      ['nobody', credentials().password('gateway')],
    ] as const) {
      const err = await connect({ servers: url, user, pass, timeout: 3000, reconnect: false }).then(
        async (nc) => {
          await nc.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, user).toBeInstanceOf(natsErrors.AuthorizationError);
    }
  });

  it('every identity connects with its own credentials', async () => {
    for (const identity of IDENTITIES) {
      const c = await as(identity, 'x');
      await c.nc.flush();
      expect(c.errors, identity).toEqual([]);
    }
  });
});

describe('each identity only does its own work', () => {
  const prefix = uniquePrefix('perm');
  let platform: Platform;
  let gw: Conn;
  const socketId = 'a'.repeat(32);

  beforeAll(async () => {
    // The real rooms service, so a refused request is one that would have been answered.
    platform = await startPlatform({
      natsUrl: inject('natsUrl'),
      subjectPrefix: prefix,
      pgServerUrl: inject('pgServerUrl'),
      names: ['rooms'],
    });
    gw = await as('gateway', prefix);
  });

  afterAll(async () => {
    await platform.stop();
  });

  function bus(identity: NatsIdentity): Bus {
    const b = new Bus({
      servers: inject('natsUrl'),
      auth: credentials().busAuth(identity, prefix),
      prefix,
      service: 'gateway',
      instanceId: `perm-${identity}`,
      log: pino({ level: 'silent' }),
      requestTimeoutMs: 3000,
    });
    return b;
  }

  it('the server API and the operator call their RPCs; a gateway cannot (the server refuses it)', async () => {
    const api = bus('api');
    const admin = bus('admin');
    const gateway = bus('gateway');
    try {
      await api.whenConnected(AbortSignal.timeout(5000));
      const made = await api.request(RoomsAdmin.createRoom, { roomId: 'perm-room', capacity: 3 });
      expect(made.room).toMatchObject({ roomId: 'perm-room', capacity: 3 });
      await admin.whenConnected(AbortSignal.timeout(5000));

      await gateway.whenConnected(AbortSignal.timeout(5000));
      // Its own RPCs are answered…
      const own = await gateway
        .request(Rooms.lookup, { socketId, resumeHash: 'd'.repeat(64) })
        .catch((e: unknown) => (isProtocolError(e) ? e.errorName : e));
      expect(own).toBe('SOCKET_ID_DOES_NOT_EXIST');
      // …the operator's are refused at once, not left to time out.
      const started = Date.now();
      const err = await gateway
        .request(RoomsAdmin.updateRoom, { roomId: 'perm-room', capacity: 100 })
        .catch((e: unknown) => e);
      expect(isProtocolError(err) && err.errorName).toBe('SYSTEM');
      expect((err as Error).message).toContain('not permitted');
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await admin.request(Rooms.roomInfo, { roomId: 'perm-room' })).toMatchObject({
        capacity: 3,
      });
    } finally {
      await api.close();
      await admin.close();
      await gateway.close();
    }
  });

  it('a gateway: no operator RPC, no client call, no media heartbeat, no room event, no JetStream', async () => {
    for (const m of [
      RoomsAdmin.createRoom,
      Rooms.roomInfo,
      Rooms.publishLive,
      Rooms.mediaNodeLeft,
    ] as const) {
      await requestRefused(gw, `${prefix}.rooms.rpc.${m.method}`);
    }
    await requestRefused(gw, signalingSubjects.call(prefix, socketId, 'perm-room'));
    // Its JetStream rights are the call queue's and presence's (scoped to their stream and
    // bucket under a real prefix, below): never a delete or a purge of a stream.
    await requestRefused(gw, `$JS.API.STREAM.DELETE.${roomEventStream(prefix)}`);
    await requestRefused(gw, `$JS.API.STREAM.PURGE.${callStream(prefix)}`);

    // Publishes are refused too: nothing reaches a subscriber.
    const watcher = await as('test', prefix);
    const seen: string[] = [];
    for (const subject of [mediaSubjects.heartbeat(prefix), `${prefix}.room.join`]) {
      watcher.nc.subscribe(subject, {
        callback: (_e, m) => {
          seen.push(m.subject);
        },
      });
    }
    await watcher.nc.flush();
    gw.nc.publish(mediaSubjects.heartbeat(prefix), '{}');
    gw.nc.publish(`${prefix}.room.join`, '{}');
    await refused(gw, 'Publish', mediaSubjects.heartbeat(prefix));
    await refused(gw, 'Publish', `${prefix}.room.join`);
    // A media node's heartbeat does get through (the same subject, the right identity).
    const media = await as('media', prefix);
    media.nc.publish(mediaSubjects.heartbeat(prefix), '{}');
    await media.nc.flush();
    await waitFor('the media heartbeat', async () =>
      seen.includes(mediaSubjects.heartbeat(prefix)),
    );
    await sleep(200);
    expect(seen).toEqual([mediaSubjects.heartbeat(prefix)]);
    expect(media.errors).toEqual([]);
  });

  it('a gateway cannot answer for the rooms service nor read replies meant for others', async () => {
    for (const subject of [
      `${prefix}.rooms.rpc.join`,
      `${prefix}.media.heartbeat`,
      `${natsInboxPrefix(prefix, 'rooms')}.>`,
      '_INBOX.>',
    ]) {
      const sub = gw.nc.subscribe(subject);
      await gw.nc.flush();
      await refused(gw, 'Subscription', subject);
      const closed = await sub.closed;
      expect(closed, subject).toBeInstanceOf(natsErrors.PermissionViolationError);
    }
  });

  it('the server API calls the administration RPCs and clients; nothing a gateway or the rooms service does', async () => {
    const api = await as('api', prefix);
    // Allowed: every RoomsAdmin RPC, room info (callRoom) and calls to clients; nobody answers
    // a call to a socket nobody holds, but the server lets the request through.
    for (const subject of [
      ...Object.values(RoomsAdmin).map((m) => `${prefix}.rooms.rpc.${m.method}`),
      `${prefix}.rooms.rpc.roomInfo`,
      signalingSubjects.call(prefix, socketId, 'perm-room'),
    ]) {
      const err = await api.nc.request(subject, '{}', { timeout: 3000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err !== undefined) {
        expect((err as Error).cause, subject).not.toBeInstanceOf(
          natsErrors.PermissionViolationError,
        );
      }
    }
    // roomInfo is answered by the real rooms service.
    const reply = (await api.nc.request(
      `${prefix}.rooms.rpc.roomInfo`,
      JSON.stringify({ roomId: 'perm-api' }),
      { timeout: 3000 },
    )) as { json(): unknown };
    expect(reply.json()).toMatchObject({ ok: true, data: { roomId: 'perm-api', roomSize: 0 } });
    expect(api.errors).toEqual([]);

    // It cannot join as a gateway, answer for the rooms service, act as a media node or on
    // media nodes, nor read the analytics of the platform.
    for (const m of [
      Rooms.join,
      Rooms.reconnect,
      Rooms.publishLive,
      Rooms.mediaNodeLeft,
      Rooms.tracks,
    ]) {
      await requestRefused(api, `${prefix}.rooms.rpc.${m.method}`);
    }
    await requestRefused(api, `${prefix}.media.node.n1.rpc.produce`);
    await requestRefused(api, signalingSubjects.socket(prefix, socketId, 'perm-room'));
    // Not even a ping: it has no use for the other services.
    await requestRefused(api, subjects.rpc(prefix, Ping.gateway));
    // No room broadcast, no gateway control or heartbeat, no room event.
    for (const subject of [
      signalingSubjects.room(prefix, 'perm-room'),
      signalingSubjects.gatewayControl(prefix, 'gw-1'),
      signalingSubjects.heartbeat(prefix),
      `${prefix}.room.join`,
    ]) {
      api.nc.publish(subject, '{}');
      await refused(api, 'Publish', subject);
    }
    // No receiving what a gateway receives (calls to clients, relays, room broadcasts).
    for (const subject of [
      signalingSubjects.callAny(prefix, socketId),
      signalingSubjects.socketAny(prefix, socketId),
      `${prefix}.sig.room.*`,
      `${prefix}.rooms.rpc.getRoom`,
    ]) {
      api.nc.subscribe(subject);
      await refused(api, 'Subscription', subject);
    }

    // And nobody else calls the administration RPCs: not a gateway, a media node, the events
    // service or the analytics reader.
    const others = await Promise.all(
      (['gateway', 'media', 'events', 'tail'] as const).map(
        async (identity) => await as(identity, prefix),
      ),
    );
    for (const c of others) {
      for (const m of Object.values(RoomsAdmin)) {
        await requestRefused(c, `${prefix}.rooms.rpc.${m.method}`);
      }
    }
  });

  it('relay batches between gateways: only a gateway sends and receives them', async () => {
    const subject = signalingSubjects.gatewayRelay(prefix, 'gw-1');
    // A gateway may send one (nobody answers here: no responders, not a violation)…
    const err = await gw.nc.request(subject, '{}', { timeout: 3000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err instanceof natsErrors.RequestError && err.isNoResponders()).toBe(true);
    // …and receive them.
    const own = gw.nc.subscribe(subject);
    await gw.nc.flush();
    own.unsubscribe();
    expect(gw.errors.filter((e) => e.includes(subject))).toEqual([]);
    // Nobody else: not the rooms service (which sends control messages on sig.gw), a media
    // node, the server API, the events service, the operator or the readers.
    for (const identity of ['rooms', 'media', 'events', 'api', 'admin', 'tail'] as const) {
      const c = await as(identity, prefix);
      await requestRefused(c, subject);
      c.nc.subscribe(`${prefix}.sig.gw.*.relay`);
      await refused(c, 'Subscription', `${prefix}.sig.gw.*.relay`);
    }
  });

  it('the other services and the readers: only their own subjects', async () => {
    const media = await as('media', prefix);
    await requestRefused(media, `${prefix}.rooms.rpc.createRoom`);
    await requestRefused(media, `${prefix}.rooms.rpc.join`);
    const events = await as('events', prefix);
    await requestRefused(events, `${prefix}.rooms.rpc.createRoom`);
    events.nc.publish(`${prefix}.room.join`, '{}');
    await refused(events, 'Publish', `${prefix}.room.join`);
    // room.live comes from the rooms service (the events leader only asks for a tick).
    events.nc.publish(`${prefix}.room.live`, '{}');
    await refused(events, 'Publish', `${prefix}.room.live`);
    const tail = await as('tail', prefix);
    tail.nc.publish(`${prefix}.room.live`, '{}');
    await refused(tail, 'Publish', `${prefix}.room.live`);
    await requestRefused(tail, `$JS.API.STREAM.DELETE.${roomEventStream(prefix)}`);
    await requestRefused(tail, `${prefix}.rooms.rpc.roomInfo`);
    const admin = await as('admin', prefix);
    await requestRefused(admin, `${prefix}.rooms.rpc.join`);
    admin.nc.publish(mediaSubjects.heartbeat(prefix), '{}');
    await refused(admin, 'Publish', mediaSubjects.heartbeat(prefix));
    const rooms = await as('rooms', prefix);
    await requestRefused(rooms, `${prefix}.media.node.n1.rpc.produce`);
  });
});

describe('a deployment: one prefix, NKeys, JetStream scoped to each identity', () => {
  const prefix = 'acme.prod';
  let dir: string;
  let server: NatsServer;
  const keys = new Map<NatsIdentity, ReturnType<typeof createUser>>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-nats-deploy-'));
    for (const identity of IDENTITIES) keys.set(identity, createUser());
    const config = renderNatsServerConfig({
      prefix,
      users: IDENTITIES.map((identity) => ({
        identity,
        nkey: keys.get(identity)?.getPublicKey() ?? '',
      })),
    });
    expect(config).not.toContain('password');
    server = await NatsServer.start(dir, { config });
  });

  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function asKey(identity: NatsIdentity): Promise<Conn> {
    const kp = keys.get(identity);
    if (kp === undefined) throw new Error(identity);
    return await open(server.url, {
      authenticator: nkeyAuthenticator(kp.getSeed()),
      inboxPrefix: natsInboxPrefix(prefix, identity),
    });
  }

  it('rooms writes its stream, tail reads it, and neither touches what is not theirs', async () => {
    const stream = roomEventStream(prefix);
    const rooms = await asKey('rooms');
    const jsm = await jetstreamManager(rooms.nc);
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.room.join`] });
    await jetstream(rooms.nc).publish(`${prefix}.room.join`, '{"n":1}', { msgID: 'one' });
    await requestRefused(rooms, '$JS.API.STREAM.CREATE.OTHER');
    await requestRefused(rooms, `$JS.API.STREAM.DELETE.${stream}`);

    // tail reads through an ephemeral consumer the server names, acks off (tail.ts).
    const tail = await asKey('tail');
    const ephemeral = await (
      await jetstreamManager(tail.nc)
    ).consumers.add(stream, { ack_policy: AckPolicy.None });
    const consumer = await jetstream(tail.nc).consumers.get(stream, ephemeral.name);
    const m = await consumer.next({ expires: 2000 });
    expect(m?.json()).toEqual({ n: 1 });
    expect(tail.errors).toEqual([]);
    await requestRefused(tail, `$JS.API.STREAM.INFO.KV_${eventsLeaderBucket(prefix)}`);
    await requestRefused(tail, '$JS.API.STREAM.INFO.OTHER');
    await requestRefused(tail, `$JS.API.STREAM.PURGE.${stream}`);
    // …and never touches the services' durable consumers: it cannot take a webhook
    // endpoint's name (or member presence's), delete one, nor ack for one.
    const webhook = webhookConsumer('0123456789abcdef');
    await requestRefused(tail, `$JS.API.CONSUMER.CREATE.${stream}.${webhook}`);
    await requestRefused(tail, `$JS.API.CONSUMER.CREATE.${stream}.${webhook}.${prefix}.room.join`);
    await requestRefused(tail, `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${webhook}`);
    await requestRefused(tail, `$JS.API.CONSUMER.DELETE.${stream}.member_presence`);
    tail.nc.publish(`$JS.ACK.${stream}.${webhook}.1.1.1.1.0`, '');
    await refused(tail, 'Publish', `$JS.ACK.${stream}.${webhook}.1.1.1.1.0`);

    // The events service reads the stream through its one durable consumer (member
    // presence) and nothing else: no other consumer, no stream change.
    const events = await asKey('events');
    const presence = await jetstreamManager(events.nc);
    await presence.consumers.add(stream, {
      durable_name: 'member_presence',
      ack_policy: AckPolicy.Explicit,
    });
    const read = await jetstream(events.nc).consumers.get(stream, 'member_presence');
    const first = await read.next({ expires: 2000 });
    expect(first?.json()).toEqual({ n: 1 });
    first?.ack();
    // A webhook endpoint's consumer (deliver `new`): created, pulled, acked, listed and
    // deleted (its endpoint no longer configured); failed events parked in their stream.
    await presence.consumers.add(stream, {
      durable_name: webhook,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    await jetstream(rooms.nc).publish(`${prefix}.room.join`, '{"n":2}', { msgID: 'two' });
    const hooked = await (
      await jetstream(events.nc).consumers.get(stream, webhook)
    ).next({ expires: 2000 });
    expect(hooked?.json()).toEqual({ n: 2 });
    expect(await hooked?.ackAck()).toBe(true);
    const names: string[] = [];
    for await (const ci of presence.consumers.list(stream)) names.push(ci.name);
    expect(names).toEqual(expect.arrayContaining(['member_presence', webhook]));
    expect(await presence.consumers.delete(stream, webhook)).toBe(true);
    const parked = webhookParkedStream(prefix);
    await presence.streams.add({ name: parked, subjects: [`${prefix}.webhooks.parked.>`] });
    await jetstream(events.nc).publish(webhookParkedSubject(prefix, '0123456789abcdef'), '{}');
    expect((await presence.streams.getMessage(parked, { seq: 1 }))?.string()).toBe('{}');
    expect(await presence.streams.deleteMessage(parked, 1, false)).toBe(true);
    expect(events.errors).toEqual([]);
    await requestRefused(events, `$JS.API.STREAM.CREATE.${stream}`);
    await requestRefused(events, `$JS.API.STREAM.DELETE.${stream}`);
    await requestRefused(events, `$JS.API.STREAM.PURGE.${stream}`);
    await requestRefused(events, `$JS.API.CONSUMER.CREATE.${stream}`);
    await requestRefused(events, `$JS.API.STREAM.DELETE.${parked}`);
    await requestRefused(events, `$JS.API.STREAM.PURGE.${parked}`);
    await requestRefused(events, '$JS.API.STREAM.CREATE.OTHER');
    const gateway = await asKey('gateway');
    await requestRefused(gateway, `$JS.API.STREAM.INFO.${stream}`);
    await requestRefused(gateway, `$JS.API.CONSUMER.CREATE.${stream}.${webhook}`);
    await requestRefused(gateway, `$JS.API.STREAM.INFO.${parked}`);
    gateway.nc.publish(`${prefix}.room.join`, '{}');
    await refused(gateway, 'Publish', `${prefix}.room.join`);
  });

  it('a gateway runs the call queue and presence in its own stream and bucket only', async () => {
    const gateway = await asKey('gateway');
    const calls = callStream(prefix);
    const jsm = await jetstreamManager(gateway.nc);
    await jsm.streams.add({
      name: calls,
      subjects: [hostSubjects.offers(prefix)],
      retention: RetentionPolicy.Workqueue,
    });
    const js = jetstream(gateway.nc);
    const ack = await js.publish(hostSubjects.offer(prefix, 'cam-1'), '{"o":1}', { msgID: 'c1' });
    await jsm.consumers.add(calls, {
      durable_name: hostConsumer('cam-1'),
      filter_subject: hostSubjects.offer(prefix, 'cam-1'),
      ack_policy: AckPolicy.Explicit,
    });
    const consumer = await js.consumers.get(calls, hostConsumer('cam-1'));
    const m = await consumer.next({ expires: 2000 });
    expect(m?.json()).toEqual({ o: 1 });
    m?.ack();
    await js.publish(hostSubjects.offer(prefix, 'cam-1'), '{"o":2}', { msgID: 'c2' });
    expect(await jsm.streams.deleteMessage(calls, ack.seq + 1, false)).toBe(true);

    const kv = await new Kvm(gateway.nc).create(presenceBucket(prefix), { history: 1 });
    await kv.put(presenceKey('cam-1', 'instance-1'), '{}');
    const keys: string[] = [];
    for await (const k of await kv.keys('host.>')) keys.push(k);
    expect(keys).toEqual([presenceKey('cam-1', 'instance-1')]);
    expect((await kv.get(presenceKey('cam-1', 'instance-1')))?.string()).toBe('{}');
    expect(gateway.errors).toEqual([]);

    await requestRefused(gateway, `$JS.API.STREAM.CREATE.${roomEventStream(prefix)}`);
    await requestRefused(gateway, `$JS.API.STREAM.DELETE.${calls}`);
    await requestRefused(gateway, `$JS.API.STREAM.INFO.KV_${eventsLeaderBucket(prefix)}`);
    // The analytics reader hears presence changes; the other services do not write them.
    const media = await asKey('media');
    media.nc.publish(hostSubjects.presence(prefix, 'cam-1'), '{}');
    await refused(media, 'Publish', hostSubjects.presence(prefix, 'cam-1'));
  });

  it('an events service with an NKey seed file: ready, and it holds its lease in its own bucket', async () => {
    const seedFile = join(dir, 'events.nk');
    await writeFile(seedFile, keys.get('events')?.getSeed() ?? '', { mode: 0o600 });
    const events = await eventsLeader(
      server.url,
      prefix,
      { NATS_NKEY_SEED_FILE: seedFile },
      'events-nkey',
    );
    try {
      expect(events.process.output()).not.toContain(
        new TextDecoder().decode(keys.get('events')?.getSeed()),
      );
    } finally {
      await events.stop();
    }
  });
});

/** A NATS JWT (v2) of `claims`, signed by `issuer` (what nsc writes). */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: object): string {
  const b64 = (v: string | Uint8Array): string => Buffer.from(v).toString('base64url');
  const claims = {
    jti: createHash('sha256').update(randomBytes(16)).digest('base64url').slice(0, 52),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  const signed = `${b64(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64(JSON.stringify(claims))}`;
  return `${signed}.${b64(issuer.sign(new TextEncoder().encode(signed)))}`;
}

describe('operator (JWT) mode: a service on a .creds file', () => {
  const prefix = 'jwt';
  let dir: string;
  let server: NatsServer;
  const operator = createOperator();
  const account = createAccount();
  const system = createAccount();
  const user = createUser();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-nats-jwt-'));
    const operatorJwt = natsJwt(operator, operator.getPublicKey(), 'op', { type: 'operator' });
    const accountJwt = natsJwt(operator, account.getPublicKey(), 'SWITCHBOARD', {
      type: 'account',
      limits: {
        subs: -1,
        data: -1,
        payload: -1,
        imports: -1,
        exports: -1,
        wildcards: true,
        conn: -1,
        leaf: -1,
        mem_storage: -1,
        disk_storage: -1,
        streams: -1,
        consumer: -1,
      },
    });
    // JetStream needs a system account in operator mode.
    const systemJwt = natsJwt(operator, system.getPublicKey(), 'SYS', { type: 'account' });
    server = await NatsServer.start(dir, {
      config: [
        `operator: ${operatorJwt}`,
        `system_account: ${system.getPublicKey()}`,
        'resolver: MEMORY',
        'resolver_preload: {',
        `  ${account.getPublicKey()}: ${accountJwt}`,
        `  ${system.getPublicKey()}: ${systemJwt}`,
        '}',
        '',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the events identity with the permissions of the table: ready, holding its lease', async () => {
    // The user nsc would make from `./run nats-config --auth nsc`: the table's permissions.
    const p = natsPermissions(prefix).events;
    const userJwt = natsJwt(account, user.getPublicKey(), 'events', {
      type: 'user',
      pub: { allow: p.publish },
      sub: { allow: p.subscribe },
      ...(p.allowResponses ? { resp: { max: 1, ttl: 0 } } : {}),
      subs: -1,
      data: -1,
      payload: -1,
    });
    const creds = join(dir, 'events.creds');
    await writeFile(
      creds,
      [
        '-----BEGIN NATS USER JWT-----',
        userJwt,
        '------END NATS USER JWT------',
        '',
        '-----BEGIN USER NKEY SEED-----',
        new TextDecoder().decode(user.getSeed()),
        '------END USER NKEY SEED------',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const events = await eventsLeader(
      server.url,
      prefix,
      { NATS_CREDS_FILE: creds },
      'events-creds',
    );
    await events.stop();
    // The same user may do nothing the table does not give it.
    const c = await open(server.url, {
      authenticator: credsAuthenticator(await readFile(creds)),
      inboxPrefix: natsInboxPrefix(prefix, 'events'),
    });
    await requestRefused(c, `${prefix}.rooms.rpc.createRoom`);
    c.nc.publish(`${prefix}.room.join`, '{}');
    await refused(c, 'Publish', `${prefix}.room.join`);
  });
});

describe('TLS: a server that verifies clients', () => {
  let dir: string;
  let server: NatsServer;
  const files = (name: string): { crt: string; key: string } => ({
    crt: join(dir, `${name}.crt`),
    key: join(dir, `${name}.key`),
  });
  const openssl = async (...args: string[]): Promise<void> => {
    await execFileP('openssl', args, { cwd: dir });
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-nats-tls-'));
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    const ca = files('ca');
    await openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      ca.key,
      '-out',
      ca.crt,
      '-days',
      '1',
      '-subj',
      '/CN=sb-test-ca',
    );
    for (const [name, ext] of [
      ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ['client', 'extendedKeyUsage=clientAuth'],
    ] as const) {
      const f = files(name);
      await openssl(
        'req',
        ...ec,
        '-keyout',
        f.key,
        '-out',
        join(dir, `${name}.csr`),
        '-subj',
        `/CN=${name}`,
      );
      await writeFile(join(dir, `${name}.ext`), `${ext}\n`);
      await openssl(
        'x509',
        '-req',
        '-in',
        join(dir, `${name}.csr`),
        '-CA',
        ca.crt,
        '-CAkey',
        ca.key,
        '-CAcreateserial',
        '-out',
        f.crt,
        '-days',
        '1',
        '-extfile',
        join(dir, `${name}.ext`),
      );
    }
    const srv = files('server');
    server = await NatsServer.start(dir, {
      config: [
        'tls {',
        `  cert_file: ${JSON.stringify(srv.crt)}`,
        `  key_file: ${JSON.stringify(srv.key)}`,
        `  ca_file: ${JSON.stringify(files('ca').crt)}`,
        '  verify: true',
        '}',
        credentials().serverConfig(),
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a service with the CA and a client certificate is ready; without the certificate, refused', async () => {
    const client = files('client');
    const env = {
      NATS_URL: `tls://127.0.0.1:${String(server.port)}`,
      NATS_SUBJECT_PREFIX: uniquePrefix('tls'),
      NATS_TLS_CA_FILE: files('ca').crt,
      LEADER_LEASE_MS: '600',
    };
    const events = await ServiceProcess.start(
      'events',
      { ...env, NATS_TLS_CERT_FILE: client.crt, NATS_TLS_KEY_FILE: client.key },
      { label: 'events-tls' },
    );
    try {
      await events.waitReady().catch((e: unknown) => {
        throw new Error(events.process.output(), { cause: e });
      });
    } finally {
      await events.stop();
    }
    const noCert = await ServiceProcess.start('events', env, { label: 'events-tls-no-cert' });
    try {
      await sleep(1500);
      expect((await noCert.readyz()).status).toBe(503);
    } finally {
      await noCert.stop();
    }
  });
});

describe('credentials are checked at start', () => {
  const runWith = async (env: Record<string, string>) =>
    await runToExit('gateway', { AUTH_HS256_SECRET: 'x'.repeat(32), HTTP_PORT: '0', ...env });
  const SECRET = 'hunter2-do-not-print-me';

  it('a bad NATS_CREDS_FILE path: exit 78 naming the variable', async () => {
    const { code, output } = await runWith({ NATS_CREDS_FILE: '/nonexistent/gateway.creds' });
    expect(code).toBe(78);
    expect(output).toMatch(/NATS_CREDS_FILE: cannot read \/nonexistent\/gateway\.creds \(ENOENT\)/);
  });

  it('bad or conflicting credentials: exit 78 naming each variable, never echoing a secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-nats-creds-'));
    try {
      const notCreds = join(dir, 'not.creds');
      await writeFile(notCreds, SECRET);
      const seed = join(dir, 'seed.nk');
      await writeFile(seed, new TextDecoder().decode(createUser().getSeed()));
      const cases: [Record<string, string>, RegExp][] = [
        [{ NATS_PASSWORD: SECRET }, /NATS_USER: is required with NATS_PASSWORD/],
        [{ NATS_USER: 'gateway' }, /NATS_PASSWORD: NATS_USER needs/],
        [{ NATS_NKEY_SEED: SECRET }, /NATS_NKEY_SEED: is not an NKey user seed/],
        [{ NATS_CREDS_FILE: notCreds }, /NATS_CREDS_FILE: .* is not a NATS \.creds file/],
        [
          { NATS_USER: 'gateway', NATS_PASSWORD: SECRET, NATS_NKEY_SEED_FILE: seed },
          /NATS_NKEY_SEED_FILE: one way of authenticating to NATS/,
        ],
        [
          { NATS_PASSWORD: SECRET, NATS_PASSWORD_FILE: seed, NATS_USER: 'gateway' },
          /NATS_PASSWORD_FILE: give NATS_PASSWORD or NATS_PASSWORD_FILE, not both/,
        ],
        [{ NATS_TLS_CERT_FILE: seed }, /NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together/],
        [{ NATS_TLS_CA_FILE: seed }, /NATS_TLS_CA_FILE: .* holds no PEM certificate/],
      ];
      for (const [env, message] of cases) {
        const { code, output } = await runWith(env);
        expect(code, JSON.stringify(Object.keys(env))).toBe(78);
        expect(output).toMatch(message);
        expect(output).not.toContain(SECRET);
      }
      expect(isCreds(SECRET)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a password given inline reaches no child process (the media node’s workers)', async () => {
    const password = credentials().password('media');
    const media = await ServiceProcess.start(
      'media',
      {
        NATS_URL: inject('natsUrl'),
        NATS_SUBJECT_PREFIX: uniquePrefix('permenv'),
        NATS_USER: 'media',
        NATS_PASSWORD: password,
        MEDIASOUP_WORKERS: '1',
        MEDIASOUP_RTC_PORT: '0',
      },
      { label: 'media-inline-password' },
    );
    try {
      await media.waitReady();
      const pid = media.process.pid ?? 0;
      const children = (await readFile(`/proc/${String(pid)}/task/${String(pid)}/children`, 'utf8'))
        .trim()
        .split(/\s+/)
        .filter((c) => c !== '');
      expect(children.length).toBeGreaterThan(0);
      for (const child of children) {
        const environ = await readFile(`/proc/${child}/environ`, 'utf8');
        expect(environ).toContain('MEDIASOUP_VERSION=');
        expect(environ).not.toContain('NATS_PASSWORD');
        expect(environ).not.toContain(password);
      }
      expect(media.process.output()).not.toContain(password);
    } finally {
      await media.stop();
    }
  });

  it('a refused password: the service waits, not ready, and never logs the password', async () => {
    const gw = await ServiceProcess.start(
      'gateway',
      {
        NATS_URL: inject('natsUrl'),
        NATS_SUBJECT_PREFIX: uniquePrefix('permpw'),
        NATS_USER: 'gateway',
        NATS_PASSWORD: SECRET,
        AUTH_HS256_SECRET: 'y'.repeat(32),
      },
      { label: 'gateway-refused' },
    );
    try {
      await waitFor('the refusal in the log', async () =>
        /Authorization Violation/i.test(gw.process.output()),
      );
      expect((await gw.readyz()).status).toBe(503);
      expect(gw.process.output()).not.toContain(SECRET);
    } finally {
      await gw.stop();
    }
  });
});
