/**
 * Verification of bearer tokens (`join`, `refreshToken`, `reconnect`): a JWT signed with
 * HS256 (a shared secret), RS256 (one of a set of RSA public keys), or any asymmetric
 * algorithm of a key published in a JWKS (AUTH_JWKS_URL, fetched and cached by `kid`, fetched
 * again when a token names a kid it has not seen: keys rotate without a restart). The
 * algorithm is pinned to the key it is checked with — an HS256 token is only ever checked
 * with the secret, an asymmetric one only with public keys — so a token cannot choose how it
 * is verified (no `none`, no RS/HS confusion).
 *
 * Signatures: HS256 with node's HMAC, synchronously (it is every join's check: jose's Web
 * Crypto verify is a round trip through libuv's thread pool, some 60–90 µs and a wake-up on
 * the join's path against 3 µs here); RS256 and JWKS keys with jose's `compactVerify`. The
 * registered claims are then checked here, the same way for all three (`claimsOf`).
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import {
  calculateJwkThumbprint,
  compactVerify,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  importSPKI,
} from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import {
  ProtocolError,
  formatIssues,
  roomGranted,
  sessionGrants,
  tokenClaims,
  type SessionGrants,
} from '@switchboard/protocol';
import { ConfigError } from '@switchboard/service';

/** Longest token accepted; anything longer is rejected before it is parsed. */
export const MAX_TOKEN_LENGTH = 8192;
/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash (256 bits). */
const MIN_HS256_SECRET_LENGTH = 32;
const MIN_RSA_MODULUS_BITS = 2048;

export interface TokenVerifierConfig {
  /** AUTH_HS256_SECRET: the shared secret of HS256 tokens. */
  hs256Secret?: string | undefined;
  /** AUTH_RS256_PUBLIC_KEYS: one or more PEM `PUBLIC KEY` (SPKI) blocks, concatenated. */
  rs256PublicKeys?: string | undefined;
  /** AUTH_AUDIENCE: the `aud` every token must include. */
  audience: string;
  /** AUTH_ISSUER: the `iss` every token must have, when set. */
  issuer?: string | undefined;
  /** AUTH_CLOCK_TOLERANCE_S: clock skew allowed on `exp` and `nbf`, seconds. */
  clockToleranceS: number;
  /** AUTH_MAX_TOKEN_TTL_S: the longest `exp - iat` (or `exp - now` without `iat`), seconds. */
  maxTokenTtlS?: number | undefined;
  /** AUTH_JWKS_URL: a JWKS of public keys (asymmetric algorithms), refreshed on unknown kids. */
  jwksUrl?: string | undefined;
  /** How long after a fetch the JWKS is not fetched again for an unknown kid, ms. */
  jwksCooldownMs?: number | undefined;
  /** The longest a fetched JWKS is trusted before it is fetched again, ms. */
  jwksMaxAgeMs?: number | undefined;
}

/** Asymmetric algorithms accepted from a JWKS. */
const JWKS_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
/** The default longest token life (AUTH_MAX_TOKEN_TTL_S). */
export const DEFAULT_MAX_TOKEN_TTL_S = 86_400;

/** What a verified token allows. */
export interface Grant {
  /** The token's `sub`. */
  userId: string;
  /** The token's `rooms`: exact room ids or `prefix*` patterns (see roomGranted). */
  rooms: readonly string[];
  /** The token's `name`, when it has one. */
  name?: string;
  /** The token's `metadata`, when it has one. */
  metadata?: string;
  /** When the token expires (its `exp`), milliseconds since the epoch. */
  expiresAt: number;
  /** What the holder may do in the room (the `grants` claim, defaults filled in). */
  grants: SessionGrants;
  /** The host name it may register under (`host` claim). */
  host?: string;
  /** The hosts it may call (`call` claim; empty: none). */
  call: readonly string[];
}

interface RsaKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` a token names it by. */
  kid: string;
  key: CryptoKey;
}

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----\r?\n?([A-Za-z0-9+/=\s]+?)-----END PUBLIC KEY-----/g;

function fail(reason: string): ProtocolError {
  return new ProtocolError('AUTH_FAILED', reason);
}

/** Parse the PEM text of AUTH_RS256_PUBLIC_KEYS; throws ConfigError when it does not parse. */
async function importRsaKeys(pem: string): Promise<RsaKey[]> {
  const bad = (message: string): ConfigError =>
    new ConfigError([{ variable: 'AUTH_RS256_PUBLIC_KEYS', message }]);
  const blocks = [...pem.matchAll(PEM_BLOCK)].map((m) => m[0]);
  if (blocks.length === 0) throw bad('contains no PEM "PUBLIC KEY" block');
  if (pem.replace(PEM_BLOCK, '').trim() !== '') {
    throw bad('contains text outside its PEM "PUBLIC KEY" blocks');
  }
  const keys: RsaKey[] = [];
  for (const [i, block] of blocks.entries()) {
    let key: CryptoKey;
    try {
      key = await importSPKI(block, 'RS256', { extractable: true });
    } catch {
      throw bad(`key ${i + 1} of ${blocks.length} is not an RSA public key in SPKI PEM`);
    }
    const bits = (key.algorithm as { modulusLength?: unknown }).modulusLength;
    if (typeof bits !== 'number' || bits < MIN_RSA_MODULUS_BITS) {
      throw bad(`key ${i + 1} of ${blocks.length} is shorter than ${MIN_RSA_MODULUS_BITS} bits`);
    }
    const kid = await calculateJwkThumbprint(key, 'sha256');
    if (!keys.some((k) => k.kid === kid)) keys.push({ kid, key });
  }
  return keys;
}

/** The short, key-free reason a jose error stands for. */
function reasonOf(err: unknown): string {
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return 'malformed token';
  }
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown key id';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
    return 'key set unavailable';
  }
  return 'token rejected';
}

/** base64url without padding, nothing else (Buffer's decoder skips what it does not know). */
const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** An HS256 signature: 32 bytes, 43 base64url characters. */
const HS256_SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

/** What the registered claims must be (RFC 7519 §4.1), as configured. */
interface ClaimRules {
  audience: string;
  issuer: string | undefined;
  clockToleranceS: number;
}

/**
 * The claims of a verified payload, once its registered claims hold: `exp` required and in
 * the future, `nbf` (when present) passed, `iat` a number (when present), `aud` naming the
 * audience, `iss` the issuer (when one is configured) — each within the clock tolerance.
 */
function claimsOf(payload: Uint8Array, rules: ClaimRules): JWTPayload {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw fail('malformed token');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw fail('malformed token');
  }
  const c = claims as JWTPayload;
  const now = Math.floor(Date.now() / 1000);
  const tolerance = rules.clockToleranceS;
  if (rules.issuer !== undefined) {
    if (c.iss === undefined) throw fail('token has no iss');
    if (c.iss !== rules.issuer) throw fail('wrong issuer');
  }
  if (c.aud === undefined) throw fail('token has no aud');
  const aud: unknown = c.aud;
  if (!(aud === rules.audience || (Array.isArray(aud) && aud.includes(rules.audience)))) {
    throw fail('wrong audience');
  }
  if (c.iat !== undefined && !isNumber(c.iat)) throw fail('invalid iat');
  if (c.nbf !== undefined) {
    if (!isNumber(c.nbf)) throw fail('invalid nbf');
    if (c.nbf > now + tolerance) throw fail('token not yet valid');
  }
  if (c.exp === undefined) throw fail('token has no exp');
  if (!isNumber(c.exp)) throw fail('invalid exp');
  if (c.exp <= now - tolerance) throw fail('token expired');
  return c;
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/**
 * Verifies bearer tokens against the configured keys and turns their claims into a Grant.
 * Every rejection is a ProtocolError AUTH_FAILED with a short reason.
 */
type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

export class TokenVerifier {
  readonly #hs256: KeyObject | undefined;
  readonly #rs256: readonly RsaKey[];
  readonly #jwks: RemoteKeys | undefined;
  readonly #rules: ClaimRules;
  readonly #maxTtlS: number;

  private constructor(
    hs256: KeyObject | undefined,
    rs256: readonly RsaKey[],
    jwks: RemoteKeys | undefined,
    rules: ClaimRules,
    maxTtlS: number,
  ) {
    this.#hs256 = hs256;
    this.#rs256 = rs256;
    this.#jwks = jwks;
    this.#rules = rules;
    this.#maxTtlS = maxTtlS;
  }

  /**
   * Import the keys. Throws ConfigError when neither key source is set, the secret is too
   * short or the PEM text does not parse.
   */
  static async create(cfg: TokenVerifierConfig): Promise<TokenVerifier> {
    const secret = cfg.hs256Secret === '' ? undefined : cfg.hs256Secret;
    const pem = cfg.rs256PublicKeys?.trim() === '' ? undefined : cfg.rs256PublicKeys;
    const jwksUrl = cfg.jwksUrl === '' ? undefined : cfg.jwksUrl;
    if (secret === undefined && pem === undefined && jwksUrl === undefined) {
      throw new ConfigError([
        {
          variable: 'AUTH_HS256_SECRET',
          message:
            'is required unless AUTH_RS256_PUBLIC_KEYS or AUTH_JWKS_URL is set (no key to verify tokens)',
        },
      ]);
    }
    let jwks: RemoteKeys | undefined;
    if (jwksUrl !== undefined) {
      let url: URL;
      try {
        url = new URL(jwksUrl);
      } catch {
        throw new ConfigError([{ variable: 'AUTH_JWKS_URL', message: 'is not a URL' }]);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new ConfigError([{ variable: 'AUTH_JWKS_URL', message: 'must be http(s)' }]);
      }
      jwks = createRemoteJWKSet(url, {
        cooldownDuration: cfg.jwksCooldownMs ?? 30_000,
        cacheMaxAge: cfg.jwksMaxAgeMs ?? 600_000,
        timeoutDuration: 5000,
      });
    }
    if (secret !== undefined && secret.length < MIN_HS256_SECRET_LENGTH) {
      throw new ConfigError([
        {
          variable: 'AUTH_HS256_SECRET',
          message: `must be at least ${MIN_HS256_SECRET_LENGTH} characters`,
        },
      ]);
    }
    const rs256 = pem === undefined ? [] : await importRsaKeys(pem);
    return new TokenVerifier(
      secret === undefined ? undefined : createSecretKey(Buffer.from(secret, 'utf8')),
      rs256,
      jwks,
      {
        audience: cfg.audience,
        issuer: cfg.issuer === undefined || cfg.issuer === '' ? undefined : cfg.issuer,
        clockToleranceS: cfg.clockToleranceS,
      },
      cfg.maxTokenTtlS ?? DEFAULT_MAX_TOKEN_TTL_S,
    );
  }

  /** Key ids (RFC 7638 thumbprints) of the RS256 keys, in configuration order. */
  get rs256KeyIds(): readonly string[] {
    return this.#rs256.map((k) => k.kid);
  }

  /** Verify a bearer token. Throws ProtocolError AUTH_FAILED when it is not acceptable. */
  async verify(token: string): Promise<Grant> {
    if (token.length > MAX_TOKEN_LENGTH) throw fail('token too long');
    // A compact JWS has three parts (decodeProtectedHeader would also read a JWE's five).
    if (token.split('.').length !== 3) throw fail('malformed token');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw fail('malformed token');
    }

    let signed: Uint8Array;
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') throw fail('malformed token');
    if (header.alg === 'HS256' && this.#hs256 !== undefined) {
      // No extension this verifier would have to understand (RFC 7515 §4.1.11).
      if (header.crit !== undefined || header.b64 !== undefined) throw fail('malformed token');
      signed = verifyHs256(token, this.#hs256);
    } else if (
      header.alg === 'RS256' &&
      this.#rs256.length > 0 &&
      (this.#jwks === undefined || kid === undefined || this.#rs256.some((k) => k.kid === kid))
    ) {
      signed = await this.#verifyRs256(token, kid);
    } else if (
      this.#jwks !== undefined &&
      typeof header.alg === 'string' &&
      JWKS_ALGORITHMS.includes(header.alg)
    ) {
      signed = await this.#verifyJwks(token, this.#jwks);
    } else {
      throw fail('algorithm not allowed');
    }

    const payload = claimsOf(signed, this.#rules);
    const parsed = tokenClaims.parse(payload);
    if (!parsed.ok) throw fail(`invalid claims: ${formatIssues(parsed.issues)}`);
    const claims = parsed.value;
    // claimsOf has checked `exp` is a number in the future.
    const exp = payload.exp ?? 0;
    const from = typeof payload.iat === 'number' ? payload.iat : Math.floor(Date.now() / 1000);
    if (exp - from > this.#maxTtlS) {
      throw fail(`token lives longer than ${String(this.#maxTtlS)} s`);
    }
    const grant: Grant = {
      userId: claims.sub,
      rooms: claims.rooms ?? [],
      expiresAt: exp * 1000,
      grants: sessionGrants(claims.grants, claims.call),
      call: claims.call ?? [],
    };
    if (claims.host !== undefined) grant.host = claims.host;
    if (claims.name !== undefined) grant.name = claims.name;
    if (claims.metadata !== undefined) grant.metadata = claims.metadata;
    return grant;
  }

  /** Whether a grant lets its holder join `roomId`. */
  mayJoin(grant: Grant, roomId: string): boolean {
    return roomGranted(grant.rooms, roomId);
  }

  async #verifyJwks(token: string, jwks: RemoteKeys): Promise<Uint8Array> {
    try {
      return (await compactVerify(token, jwks, { algorithms: JWKS_ALGORITHMS })).payload;
    } catch (err) {
      throw fail(reasonOf(err));
    }
  }

  async #verifyRs256(token: string, kid: string | undefined): Promise<Uint8Array> {
    const candidates = kid === undefined ? this.#rs256 : this.#rs256.filter((k) => k.kid === kid);
    if (candidates.length === 0) throw fail('unknown key id');
    for (const { key } of candidates) {
      try {
        return (await compactVerify(token, key, { algorithms: ['RS256'] })).payload;
      } catch (err) {
        // Without a kid every key is tried: only a bad signature moves on to the next one.
        if (err instanceof errors.JWSSignatureVerificationFailed) continue;
        throw fail(reasonOf(err));
      }
    }
    throw fail('bad signature');
  }
}

/** The payload of a compact JWS whose HS256 signature `key` made (its header is checked). */
function verifyHs256(token: string, key: KeyObject): Uint8Array {
  const [header = '', payload = '', signature = ''] = token.split('.');
  if (!BASE64URL.test(header) || !BASE64URL.test(payload)) throw fail('malformed token');
  if (!HS256_SIGNATURE.test(signature)) throw fail('bad signature');
  const expected = createHmac('sha256', key).update(`${header}.${payload}`).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'base64url'))) {
    throw fail('bad signature');
  }
  return Buffer.from(payload, 'base64url');
}
