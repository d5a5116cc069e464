/**
 * The webhook settings of the events service's configuration, checked together at start:
 * WEBHOOK_URLS needs WEBHOOK_API_KEY, a key of API_KEYS (or API_KEYS_FILE). A problem is a
 * ConfigError naming the variable (the service exits 78) — never a URL or a secret.
 */
import { createHash } from 'node:crypto';
import { webhookConsumer, type EventsConfig } from '@switchboard/protocol';
import { ConfigError, loadApiKeys, type ConfigIssue } from '@switchboard/service';

export interface WebhookEndpoint {
  /** The URL POSTed to. Never logged, never a metric label (it may hold a token). */
  readonly url: string;
  /** The first 16 hex digits of SHA-256 of the URL: its name in logs, metrics, streams. */
  readonly hash: string;
  /** Its durable consumer on the room-events stream. */
  readonly consumer: string;
}

export interface WebhookSettings {
  readonly endpoints: readonly WebhookEndpoint[];
  /** The API key id that signs (sent as switchboard-key) and its secret. */
  readonly keyId: string;
  readonly secret: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  readonly maxInFlight: number;
}

/** An endpoint's name: the first 16 hex digits of SHA-256 of its URL as configured. */
export function endpointHash(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 16);
}

/** The endpoints of WEBHOOK_URLS, checked (they are never echoed: a URL may hold a token). */
export function parseWebhookUrls(value: string): WebhookEndpoint[] {
  const issues: ConfigIssue[] = [];
  const endpoints: WebhookEndpoint[] = [];
  for (const [i, raw] of value
    .split(',')
    .map((u) => u.trim())
    .entries()) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      issues.push({ variable: 'WEBHOOK_URLS', message: `URL ${i + 1} is not a URL` });
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      issues.push({ variable: 'WEBHOOK_URLS', message: `URL ${i + 1} is not http(s)` });
      continue;
    }
    const hash = endpointHash(raw);
    if (endpoints.some((e) => e.hash === hash)) {
      issues.push({ variable: 'WEBHOOK_URLS', message: `URL ${i + 1} is given twice` });
      continue;
    }
    endpoints.push({ url: raw, hash, consumer: webhookConsumer(hash) });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return endpoints;
}

/** The webhook settings, or undefined when WEBHOOK_URLS is not set (webhooks are off). */
export function webhookSettings(config: EventsConfig): WebhookSettings | undefined {
  const urls = config.WEBHOOK_URLS?.trim();
  if (urls === undefined || urls === '') return undefined;
  const endpoints = parseWebhookUrls(urls);
  const keyId = config.WEBHOOK_API_KEY;
  if (keyId === undefined) {
    throw new ConfigError([
      {
        variable: 'WEBHOOK_API_KEY',
        message: 'is required with WEBHOOK_URLS: the API key (in API_KEYS) that signs webhooks',
      },
    ]);
  }
  const keys = loadApiKeys(config);
  const secret = keys.get(keyId);
  if (secret === undefined) {
    throw new ConfigError([
      {
        variable: 'WEBHOOK_API_KEY',
        message: `key ${keyId} is not in ${config.API_KEYS_FILE === undefined ? 'API_KEYS' : 'API_KEYS_FILE'}`,
      },
    ]);
  }
  if (config.WEBHOOK_BACKOFF_MIN_MS > config.WEBHOOK_BACKOFF_MAX_MS) {
    throw new ConfigError([
      { variable: 'WEBHOOK_BACKOFF_MIN_MS', message: 'must be at most WEBHOOK_BACKOFF_MAX_MS' },
    ]);
  }
  return {
    endpoints,
    keyId,
    secret,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
    backoffMinMs: config.WEBHOOK_BACKOFF_MIN_MS,
    backoffMaxMs: config.WEBHOOK_BACKOFF_MAX_MS,
    maxInFlight: config.WEBHOOK_MAX_IN_FLIGHT,
  };
}

/**
 * The delay before the next attempt after `failures` (≥ 1) failed ones: WEBHOOK_BACKOFF_MIN_MS
 * doubled per failure, plus up to half of it at random (so the retries of many rooms spread
 * out), never more than WEBHOOK_BACKOFF_MAX_MS.
 */
export function retryDelayMs(
  failures: number,
  s: Pick<WebhookSettings, 'backoffMinMs' | 'backoffMaxMs'>,
  random: () => number = Math.random,
): number {
  const base = Math.min(
    s.backoffMaxMs,
    s.backoffMinMs * 2 ** Math.min(Math.max(failures, 1) - 1, 40),
  );
  return Math.round(Math.min(s.backoffMaxMs, base * (1 + 0.5 * random())));
}
