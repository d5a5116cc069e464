/**
 * Tokens a team's backend mints (Node only: HMAC-SHA256 from node:crypto): the bearer tokens
 * its clients join rooms with (the gateway's HS256 tokens, AUTH_HS256_SECRET) and the tokens
 * of its own server API requests (signed with an API key's secret). Both are compact JWTs,
 * HS256; their claims are checked against the protocol's schemas before they are signed, so a
 * token this mints is one the platform reads.
 */
import { createHmac } from 'node:crypto';
import {
  API_SECRET_MIN_LENGTH,
  AdminClaims,
  formatIssues,
  tokenClaims,
  validator,
  type AdminGrants,
  type TokenClaims,
  type TokenGrants,
} from '@switchboard/protocol';

/** The shortest HS256 secret the platform takes (RFC 7518: as long as the hash). */
const MIN_SECRET_LENGTH = 32;
/** The default life of an API token: well under the API's API_TOKEN_MAX_TTL_S (600). */
export const DEFAULT_API_TOKEN_TTL_S = 60;

const adminClaims = validator(AdminClaims);

const b64url = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');

/** A compact HS256 JWT of `payload`. */
function signHs256(payload: Record<string, unknown>, secret: string): string {
  const signed = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  const signature = createHmac('sha256', secret).update(signed).digest('base64url');
  return `${signed}.${signature}`;
}

function checkSecret(what: string, secret: string, min: number): void {
  if (secret.length < min)
    throw new TypeError(`${what}: the secret is shorter than ${min} characters`);
}

function checkTtl(what: string, ttlS: number): void {
  if (!Number.isInteger(ttlS) || ttlS < 1)
    throw new TypeError(`${what}: ttlS must be a positive integer`);
}

export interface ClientTokenOptions {
  /** The gateway's AUTH_HS256_SECRET. */
  secret: string;
  /** The gateway's AUTH_AUDIENCE (`aud`; default there: `switchboard`). */
  audience: string;
  /** `iss`: the gateway's AUTH_ISSUER, when it checks one. */
  issuer?: string;
  /** `sub`: the user the connection acts as. */
  userId: TokenClaims['sub'];
  /** The rooms it may join: ids, or `prefix*` patterns (absent: none). */
  rooms?: TokenClaims['rooms'];
  /** Display name shown to the other members. */
  name?: TokenClaims['name'];
  /** Application data about the member, shown to the others (≤ 4 KiB). */
  metadata?: TokenClaims['metadata'];
  /** What it may do in the room (absent: everything a member may). */
  grants?: TokenGrants;
  /** The host name it may register under (hosts). */
  host?: TokenClaims['host'];
  /** The hosts it may call. */
  call?: TokenClaims['call'];
  /** Its life, seconds (at most the gateway's AUTH_MAX_TOKEN_TTL_S). */
  ttlS: number;
  /** `nbf` this many seconds from now (none by default). */
  notBeforeS?: number;
}

/** A bearer token for a client's `join` (claims per the protocol's TokenClaims). */
export function mintClientToken(opts: ClientTokenOptions): string {
  checkSecret('mintClientToken', opts.secret, MIN_SECRET_LENGTH);
  checkTtl('mintClientToken', opts.ttlS);
  const claims: TokenClaims = { sub: opts.userId };
  if (opts.rooms !== undefined) claims.rooms = opts.rooms;
  if (opts.name !== undefined) claims.name = opts.name;
  if (opts.metadata !== undefined) claims.metadata = opts.metadata;
  if (opts.grants !== undefined) claims.grants = opts.grants;
  if (opts.host !== undefined) claims.host = opts.host;
  if (opts.call !== undefined) claims.call = opts.call;
  const parsed = tokenClaims.parse(claims);
  if (!parsed.ok) throw new TypeError(`mintClientToken: ${formatIssues(parsed.issues)}`);
  const now = Math.floor(Date.now() / 1000);
  return signHs256(
    {
      ...claims,
      aud: opts.audience,
      ...(opts.issuer === undefined ? {} : { iss: opts.issuer }),
      iat: now,
      ...(opts.notBeforeS === undefined ? {} : { nbf: now + opts.notBeforeS }),
      exp: now + opts.ttlS,
    },
    opts.secret,
  );
}

export interface ApiTokenOptions {
  /** The API key's id (`iss`). */
  keyId: string;
  /** The API key's secret. */
  secret: string;
  /** What the token allows (`admin`): the grants, and the rooms they cover. */
  grants: AdminGrants;
  /** Its life, seconds (default 60; the API refuses more than API_TOKEN_MAX_TTL_S). */
  ttlS?: number;
  /** Who is calling, for the API's logs. */
  sub?: string;
}

/** A token for server API requests (claims per the protocol's AdminClaims). */
export function mintApiToken(opts: ApiTokenOptions): string {
  checkSecret('mintApiToken', opts.secret, API_SECRET_MIN_LENGTH);
  const ttlS = opts.ttlS ?? DEFAULT_API_TOKEN_TTL_S;
  checkTtl('mintApiToken', ttlS);
  const now = Math.floor(Date.now() / 1000);
  const claims: AdminClaims = {
    iss: opts.keyId,
    ...(opts.sub === undefined ? {} : { sub: opts.sub }),
    iat: now,
    exp: now + ttlS,
    admin: opts.grants,
  };
  const parsed = adminClaims.parse(claims);
  if (!parsed.ok) throw new TypeError(`mintApiToken: ${formatIssues(parsed.issues)}`);
  return signHs256({ ...claims }, opts.secret);
}
