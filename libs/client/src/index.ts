/**
 * Switchboard's client SDK: `connect()` a session (signaling, reconnects, server requests),
 * then `RoomMedia` on it for camera, microphone, screen and data through the SFU; or be a
 * host (`serveHost`) and call hosts by name (`signIn`, then `call`), with RPC over the data
 * channel (@switchboard/rpc).
 */
export * from './backoff.ts';
export * from './token.ts';
export * from './emitter.ts';
export * from './connection.ts';
export * from './session.ts';
export * from './session-types.ts';
export * from './media.ts';
export * from './media-types.ts';
export * from './link.ts';
export * from './host-agent.ts';
export * from './caller.ts';
