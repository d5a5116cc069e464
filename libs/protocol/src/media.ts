/**
 * The SFU's part of the protocol: the client media actions (mediasoup-client's needs,
 * spoken over the same `/api` WebSocket with the same request/reply shapes), the media
 * events, and what crosses NATS between gateways, the rooms service and media nodes.
 *
 * Subjects (under the deployment prefix `<p>`):
 *
 *   <p>.media.node.<nodeId>.rpc.<method>   a media action for the room's node; only that
 *                                          node answers (the rooms service records which
 *                                          node hosts a room)
 *   <p>.media.heartbeat                    every media node's load and capacity
 *
 * Media events reach sockets as relays on `<p>.sig.sock.<socketId>.<room>` (signaling.ts).
 *
 * Schemas of mediasoup's own structures (RTP parameters, DTLS parameters...) check their
 * shape and bounds here; mediasoup checks their meaning, and a value it rejects is answered
 * with JSON_FIELD_INVALID.
 */
import Type, { type Static, type TObject, type TSchema } from 'typebox';
import { Peer, RoomId, SocketId, UserId } from './client.ts';
import { rpcMethod, type RpcMethod } from './bus.ts';
import { validator, type Validator } from './validate.ts';
import { ProducerSource } from './webrtc.ts';
import { SessionGrants } from './auth.ts';

/** mediasoup object ids are UUIDs. */
export const MediaId = Type.String({ pattern: '^[0-9a-f-]{36}$' });
const Name = Type.String({ minLength: 1, maxLength: 128 });
const Short = Type.String({ maxLength: 256 });
const Params = Type.Record(
  Type.String({ maxLength: 64 }),
  Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]),
);
const AnyRecord = Type.Record(Type.String({ maxLength: 128 }), Type.Unknown());
const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
export const MediaKind = Type.Union([Type.Literal('audio'), Type.Literal('video')]);
export type MediaKind = Static<typeof MediaKind>;

const RtcpFeedback = Type.Object({ type: Name, parameter: Type.Optional(Short) });
const HeaderExtension = Type.Object({
  uri: Type.String({ maxLength: 256 }),
  id: Type.Integer({ minimum: 1, maximum: 255 }),
  encrypt: Type.Optional(Type.Boolean()),
  parameters: Type.Optional(Params),
});

export const RtpCapabilities = Type.Object({
  codecs: Type.Optional(
    Type.Array(
      Type.Object({
        kind: MediaKind,
        mimeType: Name,
        preferredPayloadType: Type.Optional(Type.Integer({ minimum: 0, maximum: 127 })),
        clockRate: Type.Integer({ minimum: 1 }),
        channels: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
        parameters: Type.Optional(Params),
        rtcpFeedback: Type.Optional(Type.Array(RtcpFeedback, { maxItems: 32 })),
      }),
      { maxItems: 128 },
    ),
  ),
  headerExtensions: Type.Optional(
    Type.Array(
      Type.Object({
        kind: MediaKind,
        uri: Type.String({ maxLength: 256 }),
        preferredId: Type.Integer({ minimum: 1, maximum: 255 }),
        preferredEncrypt: Type.Optional(Type.Boolean()),
        direction: Type.Optional(Short),
      }),
      { maxItems: 64 },
    ),
  ),
});
export type RtpCapabilities = Static<typeof RtpCapabilities>;

export const RtpParameters = Type.Object({
  mid: Type.Optional(Type.String({ maxLength: 32 })),
  codecs: Type.Array(
    Type.Object({
      mimeType: Name,
      payloadType: Type.Integer({ minimum: 0, maximum: 127 }),
      clockRate: Type.Integer({ minimum: 1 }),
      channels: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
      parameters: Type.Optional(Params),
      rtcpFeedback: Type.Optional(Type.Array(RtcpFeedback, { maxItems: 32 })),
    }),
    { minItems: 1, maxItems: 64 },
  ),
  headerExtensions: Type.Optional(Type.Array(HeaderExtension, { maxItems: 32 })),
  encodings: Type.Optional(
    Type.Array(
      Type.Object({
        ssrc: Type.Optional(U32),
        rid: Type.Optional(Type.String({ maxLength: 32 })),
        codecPayloadType: Type.Optional(Type.Integer({ minimum: 0, maximum: 127 })),
        rtx: Type.Optional(Type.Object({ ssrc: U32 })),
        dtx: Type.Optional(Type.Boolean()),
        scalabilityMode: Type.Optional(Type.String({ maxLength: 16 })),
        scaleResolutionDownBy: Type.Optional(Type.Number({ minimum: 1 })),
        maxBitrate: Type.Optional(Type.Integer({ minimum: 0 })),
        maxFramerate: Type.Optional(Type.Number({ minimum: 0 })),
        adaptivePtime: Type.Optional(Type.Boolean()),
        priority: Type.Optional(Short),
        networkPriority: Type.Optional(Short),
      }),
      { maxItems: 16 },
    ),
  ),
  rtcp: Type.Optional(
    Type.Object({
      cname: Type.Optional(Type.String({ maxLength: 256 })),
      reducedSize: Type.Optional(Type.Boolean()),
      mux: Type.Optional(Type.Boolean()),
    }),
  ),
  msid: Type.Optional(Type.String({ maxLength: 256 })),
});
export type RtpParameters = Static<typeof RtpParameters>;

export const DtlsParameters = Type.Object({
  role: Type.Optional(
    Type.Union([Type.Literal('auto'), Type.Literal('client'), Type.Literal('server')]),
  ),
  fingerprints: Type.Array(
    Type.Object({
      algorithm: Type.Union([
        Type.Literal('sha-1'),
        Type.Literal('sha-224'),
        Type.Literal('sha-256'),
        Type.Literal('sha-384'),
        Type.Literal('sha-512'),
      ]),
      value: Type.String({ minLength: 1, maxLength: 256 }),
    }),
    { minItems: 1, maxItems: 8 },
  ),
});
export type DtlsParameters = Static<typeof DtlsParameters>;

export const SctpCapabilities = Type.Object({
  numStreams: Type.Object({
    OS: Type.Integer({ minimum: 1, maximum: 65535 }),
    MIS: Type.Integer({ minimum: 1, maximum: 65535 }),
  }),
});

export const SctpStreamParameters = Type.Object({
  streamId: Type.Integer({ minimum: 0, maximum: 65534 }),
  ordered: Type.Optional(Type.Boolean()),
  maxPacketLifeTime: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  maxRetransmits: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
});

const IceParameters = Type.Object({
  usernameFragment: Type.String(),
  password: Type.String(),
  iceLite: Type.Optional(Type.Boolean()),
});
const IceCandidateInfo = Type.Object({
  foundation: Type.String(),
  priority: Type.Integer({ minimum: 0 }),
  address: Type.String(),
  protocol: Type.Union([Type.Literal('udp'), Type.Literal('tcp')]),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  type: Type.String(),
  tcpType: Type.Optional(Type.String()),
});

/** The SRTP suites a plain transport speaks (mediasoup's SrtpCryptoSuite). */
export const SrtpCryptoSuite = Type.Union([
  Type.Literal('AEAD_AES_256_GCM'),
  Type.Literal('AEAD_AES_128_GCM'),
  Type.Literal('AES_CM_128_HMAC_SHA1_80'),
  Type.Literal('AES_CM_128_HMAC_SHA1_32'),
]);
export type SrtpCryptoSuite = Static<typeof SrtpCryptoSuite>;

/**
 * One side's SRTP keys (SDES-style, RFC 4568): its suite, and its master key ‖ master salt in
 * base64 (30 bytes for the AES_CM suites, 28 for AES-128-GCM, 44 for AES-256-GCM). A secret:
 * never logged.
 */
export const SrtpParameters = Type.Object({
  cryptoSuite: SrtpCryptoSuite,
  keyBase64: Type.String({ minLength: 40, maxLength: 60, pattern: '^[A-Za-z0-9+/]+={0,2}$' }),
});
export type SrtpParameters = Static<typeof SrtpParameters>;

const TransportId = Type.Object({ transportId: MediaId });
const ProducerIdData = Type.Object({ producerId: MediaId });
const ConsumerIdData = Type.Object({ consumerId: MediaId });

export const WebRtcTransportInfo = Type.Object({
  id: MediaId,
  iceParameters: IceParameters,
  iceCandidates: Type.Array(IceCandidateInfo),
  dtlsParameters: DtlsParameters,
  /** mediasoup's SctpParameters (mediasoup-client needs all of them, passed as they are). */
  sctpParameters: Type.Optional(
    Type.Object({
      port: Type.Integer(),
      OS: Type.Integer(),
      MIS: Type.Integer(),
      maxMessageSize: Type.Integer(),
      maxSendMessageSize: Type.Optional(Type.Integer()),
      maxReceiveMessageSize: Type.Optional(Type.Integer()),
      sendBufferSize: Type.Optional(Type.Integer()),
      isDataChannel: Type.Optional(Type.Boolean()),
    }),
  ),
});
export type WebRtcTransportInfo = Static<typeof WebRtcTransportInfo>;

/** The client media actions: `d` and reply `d` schemas, as ClientActions in client.ts. */
export const MediaActions = {
  getRouterRtpCapabilities: { data: Type.Object({}), reply: RtpCapabilities },
  /**
   * A transport to send on or to receive on. A receiving transport carries the client's
   * RTP capabilities (mediasoup-client's `device.recvRtpCapabilities`): the server creates
   * consumers on it for every producer in the room, now and later.
   */
  createWebRtcTransport: {
    data: Type.Object({
      direction: Type.Union([Type.Literal('send'), Type.Literal('recv')]),
      sctpCapabilities: Type.Optional(SctpCapabilities),
      rtpCapabilities: Type.Optional(RtpCapabilities),
    }),
    reply: WebRtcTransportInfo,
  },
  /**
   * A plain RTP transport, for trusted non-browser members (an ffmpeg/GStreamer broadcaster,
   * a recorder, the benchmark): sending ones learn the sender's address from its first packet
   * (comedia); receiving ones send to the address given in connectPlainTransport. Refused
   * (UNKNOWN_ACTION) unless the media node enables MEDIA_PLAIN_TRANSPORTS.
   *
   * With `srtp` (the member's own keys: what it encrypts its RTP, or a receiver its RTCP,
   * with) the transport speaks SRTP only, in that suite, and the reply's `srtpParameters` are
   * the node's keys (what it encrypts with, fresh for each transport).
   */
  createPlainTransport: {
    data: Type.Object({
      direction: Type.Union([Type.Literal('send'), Type.Literal('recv')]),
      rtpCapabilities: Type.Optional(RtpCapabilities),
      srtp: Type.Optional(SrtpParameters),
    }),
    reply: Type.Object({
      id: MediaId,
      ip: Type.String(),
      port: Type.Integer({ minimum: 0, maximum: 65535 }),
      srtpParameters: Type.Optional(SrtpParameters),
    }),
  },
  connectPlainTransport: {
    data: Type.Object({
      transportId: MediaId,
      ip: Type.String({ minLength: 1, maxLength: 64 }),
      port: Type.Integer({ minimum: 1, maximum: 65535 }),
    }),
    reply: undefined,
  },
  connectWebRtcTransport: {
    data: Type.Object({ transportId: MediaId, dtlsParameters: DtlsParameters }),
    reply: undefined,
  },
  restartIce: { data: TransportId, reply: Type.Object({ iceParameters: IceParameters }) },
  produce: {
    data: Type.Object({
      transportId: MediaId,
      kind: MediaKind,
      rtpParameters: RtpParameters,
      paused: Type.Optional(Type.Boolean()),
      source: Type.Optional(ProducerSource),
    }),
    reply: Type.Object({ id: MediaId }),
  },
  closeProducer: { data: ProducerIdData, reply: undefined },
  pauseProducer: { data: ProducerIdData, reply: undefined },
  resumeProducer: { data: ProducerIdData, reply: undefined },
  /** The client created its side of the consumer: media may flow. */
  resumeConsumer: { data: ConsumerIdData, reply: undefined },
  pauseConsumer: { data: ConsumerIdData, reply: undefined },
  setConsumerPreferredLayers: {
    data: Type.Object({
      consumerId: MediaId,
      spatialLayer: Type.Integer({ minimum: 0, maximum: 15 }),
      temporalLayer: Type.Optional(Type.Integer({ minimum: 0, maximum: 15 })),
    }),
    reply: undefined,
  },
  produceData: {
    data: Type.Object({
      transportId: MediaId,
      sctpStreamParameters: SctpStreamParameters,
      label: Type.Optional(Type.String({ maxLength: 256 })),
      protocol: Type.Optional(Type.String({ maxLength: 256 })),
    }),
    reply: Type.Object({ id: MediaId }),
  },
  getTransportStats: {
    data: TransportId,
    reply: Type.Object({ stats: Type.Array(AnyRecord) }),
  },
} as const satisfies Record<string, { data: TSchema; reply: TSchema | undefined }>;
export type MediaAction = keyof typeof MediaActions;
export const MEDIA_ACTIONS = Object.keys(MediaActions) as MediaAction[];

export function isMediaAction(a: string): a is MediaAction {
  return Object.hasOwn(MediaActions, a);
}

// ------------------------------------------------------------------------------ events

const Layers = Type.Union([
  Type.Object({
    spatialLayer: Type.Integer({ minimum: 0 }),
    temporalLayer: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  Type.Null(),
]);

export const MediaResetReason = Type.Union([
  /** The mediasoup worker hosting the room died; the room was re-created on another. */
  Type.Literal('worker'),
  /** The media node hosting the room stopped; the room moved to another node. */
  Type.Literal('node'),
]);

export const MediaEvents = {
  /** A consumer of `peer`'s producer was created, paused: consume it, then resumeConsumer. */
  eventNewConsumer: Type.Object({
    peer: Peer,
    producerId: MediaId,
    id: MediaId,
    kind: MediaKind,
    rtpParameters: RtpParameters,
    type: Type.String({ maxLength: 32 }),
    producerPaused: Type.Boolean(),
    source: ProducerSource,
  }),
  eventNewDataConsumer: Type.Object({
    peer: Peer,
    dataProducerId: MediaId,
    id: MediaId,
    sctpStreamParameters: SctpStreamParameters,
    label: Type.String({ maxLength: 256 }),
    protocol: Type.String({ maxLength: 256 }),
  }),
  eventConsumerClosed: Type.Object({ consumerId: MediaId }),
  eventDataConsumerClosed: Type.Object({ dataConsumerId: MediaId }),
  eventProducerPaused: Type.Object({ consumerId: MediaId, producerId: MediaId }),
  eventProducerResumed: Type.Object({ consumerId: MediaId, producerId: MediaId }),
  eventConsumerScore: Type.Object({
    consumerId: MediaId,
    score: Type.Integer({ minimum: 0, maximum: 10 }),
    producerScore: Type.Integer({ minimum: 0, maximum: 10 }),
  }),
  eventConsumerLayersChanged: Type.Object({ consumerId: MediaId, layers: Layers }),
  /** The room's dominant speaker changed. */
  eventActiveSpeaker: Type.Object({ peer: Peer, producerId: MediaId }),
  /**
   * The room's media was re-created (see MediaResetReason): every transport, producer and
   * consumer of this client is gone. Start again from getRouterRtpCapabilities.
   */
  eventMediaReset: Type.Object({ reason: MediaResetReason }),
  /**
   * Extension, to a producer's owner: the server API muted it (paused on the server; the
   * owner's resumeProducer is refused until it is unmuted) or unmuted it (resumed, unless the
   * owner had paused it itself).
   */
  eventProducerMuted: Type.Object({ producerId: MediaId, muted: Type.Boolean() }),
} as const satisfies Record<string, TSchema>;
export type MediaEvent = keyof typeof MediaEvents;

// ----------------------------------------------------------------- media node RPCs (NATS)

/** A media node's id: a single subject token (its INSTANCE_ID). */
export const MediaNodeId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

/** Who asks, in which room: the gateway fills this in from the socket's session. */
const Caller = { roomId: RoomId, socketId: SocketId, userId: UserId };

const EmptyReply = Type.Object({});
type NodeRequest<A extends MediaAction> = TObject<{
  roomId: typeof RoomId;
  socketId: typeof SocketId;
  userId: typeof UserId;
  data: (typeof MediaActions)[A]['data'];
}>;
type NodeReply<A extends MediaAction> = (typeof MediaActions)[A]['reply'] extends TSchema
  ? (typeof MediaActions)[A]['reply']
  : typeof EmptyReply;

/**
 * The node-side RPC of each client media action: the caller (filled in by the gateway from
 * the socket's session) plus the action's `d`; the reply is the action's (`{}` for none).
 */
export const Media = Object.fromEntries(
  MEDIA_ACTIONS.map((a) => {
    const spec: { data: TSchema; reply: TSchema | undefined } = MediaActions[a];
    return [
      a,
      rpcMethod('media', a, Type.Object({ ...Caller, data: spec.data }), spec.reply ?? EmptyReply, {
        addressed: true,
      }),
    ];
  }),
) as unknown as { [A in MediaAction]: RpcMethod<NodeRequest<A>, NodeReply<A>> };

/** A media node's liveness and load, every MEDIA_HEARTBEAT_MS. */
export const MediaNodeHeartbeat = Type.Object({
  nodeId: MediaNodeId,
  /** When the node process started, epoch ms: a new value means a restart (its rooms are gone). */
  startedAt: Type.Integer({ minimum: 0 }),
  /** Transports + consumers on all its workers. */
  load: Type.Integer({ minimum: 0 }),
  /** Workers × MEDIASOUP_WORKER_MAX_LOAD. */
  capacity: Type.Integer({ minimum: 1 }),
  workers: Type.Integer({ minimum: 0 }),
  rooms: Type.Integer({ minimum: 0 }),
  /** false while draining (SIGTERM): no new rooms. */
  accepting: Type.Boolean(),
});
export type MediaNodeHeartbeat = Static<typeof MediaNodeHeartbeat>;
export const mediaNodeHeartbeat = validator(MediaNodeHeartbeat);

/** A media node's producer, as the rooms service addresses it on the node's own subjects. */
const NodeProducer = {
  roomId: RoomId,
  socketId: SocketId,
  producerId: MediaId,
};

/**
 * What the rooms service asks of the node hosting a room, for the server API (addressed to
 * that node, like the client actions).
 */
export const MediaNodeAdmin = {
  /** Mute (pause, not resumable by its owner) or unmute a producer; the owner is told. */
  muteProducer: rpcMethod(
    'media',
    'muteProducer',
    Type.Object({ ...NodeProducer, muted: Type.Boolean() }),
    Type.Object({ paused: Type.Boolean() }),
    { addressed: true },
  ),
  /**
   * A member's grants changed: close what they no longer allow (producers of sources it may
   * not publish, data producers without `data`, its receiving transports without
   * `subscribe`).
   */
  enforceGrants: rpcMethod(
    'media',
    'enforceGrants',
    Type.Object({ roomId: RoomId, socketId: SocketId, grants: SessionGrants }),
    Type.Object({ closed: Type.Integer({ minimum: 0 }) }),
    { addressed: true },
  ),
} as const;

/** A producer began or ended on a media node (reported to the rooms service, in order). */
export const TrackChange = Type.Union([
  Type.Object({
    type: Type.Literal('published'),
    roomId: RoomId,
    socketId: SocketId,
    trackId: MediaId,
    kind: MediaKind,
    source: ProducerSource,
  }),
  Type.Object({
    type: Type.Literal('unpublished'),
    roomId: RoomId,
    socketId: SocketId,
    trackId: MediaId,
  }),
]);
export type TrackChange = Static<typeof TrackChange>;

export const mediaSubjects = {
  heartbeat: (prefix: string) => `${prefix}.media.heartbeat`,
} as const;

/** The rooms service's answer to "which media node hosts this room". */
export const MediaAssignment = Type.Object({ nodeId: MediaNodeId });
export const RoomsMediaNodeRequest = Type.Object({
  socketId: SocketId,
  connectionId: Type.String({ pattern: '^[0-9a-f]{32}$' }),
});
export const MediaNodeLeft = Type.Object({
  nodeId: MediaNodeId,
  startedAt: Type.Integer({ minimum: 0 }),
});

/** Validators of each media action's `d`. */
export const mediaActionData = Object.fromEntries(
  MEDIA_ACTIONS.map((a) => [a, validator(MediaActions[a].data)]),
) as { [A in MediaAction]: Validator<(typeof MediaActions)[A]['data']> };

/** The validated `d` of a media action. */
export type MediaActionData<A extends MediaAction> = Static<(typeof MediaActions)[A]['data']>;
