/**
 * How a fresh connection becomes a session's: `join` (a new session, in a room its token
 * grants) or `reconnect` (a session resumed with its resume token). Either way the router
 * attaches the socket before the rooms service is asked, so nothing sent right after it
 * answers is missed; the attachment is committed once it agreed, or rolled back. When the
 * outcome is unknown (a timeout, the socket closing), the rooms service is told to undo what
 * it may have done.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  ProtocolError,
  Rooms,
  isProtocolError,
  type JoinData,
  type ReconnectData,
  type SessionAuth,
} from '@switchboard/protocol';
import type { BusLike } from '@switchboard/bus';
import type { Logger } from '@switchboard/service';
import type { TokenVerifier } from '../auth.ts';
import type { IceServers } from '../turn.ts';
import type { Attached, ConnectionDeps } from './connection.ts';
import { authOf, type Credentials } from './credentials.ts';
import { deviceOf } from './frames.ts';
import type { Disconnector } from './disconnector.ts';
import type { Attachable, Router } from './router.ts';

/**
 * What a join needs, each as narrow as it uses it (a test gives fakes of these: see
 * test/join.test.ts).
 */
export interface JoinsOptions extends Pick<
  ConnectionDeps,
  'gatewayId' | 'gatewayStartedAt' | 'auth'
> {
  bus: Pick<BusLike, 'request'>;
  router: Pick<Router, 'attach' | 'sendRoomState'>;
  verifier: Pick<TokenVerifier, 'verify' | 'mayJoin'>;
  iceServers: Pick<IceServers, 'for'>;
  disconnector: Pick<Disconnector, 'submit'>;
  log: Logger;
  /** The connection joining: what the router attaches the socket to. */
  conn: Attachable;
  /** Its client's address. */
  ip: string;
  /** Aborted when the connection closes. */
  signal: AbortSignal;
  credentials: Pick<Credentials, 'sameHolder' | 'expired'>;
  /** Start: only from a fresh connection, one at a time (ROOM_ALREADY_JOINED otherwise). */
  begin: (batchEvents: boolean) => void;
  /**
   * The rooms service took the session; `leaveIfClosed`: how to undo it if the socket went
   * (then it is undone, and this throws CANCELLED).
   */
  attached: (session: Attached, leaveIfClosed: boolean) => void;
}

/** A new resume token: 32 random bytes, base64url (43 characters). */
function newResumeToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the rooms service keeps of a resume token (and all that crosses the bus). */
function resumeHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class Joins {
  readonly #o: JoinsOptions;

  constructor(opts: JoinsOptions) {
    this.#o = opts;
  }

  async join(d: JoinData): Promise<unknown> {
    const batchEvents = d.batchEvents === true;
    this.#o.begin(batchEvents);
    const grant = await this.#o.verifier.verify(d.bearer);
    if (!this.#o.verifier.mayJoin(grant, d.roomId)) {
      throw new ProtocolError('ROOM_IS_NOT_JOINABLE', 'the token does not grant this room');
    }
    const socketId = randomBytes(16).toString('hex');
    const resumeToken = newResumeToken();
    const auth = authOf(grant);
    const { conn } = this.#o;
    const pending = this.#o.router.attach(socketId, d.roomId, conn);
    try {
      const reply = await this.#o.bus.request(
        Rooms.join,
        {
          ...deviceOf(d),
          roomId: d.roomId,
          socketId,
          connectionId: conn.connectionId,
          gatewayId: this.#o.gatewayId,
          gatewayStartedAt: this.#o.gatewayStartedAt,
          userId: grant.userId,
          ip: this.#o.ip,
          resumeHash: resumeHash(resumeToken),
          ...auth,
          ...(grant.name === undefined ? {} : { name: grant.name }),
          ...(grant.metadata === undefined ? {} : { metadata: grant.metadata }),
          ...(d.bitrate === undefined ? {} : { bitrate: d.bitrate }),
        },
        { signal: this.#o.signal },
      );
      const { roomSeq, ...joined } = reply;
      pending.commit(roomSeq);
      // Closed meanwhile: the client never saw this socketId, so the session leaves.
      this.#o.attached(
        {
          socketId,
          roomId: d.roomId,
          userId: grant.userId,
          platform: d.platform,
          auth,
          batchEvents,
        },
        true,
      );
      const iceServers = this.#o.iceServers.for(grant.userId, auth.tokenExpiresAt);
      return { ...joined, resumeToken, ...(iceServers === undefined ? {} : { iceServers }) };
    } catch (err) {
      pending.rollback();
      if (outcomeUnknown(err)) {
        // The rooms service may have admitted the session after all: take it back.
        this.#o.disconnector.submit({ socketId, connectionId: conn.connectionId, leave: true });
      }
      throw err;
    }
  }

  async reconnect(d: ReconnectData): Promise<unknown> {
    const batchEvents = d.batchEvents === true;
    this.#o.begin(batchEvents);
    const { socketId } = d;
    if (d.resumeToken === undefined && !this.#o.auth.legacyResume) {
      throw new ProtocolError('AUTH_FAILED', 'reconnect needs the resumeToken of the session');
    }
    if (d.nextResumeToken !== undefined && d.nextResumeToken === d.resumeToken) {
      throw new ProtocolError('JSON_FIELD_INVALID', '/d/nextResumeToken is the current one');
    }
    const proof = d.resumeToken === undefined ? null : resumeHash(d.resumeToken);
    // A fresher token, when the client has one: checked before anything is asked.
    const grant = d.bearer === undefined ? undefined : await this.#o.verifier.verify(d.bearer);
    const { conn, signal } = this.#o;
    const session = await this.#o.bus.request(
      Rooms.lookup,
      { socketId, resumeHash: proof },
      { signal },
    );
    let auth: SessionAuth | undefined;
    if (grant !== undefined) {
      this.#o.credentials.sameHolder(grant, session);
      auth = authOf(grant);
    }
    if (this.#o.credentials.expired((auth ?? session).tokenExpiresAt)) {
      throw new ProtocolError('AUTH_FAILED', 'token expired');
    }
    const next = d.nextResumeToken ?? newResumeToken();
    const pending = this.#o.router.attach(socketId, session.roomId, conn);
    try {
      const reply = await this.#o.bus.request(
        Rooms.reconnect,
        {
          socketId,
          roomId: session.roomId,
          connectionId: conn.connectionId,
          gatewayId: this.#o.gatewayId,
          gatewayStartedAt: this.#o.gatewayStartedAt,
          ip: this.#o.ip,
          resumeHash: proof,
          nextResumeHash: resumeHash(next),
          ...(auth === undefined ? {} : { auth }),
        },
        { signal },
      );
      const replaced = pending.commit(reply.roomSeq);
      if (replaced !== undefined && replaced !== conn) replaced.detach('replaced');
      this.#o.attached(
        {
          socketId,
          roomId: reply.session.roomId,
          userId: reply.session.userId,
          platform: reply.session.platform,
          auth: { tokenExpiresAt: reply.session.tokenExpiresAt, grants: reply.session.grants },
          batchEvents,
        },
        false,
      );
      // The client may have missed the room's broadcasts while it was away: it gets the room
      // as it is now (after reconnectR, which is written first).
      this.#o.router.sendRoomState(socketId, signal).catch((err: unknown) => {
        if (!signal.aborted) {
          this.#o.log.warn({ err, socketId }, 'the room state after a resume was not sent');
        }
      });
      return { roomSize: reply.roomSize, resumeToken: next };
    } catch (err) {
      pending.rollback();
      if (outcomeUnknown(err)) {
        // The rooms service may have attached the session to this connection after all.
        this.#o.disconnector.submit({ socketId, connectionId: conn.connectionId, leave: false });
      }
      throw err;
    }
  }
}

/** A failure after which the rooms service may or may not have done the work. */
function outcomeUnknown(err: unknown): boolean {
  return isProtocolError(err) && (err.errorName === 'TIMEOUT' || err.errorName === 'CANCELLED');
}
