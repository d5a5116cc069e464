/**
 * The ICE servers a client gets in `joinR`: STUN URLs as they are, TURN URLs with ephemeral
 * credentials in coturn's REST scheme (`use-auth-secret`, draft-uberti-behave-turn-rest):
 *
 *   username   = "<expiry, Unix seconds>:<userId>"
 *   credential = base64(HMAC-SHA1(static-auth-secret, username))
 *
 * coturn recomputes the credential from the username with the same secret and refuses the
 * allocation (401) once the expiry has passed, so nothing is stored and no TURN user exists.
 */
import { createHmac } from 'node:crypto';
import type { JoinReply } from '@switchboard/protocol';
import { ConfigError } from '@switchboard/service';

export type IceServer = NonNullable<JoinReply['iceServers']>[number];

export interface TurnCredential {
  username: string;
  credential: string;
}

/** The credential of `userId` valid until `expiresAtS` (Unix seconds), for `secret`. */
export function turnCredential(secret: string, userId: string, expiresAtS: number): TurnCredential {
  const username = `${String(expiresAtS)}:${userId}`;
  const credential = createHmac('sha1', secret).update(username, 'utf8').digest('base64');
  return { username, credential };
}

export interface IceServersConfig {
  TURN_URLS: readonly string[];
  TURN_SECRET?: string | undefined;
  TURN_CREDENTIAL_TTL_S: number;
}

export class IceServers {
  readonly #stun: string[];
  readonly #turn: string[];
  readonly #secret: string;
  readonly #ttlS: number;
  readonly #now: () => number;

  private constructor(
    stun: string[],
    turn: string[],
    secret: string,
    ttlS: number,
    now: () => number,
  ) {
    this.#stun = stun;
    this.#turn = turn;
    this.#secret = secret;
    this.#ttlS = ttlS;
    this.#now = now;
  }

  /** From the gateway's config; throws ConfigError when TURN URLs come without a secret. */
  static fromConfig(config: IceServersConfig, now: () => number = Date.now): IceServers {
    const turn = config.TURN_URLS.filter((u) => /^turns?:/i.test(u));
    const stun = config.TURN_URLS.filter((u) => !/^turns?:/i.test(u));
    const secret = config.TURN_SECRET ?? '';
    if (turn.length > 0 && secret === '') {
      throw new ConfigError([
        {
          variable: 'TURN_SECRET',
          message: `is required when TURN_URLS has a turn: or turns: URL (${turn.join(', ')})`,
        },
      ]);
    }
    return new IceServers(stun, turn, secret, config.TURN_CREDENTIAL_TTL_S, now);
  }

  /**
   * The iceServers of a session of `userId` whose token expires at `notAfterMs` (epoch ms):
   * TURN credentials expire after TURN_CREDENTIAL_TTL_S, or with the token if that is sooner.
   * Undefined when no URL is configured.
   */
  for(userId: string, notAfterMs: number): IceServer[] | undefined {
    const servers: IceServer[] = [];
    if (this.#stun.length > 0) servers.push({ urls: [...this.#stun] });
    if (this.#turn.length > 0) {
      const expiresAtS = Math.min(
        Math.floor(this.#now() / 1000) + this.#ttlS,
        Math.floor(notAfterMs / 1000),
      );
      servers.push({ urls: [...this.#turn], ...turnCredential(this.#secret, userId, expiresAtS) });
    }
    return servers.length > 0 ? servers : undefined;
  }
}
