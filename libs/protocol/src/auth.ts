/**
 * The bearer token a client presents in `join`: a JWT (HS256 or RS256) that the gateway
 * verifies — signature, `exp`, `nbf`, `aud`, `iss` — before it reads these claims. Other
 * claims may be present and are ignored.
 */
import Type, { type Static } from 'typebox';
import { validator } from './validate.ts';

/**
 * One room grant: an exact room id, or a prefix ending with `*` meaning every room id that
 * starts with the prefix (`"*"` alone: every room). One character longer than a room id, so
 * that a full room id followed by `*` still fits.
 */
export const RoomGrant = Type.String({ minLength: 1, maxLength: 129 });

/** The claims Switchboard reads from a verified token. */
export const TokenClaims = Type.Object({
  /** The user id the connection acts as (a UserId). */
  sub: Type.String({ minLength: 1, maxLength: 128 }),
  /** The rooms the token may join (see RoomGrant). */
  rooms: Type.Array(RoomGrant, { minItems: 1, maxItems: 256 }),
  /** Display name shown to other peers. */
  name: Type.Optional(Type.String({ maxLength: 128 })),
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
