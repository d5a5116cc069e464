/**
 * The bearer token of a room Session or a SignalingLink, kept fresh: refreshed through the
 * owner's `refreshToken` before it expires (and when a join or sign-in refuses it), retried
 * with backoff until a new one comes, and presented to the server on the connection of the
 * moment (`refreshToken {bearer}`) so that the session outlives the old one. While
 * disconnected there is nothing to present it on: the owner's next join (or reconnect, or
 * sign-in) carries it.
 */
import { ProtocolError, RefreshTokenReply, isProtocolError } from '@switchboard/protocol';
import type { Static } from 'typebox';
import { backoffDelay } from './backoff.ts';
import type { Connection } from './connection.ts';
import { Emitter, type Listener } from './emitter.ts';
import type { GatewayOwner } from './gateway-options.ts';
import { asProtocolError, listenerErrorsTo } from './lifecycle.ts';
import { parseReply } from './schemas.ts';
import { refreshAt, tokenExpiry } from './token.ts';

export interface TokenRefresherEvents {
  /** A new token came (it is presented next). */
  token: { token: string; expiresAt: number | undefined };
  /** The server took `token` on `conn`. */
  presented: { conn: Connection; token: string; reply: Static<typeof RefreshTokenReply> };
}

export interface TokenRefresherHandlers {
  /** The connection to present a new token on (undefined while there is none). */
  connection(): Connection | undefined;
  /** The gateway's clock minus this one's, ms (the expiry is on the server's; default 0). */
  clockOffsetMs?: () => number;
}

export class TokenRefresher {
  readonly #owner: GatewayOwner;
  readonly #handlers: TokenRefresherHandlers;
  readonly #events: Emitter<TokenRefresherEvents>;
  #token: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(token: string, owner: GatewayOwner, handlers: TokenRefresherHandlers) {
    this.#token = token;
    this.#owner = owner;
    this.#handlers = handlers;
    this.#events = new Emitter<TokenRefresherEvents>(listenerErrorsTo(owner.reportError));
  }

  /** The token joins and sign-ins present now. */
  get token(): string {
    return this.#token;
  }

  on<K extends keyof TokenRefresherEvents>(
    event: K,
    listener: Listener<TokenRefresherEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * `use` with the token; when it is refused with AUTH_FAILED (a token that expired while
   * the owner was away) and the owner can refresh: one fresh token, one more try.
   */
  async withToken<T>(use: (token: string) => Promise<T>): Promise<T> {
    try {
      return await use(this.#token);
    } catch (err) {
      if (!(isProtocolError(err) && err.errorName === 'AUTH_FAILED')) throw err;
      if (this.#owner.settings.refreshToken === undefined) throw err;
      await this.refresh();
      return await use(this.#token);
    }
  }

  /** Refresh before the token expires (a margin before `exp`; none without `exp`). */
  schedule(): void {
    clearTimeout(this.#timer);
    if (this.#owner.settings.refreshToken === undefined || this.#owner.lc.ended()) return;
    const exp = tokenExpiry(this.#token);
    if (exp === undefined) return;
    const now = Date.now();
    const margin = this.#owner.settings.tokenRefreshMarginMs;
    const at = refreshAt(exp, now, margin, this.#handlers.clockOffsetMs?.());
    this.#timer = setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        this.#owner.reportError(asProtocolError(err), 'token refresh');
      });
    }, at - now);
  }

  /** Get a new token (one refresh at a time); retried with backoff until it succeeds. */
  async refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      const refresh = this.#owner.settings.refreshToken;
      if (refresh === undefined) return;
      for (let attempt = 0; ; attempt++) {
        const signal = AbortSignal.any([
          this.#owner.lc.signal,
          AbortSignal.timeout(this.#owner.settings.requestTimeoutMs),
        ]);
        try {
          const token: unknown = await refresh(signal);
          if (typeof token !== 'string' || token === '') {
            throw new ProtocolError('AUTH_FAILED', 'refreshToken returned no token');
          }
          this.#token = token;
          this.#events.emit('token', { token, expiresAt: tokenExpiry(token) });
          await this.#present();
          return;
        } catch (err) {
          if (this.#owner.lc.ended()) return;
          this.#owner.reportError(
            err instanceof Error ? err : new Error(String(err)),
            `token refresh (attempt ${String(attempt + 1)})`,
          );
          await this.#owner.lc.sleep(
            backoffDelay(attempt, this.#owner.settings.backoff, this.#owner.settings.random),
          );
        }
      }
    })().finally(() => {
      this.#refreshing = undefined;
      this.schedule();
    });
    await this.#refreshing;
  }

  /** The owner closed: no refresh is scheduled any more. */
  close(): void {
    clearTimeout(this.#timer);
  }

  /**
   * Give the server the fresh token (`refreshToken`), so the session outlives the old one.
   * While disconnected it goes with the next reconnect instead; a refusal is reported (the
   * session is cut with 4003 when the old token expires, and rejoins with the new one).
   */
  async #present(): Promise<void> {
    const conn = this.#handlers.connection();
    const token = this.#token;
    if (conn === undefined) return;
    try {
      const d = await conn.request(
        'refreshToken',
        { bearer: token },
        { timeoutMs: this.#owner.settings.requestTimeoutMs, signal: this.#owner.lc.signal },
      );
      const reply = parseReply('refreshToken', RefreshTokenReply, d) as Static<
        typeof RefreshTokenReply
      >;
      this.#events.emit('presented', { conn, token, reply });
    } catch (err) {
      if (this.#owner.lc.ended()) return;
      this.#owner.reportError(asProtocolError(err), 'presenting the refreshed token');
    }
  }
}
