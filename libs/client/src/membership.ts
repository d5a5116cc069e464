/**
 * A room Session's membership as the server knows it: its socketId and the latest join reply,
 * the secret that resumes it, and the token the server holds. `attach()` takes it onto a new
 * connection: it **resumes** (`reconnect {socketId}`) while the server's window holds the
 * session, or **joins** again (a new socketId) once the window has passed.
 */
import {
  JoinReply,
  ProtocolError,
  ReconnectReply,
  isProtocolError,
  type IceServerList,
  type JoinData,
} from '@switchboard/protocol';
import type { Static } from 'typebox';
import type { Connection } from './connection.ts';
import type { Lifecycle } from './lifecycle.ts';
import { parseReply } from './schemas.ts';
import type { TokenRefresher } from './token-refresher.ts';

/** What `attach()` did. */
export type Attached =
  | { resumed: true; socketId: string; roomSize: number }
  | { resumed: false; join: JoinReply; previousSocketId: string | undefined };

export interface MembershipOptions {
  roomId: string;
  /** What `join` tells about this device. */
  device: Omit<JoinData, 'roomId' | 'bearer'>;
  /** Deadline of a join or a reconnect. */
  connectTimeoutMs: number;
  /** The session's life, which ends a join or reconnect under way. */
  lc: Lifecycle;
  /** The token to join with, refreshed when a join refuses it. */
  tokens: TokenRefresher;
}

/** 32 random bytes, base64url: a resume token this client proposes. */
function randomToken(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(32));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class Membership {
  readonly #opts: MembershipOptions;
  #socketId: string | undefined;
  /**
   * The secret that resumes the session (rotated by every reconnect; never shown): one, or
   * after a reconnect that got no reply, the tokens the server may hold, likeliest first.
   */
  #resumeTokens: string[] = [];
  /** The token the server holds for the session (a fresher token is sent on reconnect). */
  #tokenOnServer: string | undefined;
  #join: JoinReply | undefined;

  constructor(opts: MembershipOptions) {
    this.#opts = opts;
  }

  /** The session's socketId (changes on a rejoin); undefined before the first join. */
  get socketId(): string | undefined {
    return this.#socketId;
  }

  /** The reply of the latest join (a rejoin replaces it). */
  get join(): JoinReply | undefined {
    return this.#join;
  }

  /** Resume the session on `conn`, or join anew. */
  async attach(conn: Connection): Promise<Attached> {
    const timeout = { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#opts.lc.signal };
    const previous = this.#socketId;
    if (previous !== undefined) {
      try {
        const r = await this.#resume(conn, previous, timeout);
        return { resumed: true, socketId: previous, roomSize: r.roomSize };
      } catch (err) {
        // The window has passed (or the session was ended: its token expired, 4003), or the
        // resume was refused (the last rotation's reply was lost, or the token has expired):
        // join again on this connection.
        if (!(
          isProtocolError(err) &&
          (err.errorName === 'SOCKET_ID_DOES_NOT_EXIST' || err.errorName === 'AUTH_FAILED')
        )) {
          throw err;
        }
      }
    }
    const join = await this.#joinOn(conn);
    this.#socketId = join.socketId;
    this.#resumeTokens = [join.resumeToken];
    this.#join = join;
    return { resumed: false, join, previousSocketId: previous };
  }

  /**
   * The server took `token` (refreshTokenR) on the session's connection (`current`: the
   * connection is still the session's), with the ICE servers that go with it, if any.
   */
  presented(
    token: string,
    current: boolean,
    iceServers: Static<typeof IceServerList> | undefined,
  ): void {
    if (current) this.#tokenOnServer = token;
    if (iceServers !== undefined && this.#join !== undefined) {
      this.#join = { ...this.#join, iceServers };
    }
  }

  /**
   * `reconnect` with the session's resume token, proposing the next one. When an earlier
   * reconnect got no reply, the server holds either the token it was sent or the one it
   * proposed: both are kept, the proposal tried first (a refused one is dropped).
   */
  async #resume(
    conn: Connection,
    socketId: string,
    timeout: { timeoutMs: number; signal: AbortSignal },
  ): Promise<Static<typeof ReconnectReply>> {
    let refused: unknown = new ProtocolError('AUTH_FAILED', 'no resume token');
    for (const resumeToken of [...this.#resumeTokens]) {
      const token = this.#opts.tokens.token;
      const next = randomToken();
      let d: unknown;
      try {
        d = await conn.request(
          'reconnect',
          {
            socketId,
            resumeToken,
            nextResumeToken: next,
            // A token refreshed while the session was away goes with it.
            ...(token === this.#tokenOnServer ? {} : { bearer: token }),
            // The gateway may be another one than the join's: it is told again.
            batchEvents: true,
          },
          timeout,
        );
      } catch (err) {
        if (isProtocolError(err) && err.errorName === 'AUTH_FAILED') {
          // Answered: the server does not hold this one (and did not take `next`).
          this.#resumeTokens = this.#resumeTokens.filter((t) => t !== resumeToken);
          refused = err;
          continue;
        }
        // Maybe no answer came: the server holds `resumeToken` or, if it took it, `next`.
        this.#resumeTokens = [next, ...this.#resumeTokens].slice(0, 4);
        throw err;
      }
      const r = parseReply('reconnect', ReconnectReply, d) as Static<typeof ReconnectReply>;
      this.#resumeTokens = [r.resumeToken];
      this.#tokenOnServer = token;
      return r;
    }
    throw refused;
  }

  /**
   * Join on `conn`. A token that expired while the session was away: one fresh token, one
   * more try.
   */
  async #joinOn(conn: Connection): Promise<JoinReply> {
    return await this.#opts.tokens.withToken(async (token) => {
      const d = await conn.request(
        'join',
        // batchEvents: a big room's broadcasts may come several in one eventBatch frame.
        { ...this.#opts.device, roomId: this.#opts.roomId, bearer: token, batchEvents: true },
        { timeoutMs: this.#opts.connectTimeoutMs, signal: this.#opts.lc.signal },
      );
      const reply = parseReply('join', JoinReply, d) as JoinReply;
      this.#tokenOnServer = token;
      return reply;
    });
  }
}
