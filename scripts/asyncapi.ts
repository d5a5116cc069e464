/**
 * Generates docs/asyncapi.json, an AsyncAPI 3.0 description of what analytics subscribers
 * receive: the room events (libs/protocol/src/events.ts) and the client telemetry
 * (libs/protocol/src/signaling.ts). Every payload schema is the TypeBox schema itself, as
 * JSON; the examples below are checked against them when the document is rendered, and a test
 * fails when the committed file differs from what `./run docs` would write.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import type { TSchema } from 'typebox';
import {
  CpuTelemetry,
  EventsConfig,
  FreezeTelemetry,
  GatewayConfig,
  MemberPresenceChange,
  PresenceChange,
  hostSubjects,
  RoomEvents,
  formatIssues,
  roomEventStream,
  roomEventSubject,
  signalingSubjects,
  validator,
  type CpuTelemetry as CpuTelemetryValue,
  DURABLE_ROOM_EVENTS,
  type FreezeTelemetry as FreezeTelemetryValue,
  type MemberPresenceChange as MemberPresenceChangeValue,
  type PresenceChange as PresenceChangeValue,
  type RoomEvent,
  type RoomEventName,
} from '@switchboard/protocol';

export const ASYNCAPI = fileURLToPath(new URL('../docs/asyncapi.json', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../package.json', import.meta.url));

const PREFIX = 'sb';
/** The address template's placeholder; `{prefix}` in every channel address. */
const P = '{prefix}';

const ROOM_ID = 'team-standup';
const SOCKET_A = 'a'.repeat(32).replace(/^a{8}/, '3f9c2b7e');
const SOCKET_B = 'b'.repeat(32).replace(/^b{8}/, '81d04e6a');
const TS = 1_767_225_600_000; // 2026-01-01T00:00:00Z

const TRACK = {
  roomId: ROOM_ID,
  socketId: SOCKET_A,
  userId: 'alice',
  trackId: '4b1e8f2a-9c3d-4e7f-a5b6-0d2c8e1f3a97',
  kind: 'video',
  source: 'camera',
} as const;

const roomExamples: { [E in RoomEventName]: RoomEvent<E> } = {
  'room.created': {
    id: '0b6f3a52-6c1e-4d8a-9a57-2f0c1e8b7d10',
    ts: TS,
    seq: 1,
    roomId: ROOM_ID,
  },
  'room.join': {
    id: '5d2e9c41-8a3b-4f6e-b1c2-7e9f0a4d3b21',
    ts: TS + 12,
    seq: 2,
    roomId: ROOM_ID,
    roomSize: 1,
    socketId: SOCKET_A,
    userId: 'alice',
    platform: 'web',
    appVersion: '4.2.0',
    version: '1.0',
    ip: '203.0.113.7',
    bitrate: 1_500_000,
  },
  'room.leave': {
    id: 'c47a1f08-3e5d-4b9c-8f2a-6d1b0e7c9a32',
    ts: TS + 1_800_000,
    seq: 3,
    roomId: ROOM_ID,
    roomSize: 0,
    socketId: SOCKET_A,
    userId: 'alice',
  },
  'room.closed': {
    id: 'e8b3d6f1-2a4c-4e7b-9d05-1f6a8c3b2e43',
    ts: TS + 1_800_001,
    seq: 4,
    roomId: ROOM_ID,
  },
  'participant.updated': {
    id: '1c9e4b27-5f3a-4d8e-a6b0-3e7d2c9f1a54',
    ts: TS + 60_500,
    seq: 3,
    roomId: ROOM_ID,
    socketId: SOCKET_A,
    userId: 'alice',
    name: 'Alice (host)',
    grants: {
      publish: true,
      sources: ['camera', 'microphone', 'screen', 'screen-audio', 'other'],
      subscribe: true,
      data: true,
      hidden: false,
      role: 'member',
    },
  },
  'track.published': {
    id: '7a3d5e19-0b2c-4f6a-8e4d-9c1b2a7f3e65',
    ts: TS + 2_000,
    seq: 3,
    ...TRACK,
  },
  'track.unpublished': {
    id: '9f2b6c38-4d1e-4a7b-b5c9-0e8d3f6a2b76',
    ts: TS + 1_799_000,
    seq: 5,
    ...TRACK,
  },
  'track.muted': {
    id: '3e8a1d4f-6c2b-4b9e-9a7d-5f0c4e1b8d87',
    ts: TS + 90_000,
    seq: 4,
    ...TRACK,
    muted: true,
  },
  'room.live': {
    ts: TS + 60_000,
    roomId: ROOM_ID,
    roomSize: 2,
    sessions: [
      { socketId: SOCKET_A, userId: 'alice' },
      { socketId: SOCKET_B, userId: 'bob' },
    ],
  },
};

const cpuExample: CpuTelemetryValue = {
  roomId: ROOM_ID,
  socketId: SOCKET_A,
  userId: 'alice',
  at: TS + 30_000,
  cpuUsed: 87,
};
const freezeExample: FreezeTelemetryValue = {
  roomId: ROOM_ID,
  socketId: SOCKET_B,
  userId: 'bob',
  at: TS + 45_000,
};

const presenceExample: PresenceChangeValue = {
  host: 'robot-7',
  status: 'offline',
  lastSeen: TS - 70_000,
  instances: 0,
  at: TS,
};

const memberPresenceExample: MemberPresenceChangeValue = {
  userId: 'u-ada',
  status: 'online',
  sessions: 1,
  lastSeen: TS,
  at: TS + 12,
};

/** One channel of the document: a subject, its one message and an example of it. */
export interface ChannelSpec {
  /** Key in `channels`, `components.messages` and (receive…) `operations`. */
  id: string;
  /** The subject with `{prefix}` for the deployment prefix. */
  address: string;
  title: string;
  description: string;
  schema: TSchema;
  example: unknown;
  /** Published to the JetStream stream with Nats-Msg-Id = the payload's id. */
  durable: boolean;
  /** Address parameters besides `prefix` (in `{name}` form in the address). */
  parameters?: Record<string, { description: string; examples: string[] }>;
}

const ROOM_DESCRIPTIONS: Record<RoomEventName, string> = {
  'room.created':
    'A room began: its first member joined, or the server API created it (also when a room is re-created after it closed; its `seq` continues).',
  'room.join': 'A session joined a room; `roomSize` counts the room’s sessions including it.',
  'room.leave':
    'A session left a room; `reason` says why (it left, its reconnect window ran out, the server API removed it or deleted the room); `roomSize` counts the sessions remaining.',
  'room.closed':
    'The room ended: its last session left (a room a join made), its empty timeout passed, or the server API deleted it.',
  'participant.updated':
    'The server API changed a member’s name, metadata or grants (`grants`: those in force now).',
  'track.published': 'A member published a track (a producer on the room’s media node).',
  'track.unpublished':
    'A track ended: its publisher closed it, the server closed it, or its member left.',
  'track.muted': 'The server API muted (paused, not resumable by the member) or unmuted a track.',
  'room.live':
    'A snapshot of one room with members: its size and sessions. Every ROOM_LIVE_INTERVAL_MS the events service’s leader (one replica at a time) publishes one message per room with members, all with the same `ts`. Plain NATS publish, not stored: subscribe to receive it.',
};

function camel(subject: string): string {
  return subject.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase());
}

export function channelSpecs(): ChannelSpec[] {
  const rooms = (Object.keys(RoomEvents) as RoomEventName[]).map((event): ChannelSpec => ({
    id: camel(event),
    address: roomEventSubject(P, event),
    title: event,
    description: ROOM_DESCRIPTIONS[event],
    schema: RoomEvents[event],
    example: roomExamples[event],
    durable: (DURABLE_ROOM_EVENTS as readonly string[]).includes(event),
  }));
  return [
    ...rooms,
    {
      id: 'telemetryCpu',
      address: signalingSubjects.telemetryCpu(P),
      title: 'telemetry.cpu',
      description:
        'A client’s eventCpu (CPU use in percent), forwarded by the gateway holding its socket. Plain NATS publish.',
      schema: CpuTelemetry,
      example: cpuExample,
      durable: false,
    },
    {
      id: 'telemetryFreeze',
      address: signalingSubjects.telemetryFreeze(P),
      title: 'telemetry.freeze',
      description:
        'A client’s eventFreeze (its video froze), from the gateway holding its socket or from the media node. Plain NATS publish.',
      schema: FreezeTelemetry,
      example: freezeExample,
      durable: false,
    },
    {
      id: 'presence',
      address: hostSubjects.presence(P, '{host}'),
      title: 'presence.<host>',
      description:
        'A host (a device or an agent registered with hostOnline) went online or offline: `instances` online now, `lastSeen` (epoch ms) its last heartbeat, `at` when the change was seen. Published once per change by the gateway that saw it. Plain NATS publish, not stored.',
      schema: PresenceChange,
      example: presenceExample,
      durable: false,
      parameters: {
        host: { description: 'The host name (its token’s `host` claim).', examples: ['robot-7'] },
      },
    },
    {
      id: 'memberPresence',
      address: `${P}.presence.user.{user}`,
      title: 'presence.user.<user>',
      description:
        'A user came online (its first session in any room) or went offline (its last session left: it left, or its reconnect window ran out), derived from room.join/room.leave by the events service, once per change. `sessions` it holds now, `lastSeen` (epoch ms). Plain NATS publish, not stored; the state is in the NATS KV bucket `<P>_members` (`user.<user>`).',
      schema: MemberPresenceChange,
      example: memberPresenceExample,
      durable: false,
      parameters: {
        user: {
          description: 'The userId (the token’s `sub`) as base64url of its UTF-8, without padding.',
          examples: ['dS1hZGE'],
        },
      },
    },
  ];
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
function jsonSchema(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(schema));
}

function version(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: string };
  return pkg.version ?? '1.0.0';
}

function description(): string {
  const liveDefault = (EventsConfig.properties.ROOM_LIVE_INTERVAL_MS as { default?: number })
    .default;
  return [
    'What analytics subscribers receive from Switchboard over NATS. Payloads are JSON (UTF-8).',
    '',
    `**Subjects.** Every subject starts with the deployment prefix \`<p>\` = NATS_SUBJECT_PREFIX (default \`${PREFIX}\`; it may be several dot-separated tokens), the \`prefix\` parameter of each channel address.`,
    '',
    `**Durable membership events** (\`room.created\`, \`room.join\`, \`room.leave\`, \`room.closed\`): written to an outbox in the same transaction as the membership change, then published to the JetStream stream \`<P>_ROOM_EVENTS\`, where \`<P>\` is the prefix with every character outside \`[A-Za-z0-9_-]\` replaced by \`_\` (\`${roomEventStream(PREFIX)}\` for the default prefix). Each is published with the header \`Nats-Msg-Id\` = its \`id\` (a UUID), so a retried publish is stored once (within EVENTS_DEDUP_WINDOW_S); the stream keeps events for EVENTS_STREAM_MAX_AGE_S. Delivery to the stream is at least once: de-duplicate on \`id\` if you read with a plain subscription. \`ts\` is when the change committed (epoch ms); \`seq\` is the room's own sequence number, consecutive per room (1, 2, 3… over the room's whole life, also across its closing and re-creation), and a room's events are stored in \`seq\` order: a gap in \`seq\` means a missed event. Read them with a JetStream consumer on the stream to replay or resume.`,
    '',
    `**room.live**: every ROOM_LIVE_INTERVAL_MS (default ${String(liveDefault)} ms) one snapshot per room with members, published by the events service's leader only (so once per tick with several replicas). Plain NATS publish, not stored, no \`seq\`: a subscriber that was away misses the snapshots of that time.`,
    '',
    '**Telemetry** (`telemetry.cpu`, `telemetry.freeze`): client-reported eventCpu and eventFreeze, with the room, socket and user they came from and `at` (epoch ms: when the gateway received the event, or the media node detected the freeze). Plain NATS publish, not stored.',
    '',
    `**Host presence** (\`presence.<host>\`): a host went online or offline. Offline means a normal goodbye, or no heartbeat for 2 × HOST_PRESENCE_INTERVAL_MS + HOST_READ_DEADLINE_GRACE_MS (default ${String((GatewayConfig.properties.HOST_PRESENCE_INTERVAL_MS as { default?: number }).default)} ms + ${String((GatewayConfig.properties.HOST_READ_DEADLINE_GRACE_MS as { default?: number }).default)} ms); a host that reconnects inside it never goes offline. The current state of every host is in the NATS KV bucket \`<P>_presence\` (one key per host instance). Plain NATS publish, not stored.`,
  ].join('\n');
}

const DURABLE_HEADERS = {
  type: 'object',
  properties: {
    'Nats-Msg-Id': {
      type: 'string',
      description: "The event's `id`: JetStream's de-duplication id.",
    },
  },
  required: ['Nats-Msg-Id'],
};

/** The AsyncAPI document (a plain JSON value). Throws when an example fails its schema. */
export function asyncapiDocument(): Record<string, unknown> {
  const specs = channelSpecs();
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const spec of specs) {
    const parsed = validator(spec.schema).parse(spec.example);
    if (!parsed.ok) {
      throw new Error(`the ${spec.title} example fails its schema: ${formatIssues(parsed.issues)}`);
    }
    const example: Record<string, unknown> = { name: spec.id, payload: spec.example };
    if (spec.durable) {
      example.headers = { 'Nats-Msg-Id': (spec.example as { id: string }).id };
    }
    messages[spec.id] = {
      name: spec.id,
      title: spec.title,
      summary: spec.description,
      contentType: 'application/json',
      ...(spec.durable ? { headers: DURABLE_HEADERS } : {}),
      payload: jsonSchema(spec.schema),
      examples: [example],
    };
    channels[spec.id] = {
      address: spec.address,
      title: spec.title,
      description: spec.description,
      parameters: {
        prefix: { $ref: '#/components/parameters/prefix' },
        ...spec.parameters,
      },
      messages: { [spec.id]: { $ref: `#/components/messages/${spec.id}` } },
    };
    const op = `receive${spec.id[0]?.toUpperCase() ?? ''}${spec.id.slice(1)}`;
    operations[op] = {
      action: 'receive',
      title: `Receive ${spec.title}`,
      summary: spec.durable
        ? `Subscribe to ${spec.address}, or consume it from the JetStream stream.`
        : `Subscribe to ${spec.address}.`,
      channel: { $ref: `#/channels/${spec.id}` },
      messages: [{ $ref: `#/channels/${spec.id}/messages/${spec.id}` }],
    };
  }
  return {
    asyncapi: '3.0.0',
    info: { title: 'Switchboard room events', version: version(), description: description() },
    defaultContentType: 'application/json',
    servers: {
      nats: {
        host: 'localhost:4222',
        protocol: 'nats',
        description:
          'A placeholder: the deployment’s NATS (NATS_URL, default nats://127.0.0.1:4222), e.g. nats://localhost:4222.',
      },
    },
    channels,
    operations,
    components: {
      parameters: {
        prefix: {
          default: PREFIX,
          examples: [PREFIX],
          description:
            'NATS_SUBJECT_PREFIX of the deployment: the first token(s) of every subject.',
        },
      },
      messages,
    },
  };
}

/** docs/asyncapi.json as `./run docs` writes it (prettier'd, trailing newline). */
export async function renderAsyncapi(): Promise<string> {
  const options = (await prettier.resolveConfig(ASYNCAPI)) ?? {};
  return await prettier.format(`${JSON.stringify(asyncapiDocument(), null, 2)}\n`, {
    ...options,
    filepath: ASYNCAPI,
  });
}
