/**
 * POST /dev/token — development only. Signs a token for any room and name with the gateway's
 * own AUTH_HS256_SECRET, so the demo app (and a developer with curl) can join without a
 * backend of its own. The route exists only where GATEWAY_DEV_TOKENS is on, which nothing
 * but `./run start` and the tests turn on: in production, tokens come from the operator's
 * backend, and this route answers 404 like any unknown path.
 *
 * The development secret (DEV_HS256_SECRET) is published in this repository: anyone could
 * sign tokens with it. A gateway configured with it refuses to start unless GATEWAY_DEV_TOKENS
 * says this is a development gateway.
 */
import {
  DEV_HS256_SECRET,
  DevTokenRequest,
  formatIssues,
  invalidPayload,
  validator,
  type DevTokenReply,
  type GatewayConfig,
} from '@switchboard/protocol';
import { ConfigError, type CommonConfig, type Service } from '@switchboard/service';
import { SignJWT } from 'jose';

const devTokenRequest = validator(DevTokenRequest);

/** ConfigError (exit 78) when AUTH_HS256_SECRET is the published one outside development. */
export function refuseDevSecret(config: GatewayConfig): void {
  if (config.AUTH_HS256_SECRET === DEV_HS256_SECRET && !config.GATEWAY_DEV_TOKENS) {
    throw new ConfigError([
      {
        variable: 'AUTH_HS256_SECRET',
        message:
          'is the published development secret: anyone can sign tokens with it. Set a secret of your own (or GATEWAY_DEV_TOKENS=true on a development gateway)',
      },
    ]);
  }
}

export function devTokenRoutes(svc: Service<GatewayConfig & CommonConfig>): void {
  const { config, log } = svc;
  if (!config.GATEWAY_DEV_TOKENS) return;
  const secret = config.AUTH_HS256_SECRET;
  if (secret === undefined) {
    throw new ConfigError([
      { variable: 'AUTH_HS256_SECRET', message: 'is required when GATEWAY_DEV_TOKENS is on' },
    ]);
  }
  const key = new TextEncoder().encode(secret);
  log.warn(
    'GATEWAY_DEV_TOKENS is on: POST /dev/token signs a token for any room (development only)',
  );

  svc.http.post('/dev/token', async (req, reply) => {
    const parsed = devTokenRequest.parse(req.body);
    if (!parsed.ok) {
      const e = invalidPayload(parsed.issues);
      return await reply.code(400).send({
        error: { code: e.code, name: e.errorName, message: formatIssues(parsed.issues) },
      });
    }
    const { room, name } = parsed.value;
    const now = Math.floor(Date.now() / 1000);
    const exp = now + config.DEV_TOKEN_TTL_S;
    const jwt = new SignJWT({ sub: name, name, rooms: [room], aud: config.AUTH_AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuedAt(now)
      .setExpirationTime(exp);
    if (config.AUTH_ISSUER !== undefined) jwt.setIssuer(config.AUTH_ISSUER);
    const body: DevTokenReply = { token: await jwt.sign(key), expiresAt: exp * 1000 };
    return await reply.header('cache-control', 'no-store').send(body);
  });
}
