/**
 * The bearer token and the names a token's grants refer to. Kept apart (typebox only) so
 * every other protocol module may import them without an import cycle.
 */
import Type from 'typebox';

/** A bearer token as a client presents it (a compact JWT). */
export const Bearer = Type.String({ minLength: 1, maxLength: 8192 });

/**
 * A host's name (a camera, a robot, a kiosk, an agent; see hosts.ts): what callers call it
 * by. One NATS subject token, so letters, digits, `_` and `-` only.
 */
export const HostName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

/**
 * One call grant: a host name, or a prefix ending with `*` meaning every host whose name
 * starts with the prefix (`"*"` alone: every host). Matched like room grants.
 */
export const CallGrant = Type.String({ pattern: '^[A-Za-z0-9_-]{0,64}\\*?$', minLength: 1 });

/**
 * An API key's id: what the server API's request tokens name in `iss` and webhook signatures
 * are made with (its secret stays with the key's holder and the platform).
 */
export const ApiKeyId = Type.String({ pattern: '^[A-Za-z0-9_-]{3,64}$' });
/** An API key's secret: at least 32 characters (an HMAC-SHA256 key as long as the hash). */
export const API_SECRET_MIN_LENGTH = 32;
