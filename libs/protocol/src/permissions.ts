/**
 * Who may do what on the bus: one NATS identity per service, plus an operator (`admin`) and
 * an analytics reader (`tail`), each allowed only the subjects it uses. This table is the
 * single source of truth: the NATS server configuration the project ships (`./run
 * nats-config`, deploy/k8s/README.md) and the one the devstack runs for `./run start` and the
 * tests are rendered from it, and the permission tests check it against a real nats-server.
 *
 * Replies: a service answers requests through `allow_responses` (it may publish to the reply
 * subject of a request it received, once); it receives its own replies on an inbox prefix of
 * its identity's own (`_INBOX.<prefix>.<identity>`, see `natsInboxPrefix`), so no identity
 * can read the replies meant for another.
 */
import { Rooms } from './rooms.ts';
import { RoomsAdmin } from './api.ts';
import { MEDIA_ACTIONS, Media, MediaNodeAdmin } from './media.ts';
import { DURABLE_ROOM_EVENTS, eventsLeaderBucket, roomEventStream } from './events.ts';
import { SERVICE_NAMES, subjects, type ServiceName } from './bus.ts';
import { callStream, hostSubjects, memberPresenceBucket, presenceBucket } from './hosts.ts';
import { webhookParkedStream } from './webhooks.ts';

/** The identities on the bus: the five services, the operator, the analytics reader. */
export type NatsIdentity = ServiceName | 'admin' | 'tail';
export const NATS_IDENTITIES: readonly NatsIdentity[] = [...SERVICE_NAMES, 'admin', 'tail'];

export interface NatsPermissions {
  /** Subjects the identity may publish to (requests included). */
  readonly publish: readonly string[];
  /** Subjects the identity may subscribe to (its inbox included). */
  readonly subscribe: readonly string[];
  /** Whether it may answer requests it received (publish once to their reply subject). */
  readonly allowResponses: boolean;
}

/** What each identity is for (docs/bus.md's table and the rendered configuration's comments). */
export const NATS_IDENTITY_ROLES: Readonly<Record<NatsIdentity, string>> = {
  gateway:
    'client sockets: the rooms RPCs a session needs, media actions on media nodes, relays and room broadcasts between gateways, its heartbeat, client telemetry; the call queue (stream and signaling) and host presence (KV, changes)',
  rooms:
    'membership: answers the rooms RPCs, sends room broadcasts and gateway control messages, writes the room-events stream, publishes room.live when the events leader asks',
  media:
    'media nodes: answers media actions, sends media events to sockets, its heartbeat, freezes; tells the rooms service it leaves, reads room info',
  events:
    'room.live: holds the leader lease in KV and asks the rooms service for each tick; member presence: reads room.join/room.leave through its durable consumer, keeps users’ presence in KV, publishes changes; webhooks: a durable consumer of the room-events stream per endpoint, parks failed events in their stream (and the webhooks admin command replays them)',
  api: 'the server API: the rooms service’s administration RPCs (RoomsAdmin) and room info, server-to-client calls; answers its ping',
  admin:
    'operators’ own bus tools (the rooms admin command goes through the server API): room info, server-to-client calls, pings',
  tail: 'analytics readers: the room-events stream (read only, through ephemeral consumers the server names: never a durable one, nor an ack, nor a delete), room.live, client telemetry, host and member presence changes',
};

/** Where an identity's replies arrive: `_INBOX.<prefix>.<identity>` (nats.js `inboxPrefix`). */
export function natsInboxPrefix(prefix: string, identity: NatsIdentity): string {
  return `_INBOX.${prefix}.${identity}`;
}

/**
 * The JetStream API subjects (2.9) of reading one stream without touching anyone else's
 * consumers: ephemeral consumers created through the one subject that takes no name (the
 * server names them), pulled with acks off. No named or durable create (a reader could
 * otherwise take the name of a service's durable consumer, a webhook endpoint's `webhook_…`),
 * no delete, no ack. It may still pull from a consumer whose name it knows; without acking,
 * that only delays those deliveries by their ack_wait.
 */
function streamReader(stream: string): string[] {
  return [
    `$JS.API.INFO`,
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.INFO.${stream}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
  ];
}

/**
 * Every identity's permissions under the subject prefix `p` (NATS_SUBJECT_PREFIX). A prefix
 * with a wildcard token (`*`: any one-token prefix) is for development servers shared by many
 * prefixes: JetStream rights are then per operation, on any stream.
 */
export function natsPermissions(p: string): Record<NatsIdentity, NatsPermissions> {
  const rpc = (service: ServiceName, method: string): string => `${p}.${service}.rpc.${method}`;
  const ping = (service: ServiceName): string => rpc(service, 'ping');
  const inbox = (identity: NatsIdentity): string => `${natsInboxPrefix(p, identity)}.>`;
  // Stream and bucket names embed the prefix as part of one token, which a wildcard cannot
  // match: under a wildcard prefix (`*`, the devstack's), any stream and bucket.
  const wildcard = p.split('.').some((t) => t === '*' || t === '>');
  const stream = wildcard ? '*' : roomEventStream(p);
  const kvStream = wildcard ? '*' : `KV_${eventsLeaderBucket(p)}`;
  const bucket = wildcard ? '*' : eventsLeaderBucket(p);
  const calls = wildcard ? '*' : callStream(p);
  const presence = wildcard ? '*' : presenceBucket(p);
  const presenceStream = wildcard ? '*' : `KV_${presenceBucket(p)}`;
  const members = wildcard ? '*' : memberPresenceBucket(p);
  const membersStream = wildcard ? '*' : `KV_${memberPresenceBucket(p)}`;
  const parked = wildcard ? '*' : webhookParkedStream(p);
  /**
   * The events service's durable consumers of the room-events stream: member presence and
   * one per webhook endpoint (`webhook_<hash>`, created, and deleted once its endpoint is no
   * longer configured). Consumer names are single tokens a permission cannot match by
   * prefix: it may manage any consumer of that stream — never the stream itself.
   */
  const eventsJetStream = [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.*`,
    `$JS.API.CONSUMER.CREATE.${stream}.*.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.*`,
    `$JS.API.CONSUMER.INFO.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
    `$JS.API.CONSUMER.LIST.${stream}`,
    `$JS.API.CONSUMER.NAMES.${stream}`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.ACK.${stream}.>`,
    `$JS.API.STREAM.INFO.${membersStream}`,
    `$JS.API.STREAM.CREATE.${membersStream}`,
    `$JS.API.STREAM.UPDATE.${membersStream}`,
    `$JS.API.STREAM.MSG.GET.${membersStream}`,
    `$JS.API.DIRECT.GET.${membersStream}`,
    `$JS.API.DIRECT.GET.${membersStream}.>`,
    `$JS.API.CONSUMER.CREATE.${membersStream}`,
    `$JS.API.CONSUMER.CREATE.${membersStream}.>`,
    `$JS.API.CONSUMER.INFO.${membersStream}.*`,
    `$JS.API.CONSUMER.DELETE.${membersStream}.*`,
    `$JS.FC.${membersStream}.>`,
    `$KV.${members}.>`,
    hostSubjects.members(p),
    // Webhooks: events parked after their last attempt, and the replay command (which runs
    // as this identity: it has the signing key) reading and removing them.
    `$JS.API.STREAM.INFO.${parked}`,
    `$JS.API.STREAM.CREATE.${parked}`,
    `$JS.API.STREAM.MSG.GET.${parked}`,
    `$JS.API.STREAM.MSG.DELETE.${parked}`,
    `${p}.webhooks.parked.*`,
  ];
  /** The call queue's stream (offers) and the presence bucket, as the gateway uses them. */
  const hostsJetStream = [
    `$JS.API.INFO`,
    `$JS.API.STREAM.INFO.${calls}`,
    `$JS.API.STREAM.CREATE.${calls}`,
    `$JS.API.STREAM.UPDATE.${calls}`,
    `$JS.API.STREAM.MSG.DELETE.${calls}`,
    `$JS.API.STREAM.MSG.GET.${calls}`,
    `$JS.API.CONSUMER.CREATE.${calls}`,
    `$JS.API.CONSUMER.CREATE.${calls}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${calls}.*`,
    `$JS.API.CONSUMER.INFO.${calls}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${calls}.*`,
    `$JS.ACK.${calls}.>`,
    `$JS.API.STREAM.INFO.${presenceStream}`,
    `$JS.API.STREAM.CREATE.${presenceStream}`,
    `$JS.API.STREAM.UPDATE.${presenceStream}`,
    `$JS.API.STREAM.MSG.GET.${presenceStream}`,
    `$JS.API.DIRECT.GET.${presenceStream}`,
    `$JS.API.DIRECT.GET.${presenceStream}.>`,
    `$JS.API.CONSUMER.CREATE.${presenceStream}`,
    `$JS.API.CONSUMER.CREATE.${presenceStream}.>`,
    `$JS.API.CONSUMER.INFO.${presenceStream}.*`,
    `$JS.API.CONSUMER.DELETE.${presenceStream}.*`,
    `$JS.FC.${presenceStream}.>`,
    `$KV.${presence}.>`,
  ];

  const sig = {
    /** A room's broadcast. */
    room: `${p}.sig.room.*`,
    /** Event relays to one socket (`sig.sock.<socketId>.<room>`). */
    socket: `${p}.sig.sock.*.*`,
    /** Server-to-client calls to one socket (`sig.call.<socketId>.<room>`). */
    call: `${p}.sig.call.*.*`,
    gatewayControl: `${p}.sig.gw.*.ctl`,
    /** Relay batches between gateways (`sig.gw.<gatewayId>.relay`): gateways only. */
    gatewayRelay: `${p}.sig.gw.*.relay`,
    gatewayHeartbeat: `${p}.sig.gw.heartbeat`,
    telemetry: [`${p}.telemetry.cpu`, `${p}.telemetry.freeze`],
  };
  const mediaHeartbeat = `${p}.media.heartbeat`;

  return {
    gateway: {
      publish: [
        ...(
          [
            Rooms.join,
            Rooms.lookup,
            Rooms.reconnect,
            Rooms.refresh,
            Rooms.disconnect,
            Rooms.orientation,
            Rooms.resync,
            Rooms.roomState,
            Rooms.members,
            Rooms.mediaNode,
          ] as const
        ).map((m) => rpc(m.service, m.method)),
        ...MEDIA_ACTIONS.map((a) => subjects.rpc(p, Media[a], '*')),
        ...SERVICE_NAMES.map(ping),
        sig.socket,
        sig.gatewayRelay,
        sig.room,
        sig.gatewayHeartbeat,
        ...sig.telemetry,
        hostSubjects.offers(p),
        hostSubjects.signals(p),
        hostSubjects.presenceAll(p),
        ...hostsJetStream,
      ],
      subscribe: [
        ping('gateway'),
        hostSubjects.signals(p),
        sig.socket,
        sig.call,
        sig.room,
        sig.gatewayControl,
        sig.gatewayRelay,
        inbox('gateway'),
      ],
      allowResponses: true,
    },
    rooms: {
      publish: [
        sig.room,
        // The server API's data to given members (sendData), confirmed by their gateways.
        sig.socket,
        // The server API's requests to the media node hosting a room.
        ...Object.values(MediaNodeAdmin).map((m) => subjects.rpc(p, m, '*')),
        sig.gatewayControl,
        ...DURABLE_ROOM_EVENTS.map((e) => `${p}.${e}`),
        // room.live's snapshots, each tick when the events service's leader asks.
        `${p}.room.live`,
        `$JS.API.INFO`,
        `$JS.API.STREAM.INFO.${stream}`,
        `$JS.API.STREAM.CREATE.${stream}`,
        `$JS.API.STREAM.UPDATE.${stream}`,
      ],
      subscribe: [
        `${p}.rooms.rpc.*`,
        sig.gatewayHeartbeat,
        mediaHeartbeat,
        `${p}.telemetry.cpu`,
        inbox('rooms'),
      ],
      allowResponses: true,
    },
    media: {
      publish: [
        rpc('rooms', Rooms.mediaNodeLeft.method),
        rpc('rooms', Rooms.roomInfo.method),
        rpc('rooms', Rooms.tracks.method),
        sig.socket,
        `${p}.telemetry.freeze`,
        mediaHeartbeat,
      ],
      subscribe: [ping('media'), `${p}.media.node.*.rpc.*`, sig.room, inbox('media')],
      allowResponses: true,
    },
    events: {
      publish: [
        rpc('rooms', Rooms.publishLive.method),
        `$JS.API.INFO`,
        `$JS.API.STREAM.INFO.${kvStream}`,
        `$JS.API.STREAM.CREATE.${kvStream}`,
        `$JS.API.STREAM.UPDATE.${kvStream}`,
        `$JS.API.STREAM.MSG.GET.${kvStream}`,
        `$JS.API.DIRECT.GET.${kvStream}`,
        `$JS.API.DIRECT.GET.${kvStream}.>`,
        `$KV.${bucket}.>`,
        ...eventsJetStream,
      ],
      subscribe: [ping('events'), inbox('events')],
      allowResponses: true,
    },
    api: {
      publish: [
        ...Object.values(RoomsAdmin).map((m) => rpc(m.service, m.method)),
        // callRoom reads who is in the room before it calls each member.
        rpc('rooms', Rooms.roomInfo.method),
        sig.call,
      ],
      subscribe: [ping('api'), inbox('api')],
      allowResponses: true,
    },
    admin: {
      publish: [rpc('rooms', Rooms.roomInfo.method), ...SERVICE_NAMES.map(ping), sig.call],
      subscribe: [inbox('admin')],
      allowResponses: false,
    },
    tail: {
      publish: streamReader(stream),
      subscribe: [
        `${p}.room.live`,
        ...sig.telemetry,
        hostSubjects.presenceAll(p),
        hostSubjects.members(p),
        inbox('tail'),
      ],
      allowResponses: false,
    },
  };
}

export type NatsUserAuth =
  /** A user name and password; `password` is written as is (a `$VARIABLE` reference, a bcrypt hash, or the password). */
  | { readonly user: string; readonly password: string }
  /** An NKey user: its public key (`U…`, or a `$VARIABLE` reference). */
  | { readonly nkey: string };

export interface NatsServerConfigOptions {
  /** The subject prefix (NATS_SUBJECT_PREFIX) the permissions are for. */
  prefix: string;
  /** The identities to render, with how each authenticates. */
  users: readonly ({ identity: NatsIdentity | 'test' } & NatsUserAuth)[];
  /** Extra top-level lines (listen, jetstream, tls…), written before the authorization block. */
  preamble?: readonly string[];
}

/** A value in nats-server configuration syntax (strings quoted, `$VAR` references left bare). */
function confValue(v: string): string {
  return /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? v : JSON.stringify(v);
}

function confList(items: readonly string[], indent: string): string {
  return `[\n${items.map((s) => `${indent}  ${confValue(s)}`).join('\n')}\n${indent}]`;
}

/**
 * A nats-server configuration (the `authorization` block, after `preamble`) giving each user
 * the permissions of its identity under `prefix`. Identity `test` (development and tests
 * only) may publish and subscribe everything.
 */
export function renderNatsServerConfig(opts: NatsServerConfigOptions): string {
  const table = natsPermissions(opts.prefix);
  const out: string[] = [
    `# Switchboard's bus identities for subject prefix "${opts.prefix}",`,
    '# rendered from libs/protocol/src/permissions.ts (./run nats-config).',
    ...(opts.preamble ?? []),
    'authorization {',
    '  users = [',
  ];
  for (const u of opts.users) {
    const perms: NatsPermissions =
      u.identity === 'test'
        ? { publish: ['>'], subscribe: ['>'], allowResponses: false }
        : table[u.identity];
    const role =
      u.identity === 'test'
        ? 'development and tests only: everything'
        : NATS_IDENTITY_ROLES[u.identity];
    const auth =
      'nkey' in u
        ? `nkey: ${confValue(u.nkey)}`
        : `user: ${confValue(u.user)}, password: ${confValue(u.password)}`;
    out.push(
      `    # ${u.identity}: ${role}`,
      `    { ${auth}`,
      '      permissions: {',
      `        publish: { allow: ${confList(perms.publish, '        ')} }`,
      `        subscribe: { allow: ${confList(perms.subscribe, '        ')} }`,
      ...(perms.allowResponses ? ['        allow_responses: true'] : []),
      '      }',
      '    }',
    );
  }
  out.push('  ]', '}', '');
  return out.join('\n');
}
