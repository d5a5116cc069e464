/**
 * The token a connection holds — its session's, or its sign-in's (sign-in.ts) — and its end:
 * a token is past its `exp` once AUTH_CLOCK_TOLERANCE_S more have passed, and then the
 * connection is cut (4003, on the `expired` event) unless refreshToken brought a fresh one
 * first. A token presented for an existing session (refreshToken, or a reconnect with
 * `bearer`) must be its holder's: the same user, granting the session's room.
 */
import { EventEmitter } from 'node:events';
import { ProtocolError, Rooms, type SessionAuth } from '@switchboard/protocol';
import type { Grant } from '../auth.ts';
import type { Attached, ConnectionDeps } from './connection.ts';

/** The longest a Node timer waits (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface CredentialsEvents {
  /** The token held is past its expiry, tolerance included: the connection is to be cut. */
  expired: [];
}

export interface CredentialsOptions extends Pick<
  ConnectionDeps,
  'bus' | 'verifier' | 'iceServers'
> {
  /** AUTH_CLOCK_TOLERANCE_S, in ms: a session is cut this long after its token's exp. */
  clockToleranceMs: number;
  connectionId: string;
  /** Aborted when the connection closes. */
  signal: AbortSignal;
  /** The session the connection is attached to now, if any. */
  attached: () => Attached | undefined;
  /** When the token the connection holds now expires (epoch ms), if it holds one. */
  expiresAt: () => number | undefined;
}

export class Credentials extends EventEmitter<CredentialsEvents> {
  readonly #o: CredentialsOptions;
  /** Says `expired` when the token held expires. */
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(opts: CredentialsOptions) {
    super();
    this.#o = opts;
  }

  /**
   * A fresh token for this session: same user, still granting the room. Its expiry and
   * grants replace the session's (here and in the rooms service, for later reconnects).
   */
  async refresh(bearer: string): Promise<unknown> {
    const s = this.#o.attached();
    if (s === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    const grant = await this.#o.verifier.verify(bearer);
    this.sameHolder(grant, s);
    const token = authOf(grant);
    const { grants } = await this.#o.bus.request(
      Rooms.refresh,
      { socketId: s.socketId, connectionId: this.#o.connectionId, ...token },
      { signal: this.#o.signal },
    );
    const auth = { tokenExpiresAt: token.tokenExpiresAt, grants };
    // The socket may have closed (or been replaced) while the rooms service wrote it.
    if (this.#o.attached() !== s) {
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    s.auth = auth;
    this.armExpiry(auth.tokenExpiresAt);
    const iceServers = this.#o.iceServers.for(s.userId, auth.tokenExpiresAt);
    return {
      expiresAt: auth.tokenExpiresAt,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }

  /** A token presented for an existing session must be its user's and grant its room. */
  sameHolder(grant: Grant, s: { userId: string; roomId: string }): void {
    if (grant.userId !== s.userId) {
      throw new ProtocolError('AUTH_FAILED', "the token is not the session user's");
    }
    if (!this.#o.verifier.mayJoin(grant, s.roomId)) {
      throw new ProtocolError('AUTH_FAILED', "the token does not grant the session's room");
    }
  }

  /** Whether a token expiring at `at` (epoch ms) is past it, tolerance included. */
  expired(at: number): boolean {
    return Date.now() > at + this.#o.clockToleranceMs;
  }

  /** Cut the session when its token expires (4003), unless refreshToken comes first. */
  armExpiry(at: number): void {
    clearTimeout(this.#expiryTimer);
    const wait = at + this.#o.clockToleranceMs - Date.now();
    this.#expiryTimer = setTimeout(
      () => {
        const exp = this.#o.expiresAt();
        if (exp === undefined) return;
        // A timer capped at MAX_TIMER_MS fires early: wait on.
        if (!this.expired(exp)) {
          this.armExpiry(exp);
          return;
        }
        this.emit('expired');
      },
      Math.min(Math.max(0, wait), MAX_TIMER_MS),
    );
  }

  /** The connection closed: its token no longer expires. */
  close(): void {
    clearTimeout(this.#expiryTimer);
  }
}

/** What a verified token says, as the session keeps it. */
export function authOf(grant: Grant): SessionAuth {
  return { tokenExpiresAt: grant.expiresAt, grants: grant.grants };
}
