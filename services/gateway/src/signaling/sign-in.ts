/**
 * Signing in without a room, from a fresh connection only: `authenticate` (a caller, who may
 * call the hosts its token grants) and `hostOnline` (a host, registered under the name its
 * token grants, to answer calls). Its token's expiry is enforced as a session's is
 * (credentials.ts); refreshToken must bring one of the same user, and host for a host.
 */
import { randomBytes } from 'node:crypto';
import { ProtocolError } from '@switchboard/protocol';
import type { CallEndpoint, CallPrincipal } from '../hosts/endpoint.ts';
import type { ConnectionDeps } from './connection.ts';
import type { Credentials } from './credentials.ts';

/**
 * A connection signed in without a room (`authenticate`, `hostOnline`): a caller, or a
 * host. Its token's expiry is enforced as a session's is.
 */
export interface SignedIn extends CallPrincipal {
  expiresAt: number;
  /** The host name the token grants, if any. */
  host?: string;
}

export interface SignInOptions extends Pick<ConnectionDeps, 'verifier' | 'iceServers' | 'hosts'> {
  /** The connection's calls: where a host registers. */
  calls: Pick<CallEndpoint, 'host' | 'register'>;
  credentials: Pick<Credentials, 'armExpiry'>;
  /** Who the connection is signed in as now, if it is. */
  signedIn: () => SignedIn | undefined;
  /** Start, as a join does: only from a fresh connection, one at a time. */
  begin: (batchEvents: boolean) => void;
  /** The token is good: the connection is `who`'s now (CANCELLED if it closed meanwhile). */
  signedInAs: (who: SignedIn) => void;
  /** Signing in failed: the connection is fresh again. */
  release: () => void;
}

export class SignIn {
  readonly #o: SignInOptions;

  constructor(opts: SignInOptions) {
    this.#o = opts;
  }

  /** Sign in without a room (a caller, or a host); from a fresh connection only. */
  async signIn(bearer: string): Promise<SignedIn> {
    this.#o.begin(false);
    try {
      const grant = await this.#o.verifier.verify(bearer);
      const who: SignedIn = {
        userId: grant.userId,
        call: grant.call,
        expiresAt: grant.expiresAt,
        ...(grant.name === undefined ? {} : { name: grant.name }),
        ...(grant.host === undefined ? {} : { host: grant.host }),
      };
      this.#o.signedInAs(who);
      return who;
    } catch (err) {
      this.#o.release();
      throw err;
    }
  }

  async hostOnline(bearer: string, instance: string | undefined): Promise<unknown> {
    const who = await this.signIn(bearer);
    if (who.host === undefined) {
      throw new ProtocolError('PERMISSION_DENIED', 'the token grants no host name');
    }
    const inst = instance ?? randomBytes(12).toString('base64url');
    await this.#o.calls.register(who.host, inst);
    const iceServers = this.#o.iceServers.for(who.userId, who.expiresAt);
    return {
      host: who.host,
      instance: inst,
      expiresAt: who.expiresAt,
      presenceIntervalMs: this.#o.hosts.presenceIntervalMs,
      readDeadlineMs: this.#o.hosts.readDeadlineMs,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }

  /** A fresh token for a signed-in connection: the same user (and host, for a host). */
  async refresh(bearer: string): Promise<unknown> {
    const was = this.#o.signedIn();
    if (was === undefined) throw new ProtocolError('USER_NOT_AUTHENTICATED');
    const grant = await this.#o.verifier.verify(bearer);
    if (grant.userId !== was.userId) {
      throw new ProtocolError('AUTH_FAILED', "the token is not the connection user's");
    }
    const host = this.#o.calls.host;
    if (host !== undefined && grant.host !== host.name) {
      throw new ProtocolError('AUTH_FAILED', "the token does not grant this connection's host");
    }
    if (this.#o.signedIn() !== was) {
      throw new ProtocolError('CANCELLED', 'the connection closed');
    }
    was.expiresAt = grant.expiresAt;
    was.call = grant.call;
    if (grant.name !== undefined) was.name = grant.name;
    this.#o.credentials.armExpiry(grant.expiresAt);
    const iceServers = this.#o.iceServers.for(was.userId, grant.expiresAt);
    return {
      expiresAt: grant.expiresAt,
      ...(iceServers === undefined ? {} : { iceServers }),
    };
  }
}
