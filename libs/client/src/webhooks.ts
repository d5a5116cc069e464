/**
 * Signing and verifying Switchboard's webhooks (the events service signs with this code, your
 * backend verifies with it). Node only (node:crypto): import it as
 * `@switchboard/client/webhooks`, not from the browser SDK's entry.
 *
 * The scheme (Stripe-style): the header `switchboard-signature: t=<unix seconds>,v1=<hex>`
 * where each `v1` is HMAC-SHA256(secret, `${t}.${rawBody}`) of one signing secret (several
 * while a key rotates). A receiver checks that `t` is within its tolerance of its own clock
 * (a captured request replayed later is refused) and that one `v1` matches, in constant
 * time, over the raw body exactly as received — before parsing it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  WEBHOOK_TOLERANCE_S,
  WebhookHeaders,
  formatIssues,
  webhookBody,
  type WebhookBody,
} from '@switchboard/protocol';

export { WebhookHeaders, WEBHOOK_TOLERANCE_S };

type Secrets = string | readonly string[];

function hmacHex(secret: string, t: number, body: string | Uint8Array): string {
  const mac = createHmac('sha256', secret).update(`${String(t)}.`);
  mac.update(body);
  return mac.digest('hex');
}

function secretsOf(secret: Secrets): readonly string[] {
  const list = typeof secret === 'string' ? [secret] : secret;
  if (list.length === 0 || list.some((s) => s === '')) {
    throw new TypeError('a webhook secret must not be empty');
  }
  return list;
}

/**
 * The `switchboard-signature` header of `body` (the exact bytes sent) at `nowS` (unix
 * seconds): one `v1=` per secret (give the new and the old one while rotating).
 */
export function signWebhook(body: string | Uint8Array, secret: Secrets, nowS: number): string {
  if (!Number.isSafeInteger(nowS) || nowS < 0) throw new RangeError('nowS: unix seconds');
  const v1 = secretsOf(secret).map((s) => `v1=${hmacHex(s, nowS, body)}`);
  return [`t=${String(nowS)}`, ...v1].join(',');
}

export interface VerifyOptions {
  /** How far `t` may be from now, either way, seconds (default 300). */
  toleranceS?: number;
  /** Now, unix seconds (default: this machine's clock). */
  nowS?: number;
}

/** Why a signature was refused. */
export type WebhookSignatureProblem =
  'missing' | 'malformed' | 'timestamp outside the tolerance' | 'no matching signature';

/** The header's timestamp and `v1` signatures; undefined when it is not of that form. */
export function parseSignatureHeader(header: string): { t: number; v1: string[] } | undefined {
  let t: number | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (t !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      t = Number(value);
    } else if (key === 'v1') {
      if (/^[0-9a-f]{64}$/.test(value)) v1.push(value);
    }
    // Other schemes (a later v2) are ignored, not refused.
  }
  return t === undefined || v1.length === 0 ? undefined : { t, v1 };
}

/**
 * What is wrong with a webhook's signature, or undefined when one of its `v1` signatures
 * is `rawBody`'s under one of `secret` and its timestamp is within the tolerance.
 */
export function webhookSignatureProblem(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: Secrets,
  opts: VerifyOptions = {},
): WebhookSignatureProblem | undefined {
  const secrets = secretsOf(secret);
  if (header === undefined || header === null || header === '') return 'missing';
  const parsed = parseSignatureHeader(header);
  if (parsed === undefined) return 'malformed';
  const nowS = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - parsed.t) > (opts.toleranceS ?? WEBHOOK_TOLERANCE_S)) {
    return 'timestamp outside the tolerance';
  }
  let match = false;
  for (const s of secrets) {
    const expected = Buffer.from(hmacHex(s, parsed.t, rawBody), 'hex');
    for (const v of parsed.v1) {
      // Every candidate is compared (no early exit): the time does not tell which matched.
      if (timingSafeEqual(expected, Buffer.from(v, 'hex'))) match = true;
    }
  }
  return match ? undefined : 'no matching signature';
}

/** Whether a webhook's signature is valid (see webhookSignatureProblem). */
export function verifyWebhook(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: Secrets,
  opts: VerifyOptions = {},
): boolean {
  return webhookSignatureProblem(rawBody, header, secret, opts) === undefined;
}

export class WebhookVerificationError extends Error {
  readonly problem: WebhookSignatureProblem | 'invalid body';

  constructor(problem: WebhookSignatureProblem | 'invalid body', detail?: string) {
    super(`webhook refused: ${problem}${detail === undefined ? '' : ` (${detail})`}`);
    this.name = 'WebhookVerificationError';
    this.problem = problem;
  }
}

/**
 * Verify a webhook, then parse and validate its body against the protocol's schema: the
 * body, typed by its `event`. Throws a WebhookVerificationError.
 */
export function parseWebhook(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: Secrets,
  opts: VerifyOptions = {},
): WebhookBody {
  const problem = webhookSignatureProblem(rawBody, header, secret, opts);
  if (problem !== undefined) throw new WebhookVerificationError(problem);
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString());
  } catch {
    throw new WebhookVerificationError('invalid body', 'not JSON');
  }
  const parsed = webhookBody.parse(json);
  if (!parsed.ok) throw new WebhookVerificationError('invalid body', formatIssues(parsed.issues));
  return parsed.value;
}
