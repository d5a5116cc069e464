/** WebRTC's own structures as they cross the wire (the W3C dictionaries, bounded). */
import Type, { type Static } from 'typebox';

/** RTCIceCandidateInit as a browser serialises it. */
export const IceCandidate = Type.Object({
  candidate: Type.String({ maxLength: 2048 }),
  sdpMid: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
  sdpMLineIndex: Type.Optional(
    Type.Union([Type.Integer({ minimum: 0, maximum: 1024 }), Type.Null()]),
  ),
  usernameFragment: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
});
export type IceCandidate = Static<typeof IceCandidate>;

/** RTCSessionDescriptionInit. */
export const SessionDescription = Type.Object({
  type: Type.Union([
    Type.Literal('offer'),
    Type.Literal('answer'),
    Type.Literal('pranswer'),
    Type.Literal('rollback'),
  ]),
  sdp: Type.String({ maxLength: 60_000 }),
});
export type SessionDescription = Static<typeof SessionDescription>;

/** RTCIceServer[] (STUN bare, TURN with ephemeral credentials no longer-lived than the token). */
export const IceServerList = Type.Array(
  Type.Object({
    urls: Type.Array(Type.String({ maxLength: 512 })),
    username: Type.Optional(Type.String()),
    credential: Type.Optional(Type.String()),
  }),
);

/** What the client shows with every producer: what it is, for the UI of the others. */
export const ProducerSource = Type.Union([
  Type.Literal('camera'),
  Type.Literal('microphone'),
  Type.Literal('screen'),
  Type.Literal('screen-audio'),
  Type.Literal('other'),
]);
export type ProducerSource = Static<typeof ProducerSource>;
