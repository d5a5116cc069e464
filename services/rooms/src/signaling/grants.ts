/**
 * A session's grants in force: its token's (kept with the session at join, reconnect and
 * refresh), with the server API's override (if any) applied over them.
 */
import {
  sessionGrants,
  validator,
  withGrantOverride,
  SessionGrants,
  TokenGrants,
  type SessionAuth,
} from '@switchboard/protocol';

const grantsOf = validator(SessionGrants);
const overrideOf = validator(TokenGrants);

/** A session's grants in force: its token's, with the server API's override (if any) applied. */
export function effectiveGrants(token: SessionGrants, override: unknown): SessionGrants {
  if (override === null || override === undefined) return token;
  const o = overrideOf.parse(override);
  return withGrantOverride(token, o.ok ? o.value : undefined);
}

/** The auth fields of a session row, as SessionInfo carries them (grants in force). */
export function authOf(row: {
  tokenExpiresAt: Date | null;
  grants: unknown;
  grantOverride: unknown;
}): SessionAuth {
  // Rows from before tokens were kept have none: expired, with a member's defaults.
  const parsed = grantsOf.parse(row.grants);
  return {
    tokenExpiresAt: row.tokenExpiresAt?.getTime() ?? 0,
    grants: effectiveGrants(parsed.ok ? parsed.value : sessionGrants(undefined), row.grantOverride),
  };
}
