/**
 * Redaction of secrets in what gets logged or printed: the one helper every service, the bus
 * and the tooling use (config errors, NATS and PostgreSQL URLs, devstack's output).
 *
 * - A variable is secret when its config schema says so (`secret: true`, see config.ts) or
 *   when its name looks like one (SECRET, PASSWORD, TOKEN, KEY, CREDENTIAL, SEED): its value
 *   is never echoed.
 * - A URL keeps its scheme, host, port and path; its password becomes `***`, and so does a
 *   user part without a password (a token: `nats://TOKEN@host`) — except in database URLs,
 *   where it is the user's name —, and the value of every query parameter whose name looks
 *   secret (`?password=…`, `?token=…`).
 */

/** Names of variables (or fields) whose values are secret by their look alone. */
export const SECRET_NAME = /SECRET|PASSW(OR)?D|TOKEN|KEY|CREDENTIAL|SEED|AUTHORIZATION|COOKIE/i;

export const REDACTED = '***';

/** Whether a variable's or field's name says its value is secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Schemes where the user part of a URL without a password is a user's name, not a token. */
const USER_SCHEMES = new Set(['postgres', 'postgresql', 'mysql']);

// scheme://userinfo@ — userinfo up to the last '@' before the host's end (passwords may hold
// an '@' that was not percent-encoded).
const URL_CREDENTIALS = /\b([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^\s/?#,"'<>]*)@/g;
const SECRET_QUERY = /([?&;])([^=&#\s,"'<>()]*)=([^&#\s,"'<>()]*)/g;

/**
 * The text with the credentials of every URL in it redacted: `postgresql://u:***@host/db`,
 * `nats://***@host:4222` (a token), `https://host/x?token=***`. Anything else is unchanged,
 * so it works on one URL, a comma-separated list, or a whole error message.
 */
export function redactUrls(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      if (colon >= 0) return `${scheme}://${userinfo.slice(0, colon)}:${REDACTED}@`;
      if (USER_SCHEMES.has(scheme.toLowerCase())) return `${scheme}://${userinfo}@`;
      return `${scheme}://${REDACTED}@`;
    })
    .replace(SECRET_QUERY, (m, sep: string, name: string) =>
      isSecretName(name) ? `${sep}${name}=${REDACTED}` : m,
    );
}

/** One URL (or a comma-separated list of them), credentials redacted. */
export const redactUrl = redactUrls;

/**
 * How a configuration error may show the value a variable had: nothing of a secret one,
 * the credentials of URLs in any other redacted.
 */
export function describeValue(raw: string, secret: boolean): string {
  if (secret) return `(value hidden: ${String(raw.length)} characters)`;
  return JSON.stringify(redactUrls(raw));
}
