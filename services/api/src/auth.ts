/**
 * The server API's bearer tokens: a compact JWT signed with HS256 — and nothing else: the
 * algorithm is pinned, so `none`, RS256 or any other `alg` is refused before a key is looked
 * at (no RS/HS confusion) — with the secret of the API key its `iss` names (API_KEYS). `exp`
 * is required, `nbf` honoured (both within API_CLOCK_TOLERANCE_S), and the token may live at
 * most API_TOKEN_MAX_TTL_S (`exp - iat`, or `exp - now` without `iat` or with an `iat` in the
 * future). Its claims must be AdminClaims (libs/protocol api.ts).
 *
 * A refusal is an AuthFailure with a short reason from a fixed set (a metrics label) and a
 * message for the caller; neither ever holds the token or a secret.
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { AdminClaims, formatIssues, validator } from '@switchboard/protocol';

/** Longest token read at all; anything longer is refused before it is parsed. */
export const MAX_TOKEN_LENGTH = 8192;

/** Why a request was not authenticated: the `reason` label of sb_api_auth_failures_total. */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'ttl'
  | 'claims';

export const AUTH_FAILURE_REASONS: readonly AuthFailureReason[] = [
  'missing',
  'malformed',
  'algorithm',
  'unknown_key',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'ttl',
  'claims',
];

export class AuthFailure extends Error {
  readonly reason: AuthFailureReason;
  constructor(reason: AuthFailureReason, message: string) {
    super(message);
    this.name = 'AuthFailure';
    this.reason = reason;
  }
}

/** Who is calling: the verified token's key and claims. */
export interface Caller {
  keyId: string;
  /** The token's `sub`, when it has one (for the logs). */
  sub: string | undefined;
  claims: AdminClaims;
}

export interface ApiAuthOptions {
  /** API key id → its secret. */
  keys: ReadonlyMap<string, string>;
  maxTtlS: number;
  clockToleranceS: number;
}

const adminClaims = validator(AdminClaims);

export class ApiAuth {
  readonly #keys: ReadonlyMap<string, Uint8Array>;
  readonly #maxTtlS: number;
  readonly #toleranceS: number;

  constructor(opts: ApiAuthOptions) {
    const encoder = new TextEncoder();
    this.#keys = new Map([...opts.keys].map(([id, secret]) => [id, encoder.encode(secret)]));
    this.#maxTtlS = opts.maxTtlS;
    this.#toleranceS = opts.clockToleranceS;
  }

  /** The caller of a request with this Authorization header, or an AuthFailure thrown. */
  async authenticate(authorization: string | undefined): Promise<Caller> {
    if (authorization === undefined || authorization === '') {
      throw new AuthFailure('missing', 'an Authorization: Bearer <token> header is required');
    }
    const match = /^Bearer +([^\s]+) *$/i.exec(authorization);
    const token = match?.[1];
    if (token === undefined) {
      throw new AuthFailure('malformed', 'the Authorization header is not "Bearer <token>"');
    }
    if (token.length > MAX_TOKEN_LENGTH) throw new AuthFailure('malformed', 'token too long');
    // A compact JWS has three parts (a JWE five, an unsecured JWT an empty third).
    if (token.split('.').length !== 3) throw new AuthFailure('malformed', 'malformed token');
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch {
      throw new AuthFailure('malformed', 'malformed token');
    }
    if (alg !== 'HS256') throw new AuthFailure('algorithm', 'only HS256 tokens are accepted');
    if (typeof iss !== 'string') throw new AuthFailure('claims', 'token has no iss (the API key)');
    const key = this.#keys.get(iss);
    if (key === undefined) throw new AuthFailure('unknown_key', 'unknown API key');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        issuer: iss,
        requiredClaims: ['exp'],
        clockTolerance: this.#toleranceS,
      }));
    } catch (err) {
      throw failureOf(err);
    }
    const parsed = adminClaims.parse(payload);
    if (!parsed.ok) {
      throw new AuthFailure('claims', `invalid claims: ${formatIssues(parsed.issues)}`);
    }
    const claims = parsed.value;
    // From `iat`, but never from later than now (give or take the clock tolerance): an `iat`
    // in the future would otherwise make a token live as long as its minter likes.
    const now = Math.floor(Date.now() / 1000);
    const from = Math.min(claims.iat ?? now, now + this.#toleranceS);
    if (claims.exp - from > this.#maxTtlS) {
      throw new AuthFailure('ttl', `token lives longer than ${String(this.#maxTtlS)} s`);
    }
    return { keyId: iss, sub: claims.sub, claims };
  }
}

/** The AuthFailure a jose error stands for (its message never holds the token). */
function failureOf(err: unknown): AuthFailure {
  if (err instanceof errors.JWTExpired) return new AuthFailure('expired', 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') {
      return new AuthFailure('not_yet_valid', 'token not yet valid (nbf)');
    }
    return new AuthFailure(
      'claims',
      err.reason === 'missing' ? `token has no ${err.claim}` : `invalid ${err.claim}`,
    );
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthFailure('bad_signature', 'bad signature');
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new AuthFailure('algorithm', 'only HS256 tokens are accepted');
  }
  return new AuthFailure('malformed', 'malformed token');
}
