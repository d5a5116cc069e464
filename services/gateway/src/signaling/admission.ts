/**
 * Who may open a WebSocket on /api, checked before the handshake completes:
 *
 * - OriginPolicy: the page's Origin must be allowed (WS_ALLOWED_ORIGINS; by default only the
 *   gateway's own origin), so another site's page cannot use a visitor's browser against the
 *   API. A request without an Origin is not from a browser page (native apps, servers): it
 *   is admitted, as it could send any Origin it liked anyway.
 * - Admission: per client IP, at most WS_MAX_CONNECTIONS_PER_IP open sockets, of which at
 *   most WS_MAX_UNJOINED_PER_IP not yet joined (or reconnected): one address cannot hold the
 *   gateway's sockets, nor keep many idle ones open for the join timeout.
 */

/** `scheme://host[:port]`, lower-cased, default port dropped; undefined when not a URL origin. */
export function normalizeOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

export class OriginPolicy {
  readonly #any: boolean;
  /** Undefined: only the request's own origin. */
  readonly #allowed: ReadonlySet<string> | undefined;

  /** `setting`: WS_ALLOWED_ORIGINS (comma-separated origins or `*`), or undefined. */
  constructor(setting: string | undefined) {
    const entries = (setting ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    this.#any = entries.includes('*');
    const origins = entries.filter((e) => e !== '*').flatMap((e) => normalizeOrigin(e) ?? []);
    this.#allowed = entries.length === 0 ? undefined : new Set(origins);
  }

  /**
   * Whether a request with `origin` (its Origin header) may open a socket. `own` is how the
   * request reached this gateway: its scheme and Host, as the proxies HTTP_TRUST_PROXY trusts
   * forwarded them (fastify's request.protocol and request.host).
   */
  allows(origin: string | undefined, own: { protocol: string; host: string }): boolean {
    if (origin === undefined) return true;
    if (this.#any) return true;
    const o = normalizeOrigin(origin);
    if (o === undefined) return false; // "null" (sandboxed pages, file:), garbage
    if (this.#allowed !== undefined) return this.#allowed.has(o);
    return o === normalizeOrigin(`${own.protocol}://${own.host}`);
  }
}

export type AdmissionRefusal = 'ip_connections' | 'ip_unjoined';

/** One admitted socket's place in its IP's counts. */
export interface AdmissionTicket {
  /** The socket joined or reconnected: it no longer counts as unjoined. */
  attached: () => void;
  /** The socket closed: it no longer counts at all. Idempotent. */
  released: () => void;
}

export class Admission {
  readonly #maxPerIp: number;
  readonly #maxUnjoinedPerIp: number;
  readonly #open = new Map<string, number>();
  readonly #unjoined = new Map<string, number>();

  constructor(limits: { maxPerIp: number; maxUnjoinedPerIp: number }) {
    this.#maxPerIp = limits.maxPerIp;
    this.#maxUnjoinedPerIp = limits.maxUnjoinedPerIp;
  }

  /** Why one more socket from `ip` would be refused now, or undefined when it would not. */
  refusal(ip: string): AdmissionRefusal | undefined {
    if ((this.#open.get(ip) ?? 0) >= this.#maxPerIp) return 'ip_connections';
    if ((this.#unjoined.get(ip) ?? 0) >= this.#maxUnjoinedPerIp) return 'ip_unjoined';
    return undefined;
  }

  /** Count a new (unjoined) socket from `ip`; check refusal() first. */
  admit(ip: string): AdmissionTicket {
    add(this.#open, ip, 1);
    add(this.#unjoined, ip, 1);
    let unjoined = true;
    let open = true;
    return {
      attached: () => {
        if (!unjoined) return;
        unjoined = false;
        add(this.#unjoined, ip, -1);
      },
      released: () => {
        if (!open) return;
        open = false;
        add(this.#open, ip, -1);
        if (unjoined) {
          unjoined = false;
          add(this.#unjoined, ip, -1);
        }
      },
    };
  }

  /** IPs with open sockets (for tests and metrics). */
  get ips(): number {
    return this.#open.size;
  }
}

function add(counts: Map<string, number>, ip: string, delta: number): void {
  const n = (counts.get(ip) ?? 0) + delta;
  if (n <= 0) counts.delete(ip);
  else counts.set(ip, n);
}
