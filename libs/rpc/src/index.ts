/**
 * `@switchboard/rpc`: RPC with gRPC semantics over a WebRTC data channel (wire format and
 * service declarations in @switchboard/protocol's rpc.ts). Browser-safe: no Node imports;
 * werift (Node) is `@switchboard/rpc/werift`.
 */
export type {
  ChannelOptions,
  DataChannelEventMap,
  DataChannelLike,
  DataChannelState,
} from './channel.ts';
export { RpcError, isRpcError } from './errors.ts';
export { RpcClient, type RpcClientOptions, type RpcStub } from './client.ts';
export { ClientCall, type CallOptions, type RpcCallStatus } from './client-call.ts';
export { RpcServer, type RpcServerOptions } from './server.ts';
export { ServedChannel } from './served-channel.ts';
export type { RpcContext, RpcHandler, RpcImplementation, RpcImplementationOf } from './handlers.ts';
export type {
  IceCandidateInit,
  PeerConnectionState,
  PeerDataChannel,
  RtcPeer,
  RtcPeerEvents,
  SessionDescriptionInit,
} from './peer.ts';
export { BrowserPeer } from './browser-peer.ts';
export { connectPeers, type ConnectOptions } from './connect.ts';
export {
  Base64Bytes,
  MAX_MESSAGE_BYTES,
  MAX_STREAMS_PER_CHANNEL,
  RpcStatus,
  bidi,
  clientStream,
  defineService,
  serverStream,
  unary,
  type RpcMetadata,
  type ServiceMethod,
  type RpcService,
} from '@switchboard/protocol';
