/**
 * One webhook POST: the body signed at send time (`@switchboard/client/webhooks`, the code
 * receivers verify with), the event-id and key headers; redirects are not followed (a 3xx
 * is a failure); the response body is read and dropped, at most MAX_RESPONSE_BYTES of it;
 * the request is aborted at the timeout and when `signal` aborts (shutdown, lost lease).
 * The result never holds the URL (it may hold a token).
 */
import { signWebhook } from '@switchboard/client/webhooks';
import { WebhookHeaders, redactUrls } from '@switchboard/protocol';
import type { WebhookEndpoint } from './settings.ts';

/** What is read of a response body before the connection is let go. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export type SendResult =
  | { ok: true; status: number; ms: number }
  | { ok: false; error: string; status?: number; ms: number };

interface Target {
  href: string;
  /** Basic credentials of a URL with `user:password@` (fetch takes none in the URL). */
  authorization: string | undefined;
}

export interface SenderOptions {
  keyId: string;
  secret: string;
  timeoutMs: number;
  userAgent: string;
}

export class WebhookSender {
  readonly #opts: SenderOptions;
  readonly #targets = new Map<string, Target>();

  constructor(opts: SenderOptions) {
    this.#opts = opts;
  }

  #target(endpoint: WebhookEndpoint): Target {
    let t = this.#targets.get(endpoint.hash);
    if (t === undefined) {
      const url = new URL(endpoint.url);
      let authorization: string | undefined;
      if (url.username !== '' || url.password !== '') {
        const user = decodeURIComponent(url.username);
        const pass = decodeURIComponent(url.password);
        authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
        url.username = '';
        url.password = '';
      }
      t = { href: url.href, authorization };
      this.#targets.set(endpoint.hash, t);
    }
    return t;
  }

  /** POST `body` (the webhook of event `eventId`) to `endpoint`; never throws. */
  async post(
    endpoint: WebhookEndpoint,
    eventId: string,
    body: string,
    signal: AbortSignal,
  ): Promise<SendResult> {
    const started = performance.now();
    const aborted = (): boolean => signal.aborted;
    const ms = (): number => Math.round(performance.now() - started);
    if (signal.aborted) return { ok: false, error: 'aborted', ms: 0 };
    const target = this.#target(endpoint);
    const timeout = AbortSignal.timeout(this.#opts.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    let status: number | undefined;
    try {
      const res = await fetch(target.href, {
        method: 'POST',
        redirect: 'manual',
        signal: both,
        headers: {
          'content-type': 'application/json',
          'user-agent': this.#opts.userAgent,
          [WebhookHeaders.signature]: signWebhook(
            body,
            this.#opts.secret,
            Math.floor(Date.now() / 1000),
          ),
          [WebhookHeaders.eventId]: eventId,
          [WebhookHeaders.key]: this.#opts.keyId,
          ...(target.authorization === undefined ? {} : { authorization: target.authorization }),
        },
        body,
      });
      status = res.status;
      const ok = status >= 200 && status < 300;
      try {
        await drain(res);
      } catch (err) {
        // The answer is its status: a 2xx whose body broke off was still received.
        if (!ok) throw err;
      }
      if (ok) return { ok: true, status, ms: ms() };
      const redirect = res.type === 'opaqueredirect' || (status >= 300 && status < 400);
      return {
        ok: false,
        status,
        error: redirect
          ? `HTTP ${String(status)} (redirects are not followed)`
          : `HTTP ${String(status)}`,
        ms: ms(),
      };
    } catch (err) {
      let error: string;
      if (aborted()) error = 'aborted (shutdown or leadership lost)';
      else if (timeout.aborted) error = `timeout after ${String(this.#opts.timeoutMs)} ms`;
      else error = `network error: ${describe(err)}`;
      return { ok: false, error, ...(status === undefined ? {} : { status }), ms: ms() };
    }
  }
}

/** Read and drop a response body, at most MAX_RESPONSE_BYTES. */
async function drain(res: Response): Promise<void> {
  const body = res.body;
  if (body === null) return;
  const reader = body.getReader();
  let read = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > MAX_RESPONSE_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** An error's code or message (undici's `fetch failed` says why in its cause), no URL. */
function describe(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause ?? err;
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return redactUrls(message).slice(0, 200);
}
