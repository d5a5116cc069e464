/**
 * Switchboard's client SDK: `connect()` a session (signaling, reconnects, server requests),
 * then `RoomMedia` on it for camera, microphone, screen and data through the SFU.
 */
export * from './backoff.ts';
export * from './token.ts';
export * from './emitter.ts';
export * from './connection.ts';
export * from './session.ts';
export * from './media.ts';
