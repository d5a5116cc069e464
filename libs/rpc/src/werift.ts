/**
 * `@switchboard/rpc/werift`: the Node side (werift, pure TypeScript WebRTC). Never imported by
 * the browser-safe entry point.
 */
export { WeriftChannel } from './werift-channel.ts';
export { LOOPBACK_CONFIG, WeriftPeer, isLoopbackCandidate } from './werift-peer.ts';
