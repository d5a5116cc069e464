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
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pino } from 'pino';
import { createUser } from '@nats-io/nkeys';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  connect,
  errors as natsErrors,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { Bus, isCreds } from '@switchboard/bus';
import {
  ManagedProcess,
  NODE,
  NatsCredentials,
  NatsServer,
  ServiceProcess,
  serviceEntry,
  startPlatform,
  uniquePrefix,
  waitFor,
  type DevIdentity,
  type Platform,
} from '@switchboard/devstack';
import {
  Rooms,
  eventsLeaderBucket,
  isProtocolError,
  mediaSubjects,
  natsInboxPrefix,
  renderNatsServerConfig,
  roomEventStream,
  signalingSubjects,
  type NatsIdentity,
} from '@switchboard/protocol';

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
    for (const identity of ['gateway', 'rooms', 'media', 'events', 'admin', 'tail'] as const) {
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
  const socketId = 'a'.repeat(64);

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

  it('the operator calls operator RPCs; a gateway cannot (the server refuses it)', async () => {
    const admin = bus('admin');
    const gateway = bus('gateway');
    try {
      await admin.whenConnected(AbortSignal.timeout(5000));
      const info = await admin.request(Rooms.configureRoom, { roomId: 'perm-room', capacity: 3 });
      expect(info).toMatchObject({ roomId: 'perm-room', capacity: 3 });

      await gateway.whenConnected(AbortSignal.timeout(5000));
      // Its own RPCs are answered…
      const own = await gateway
        .request(Rooms.lookup, { socketId })
        .catch((e: unknown) => (isProtocolError(e) ? e.errorName : e));
      expect(own).toBe('SOCKET_ID_DOES_NOT_EXIST');
      // …the operator's are refused at once, not left to time out.
      const started = Date.now();
      const err = await gateway
        .request(Rooms.configureRoom, { roomId: 'perm-room', capacity: 100 })
        .catch((e: unknown) => e);
      expect(isProtocolError(err) && err.errorName).toBe('SYSTEM');
      expect((err as Error).message).toContain('not permitted');
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await admin.request(Rooms.roomInfo, { roomId: 'perm-room' })).toMatchObject({
        capacity: 3,
      });
    } finally {
      await admin.close();
      await gateway.close();
    }
  });

  it('a gateway: no operator RPC, no client call, no media heartbeat, no room event, no JetStream', async () => {
    for (const m of [
      Rooms.configureRoom,
      Rooms.roomInfo,
      Rooms.liveRooms,
      Rooms.mediaNodeLeft,
    ] as const) {
      await requestRefused(gw, `${prefix}.rooms.rpc.${m.method}`);
    }
    await requestRefused(gw, signalingSubjects.call(prefix, socketId, 'perm-room'));
    await requestRefused(gw, `$JS.API.STREAM.CREATE.${roomEventStream(prefix)}`);
    await requestRefused(gw, `$JS.API.INFO`);

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

  it('the other services and the readers: only their own subjects', async () => {
    const media = await as('media', prefix);
    await requestRefused(media, `${prefix}.rooms.rpc.configureRoom`);
    await requestRefused(media, `${prefix}.rooms.rpc.join`);
    const events = await as('events', prefix);
    await requestRefused(events, `${prefix}.rooms.rpc.configureRoom`);
    events.nc.publish(`${prefix}.room.join`, '{}');
    await refused(events, 'Publish', `${prefix}.room.join`);
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
    const identities: NatsIdentity[] = ['gateway', 'rooms', 'media', 'events', 'admin', 'tail'];
    for (const identity of identities) keys.set(identity, createUser());
    const config = renderNatsServerConfig({
      prefix,
      users: identities.map((identity) => ({
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

    const tail = await asKey('tail');
    const consumer = await jetstream(tail.nc).consumers.get(stream);
    const m = await consumer.next({ expires: 2000 });
    expect(m?.json()).toEqual({ n: 1 });
    expect(tail.errors).toEqual([]);
    await requestRefused(tail, `$JS.API.STREAM.INFO.KV_${eventsLeaderBucket(prefix)}`);
    await requestRefused(tail, '$JS.API.STREAM.INFO.OTHER');
    await requestRefused(tail, `$JS.API.STREAM.PURGE.${stream}`);

    const events = await asKey('events');
    await requestRefused(events, `$JS.API.STREAM.INFO.${stream}`);
    await requestRefused(events, `$JS.API.STREAM.CREATE.${stream}`);
    await requestRefused(events, `$JS.API.CONSUMER.CREATE.${stream}`);
    const gateway = await asKey('gateway');
    await requestRefused(gateway, `$JS.API.STREAM.INFO.${stream}`);
    gateway.nc.publish(`${prefix}.room.join`, '{}');
    await refused(gateway, 'Publish', `${prefix}.room.join`);
  });

  it('an events service with an NKey seed file: ready, and it holds its lease in its own bucket', async () => {
    const seedFile = join(dir, 'events.nk');
    await writeFile(seedFile, keys.get('events')?.getSeed() ?? '', { mode: 0o600 });
    const events = await ServiceProcess.start(
      'events',
      {
        NATS_URL: server.url,
        NATS_SUBJECT_PREFIX: prefix,
        NATS_NKEY_SEED_FILE: seedFile,
        ROOM_LIVE_INTERVAL_MS: '1000',
        LEADER_LEASE_MS: '600',
      },
      { label: 'events-nkey' },
    );
    try {
      await events.waitReady();
      await waitFor('the leader lease', async () => {
        const metrics = await (await fetch(`${events.url}/metrics`)).text();
        return /^sb_events_leader\{[^}]*\} 1$/m.test(metrics);
      });
      expect(events.process.output()).not.toMatch(/Permissions Violation/i);
      expect(events.process.output()).not.toContain(
        new TextDecoder().decode(keys.get('events')?.getSeed()),
      );
    } finally {
      await events.stop();
    }
  });
});

describe('credentials are checked at start', () => {
  async function runWith(env: Record<string, string>) {
    const proc = new ManagedProcess('gateway', NODE, [serviceEntry('gateway')], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AUTH_HS256_SECRET: 'x'.repeat(32),
        HTTP_PORT: '0',
        ...env,
      },
    });
    const exit = await proc.exited;
    return { code: exit.code, output: proc.output() };
  }
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
