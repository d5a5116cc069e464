/**
 * `@switchboard/client/server`: the SDK's Node side, for a team's backend — never in a
 * browser bundle (it signs with secrets, through node:crypto). Mint the tokens clients join
 * with (`mintClientToken`), mint server API tokens (`mintApiToken`), and call the server API
 * (`ApiClient`, one typed method per operation).
 */
export * from './server-tokens.ts';
export * from './api-client.ts';
