/**
 * The bearer token a client presents in `join`: a JWT (HS256 or RS256) that the gateway
 * verifies — signature, `exp`, `nbf`, `aud`, `iss` — before it reads these claims. Other
 * claims may be present and are ignored.
 */
import Type, { type Static } from 'typebox';
import { ProducerSource } from './webrtc.ts';
import { validator } from './validate.ts';
import { CallGrant, HostName } from './credentials.ts';

/**
 * One room grant: an exact room id, or a prefix ending with `*` meaning every room id that
 * starts with the prefix (`"*"` alone: every room). One character longer than a room id, so
 * that a full room id followed by `*` still fits.
 */
export const RoomGrant = Type.String({ minLength: 1, maxLength: 129 });

/**
 * What a member may do in its room (the token's `grants` claim, after LiveKit's video grant).
 * Every field is optional; what is left out takes the default below.
 */
export const TokenGrants = Type.Object({
  /** May publish media (default true). */
  canPublish: Type.Optional(Type.Boolean()),
  /** The sources it may publish (default: all of them). */
  canPublishSources: Type.Optional(Type.Array(ProducerSource, { maxItems: 8 })),
  /** May receive the others' media (default true). */
  canSubscribe: Type.Optional(Type.Boolean()),
  /** May publish on data channels (default true). */
  canPublishData: Type.Optional(Type.Boolean()),
  /**
   * Invisible to the other members (default false): left out of `joinR.sessions`, no
   * eventLeave when it goes; it may not publish anything nor signal peer to peer.
   */
  hidden: Type.Optional(Type.Boolean()),
  /**
   * A role for plain RTP (non-browser) members: a `recorder` may receive over plain RTP, a
   * `broadcaster` may send over it. Members have neither (the default).
   */
  role: Type.Optional(
    Type.Union([Type.Literal('member'), Type.Literal('recorder'), Type.Literal('broadcaster')]),
  ),
});
export type TokenGrants = Static<typeof TokenGrants>;

/** A session's grants, every field resolved: kept with the session, checked on each action. */
export const SessionGrants = Type.Object({
  publish: Type.Boolean(),
  sources: Type.Array(ProducerSource, { maxItems: 8 }),
  subscribe: Type.Boolean(),
  data: Type.Boolean(),
  hidden: Type.Boolean(),
  role: Type.Union([Type.Literal('member'), Type.Literal('recorder'), Type.Literal('broadcaster')]),
  /** The hosts it may call (the token's `call`; absent in sessions stored before hosts). */
  call: Type.Optional(Type.Array(CallGrant, { maxItems: 64 })),
});
export type SessionGrants = Static<typeof SessionGrants>;

const ALL_SOURCES: ProducerSource[] = ['camera', 'microphone', 'screen', 'screen-audio', 'other'];

/** The grants a token's claim stands for (the defaults where the claim is silent). */
export function sessionGrants(
  g: TokenGrants | undefined,
  call: readonly string[] = [],
): SessionGrants {
  const hidden = g?.hidden ?? false;
  return {
    ...(call.length === 0 ? {} : { call: [...call] }),
    publish: !hidden && (g?.canPublish ?? true),
    sources: [...new Set(g?.canPublishSources ?? ALL_SOURCES)],
    subscribe: g?.canSubscribe ?? true,
    data: !hidden && (g?.canPublishData ?? true),
    hidden,
    role: g?.role ?? 'member',
  };
}

/**
 * A session's grants once the server API's change `o` (TokenGrants, kept with the session)
 * is applied: each field `o` has replaces the token's. Hidden still means no publishing.
 */
export function withGrantOverride(g: SessionGrants, o: TokenGrants | undefined): SessionGrants {
  if (o === undefined) return g;
  const hidden = o.hidden ?? g.hidden;
  return {
    ...g,
    publish: !hidden && (o.canPublish ?? g.publish),
    sources: o.canPublishSources === undefined ? g.sources : [...new Set(o.canPublishSources)],
    subscribe: o.canSubscribe ?? g.subscribe,
    data: !hidden && (o.canPublishData ?? g.data),
    hidden,
    role: o.role ?? g.role,
  };
}

/** The claims Switchboard reads from a verified token. */
export const TokenClaims = Type.Object({
  /** The user id the connection acts as (a UserId). */
  sub: Type.String({ minLength: 1, maxLength: 128 }),
  /** The rooms the token may join (see RoomGrant); absent: none. */
  rooms: Type.Optional(Type.Array(RoomGrant, { maxItems: 256 })),
  /** The host name the token may register under with `hostOnline` (hosts.ts); absent: none. */
  host: Type.Optional(HostName),
  /** The hosts the token may call and list (see CallGrant); absent: none. */
  call: Type.Optional(Type.Array(CallGrant, { maxItems: 64 })),
  /** Display name shown to other peers. */
  name: Type.Optional(Type.String({ maxLength: 128 })),
  /** Application data about the member, shown to the other members as it is (≤ 4 KiB). */
  metadata: Type.Optional(Type.String({ maxLength: 4096 })),
  /** What the holder may do in the room (see TokenGrants); absent: everything a member may. */
  grants: Type.Optional(TokenGrants),
});
export type TokenClaims = Static<typeof TokenClaims>;
export const tokenClaims = validator(TokenClaims);

/**
 * Whether a token's room grants cover `roomId`: an entry equal to it, or an entry ending
 * with `*` whose prefix (the entry without the `*`) starts it. Only a trailing `*` is a
 * wildcard; a `*` anywhere else is matched literally.
 */
export function roomGranted(rooms: readonly string[], roomId: string): boolean {
  if (roomId === '') return false;
  return rooms.some((grant) =>
    grant.endsWith('*') ? roomId.startsWith(grant.slice(0, -1)) : grant === roomId,
  );
}

/** Whether a token's call grants cover host `name` (the same matching as roomGranted). */
export function hostGranted(call: readonly string[], name: string): boolean {
  return roomGranted(call, name);
}
