/**
 * What the RPC runtime needs of a data channel. The browser's RTCDataChannel is one as it is;
 * `weriftChannel` (./werift.ts) makes one of a werift channel.
 */
import { DEFAULT_CHANNEL_MESSAGE_BYTES, MIN_CHANNEL_MESSAGE_BYTES } from '@switchboard/protocol';

export type DataChannelState = 'connecting' | 'open' | 'closing' | 'closed';

export interface DataChannelEventMap {
  /** `data`: an ArrayBuffer or a view of one (binary frames); anything else is dropped. */
  message: { readonly data: unknown };
  open: unknown;
  close: unknown;
  error: unknown;
  bufferedamountlow: unknown;
}

export interface DataChannelLike {
  readonly readyState: DataChannelState;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  /** Set to 'arraybuffer' (a browser's default is 'blob', which the runtime cannot read). */
  binaryType: string;
  send(data: Uint8Array<ArrayBuffer>): void;
  addEventListener<K extends keyof DataChannelEventMap>(
    type: K,
    listener: (ev: DataChannelEventMap[K]) => void,
  ): void;
  removeEventListener<K extends keyof DataChannelEventMap>(
    type: K,
    listener: (ev: DataChannelEventMap[K]) => void,
  ): void;
}

/** How the runtime uses one channel; the defaults suit a browser and werift alike. */
export interface ChannelOptions {
  /**
   * The peer's max-message-size (`RTCPeerConnection.sctp.maxMessageSize`; 0 or Infinity:
   * unlimited). Default 64 KiB. No frame is ever larger.
   */
  maxMessageSize?: number;
  /**
   * Largest frame the runtime sends, below maxMessageSize: chunks of big messages
   * interleave at this grain (default 64 KiB).
   */
  maxFrameBytes?: number;
  /** Stop sending while bufferedAmount is above this (default 1 MiB). */
  highWaterMark?: number;
  /** Resume when bufferedAmount falls to this (bufferedAmountLowThreshold; default 256 KiB). */
  lowWaterMark?: number;
}

export interface ResolvedChannelOptions {
  frameBytes: number;
  highWaterMark: number;
  lowWaterMark: number;
}

export function resolveChannelOptions(opts: ChannelOptions = {}): ResolvedChannelOptions {
  const max = opts.maxMessageSize ?? DEFAULT_CHANNEL_MESSAGE_BYTES;
  const limit = max === 0 || !Number.isFinite(max) ? Number.MAX_SAFE_INTEGER : max;
  const frameBytes = Math.min(limit, opts.maxFrameBytes ?? 64 * 1024);
  if (!(frameBytes >= MIN_CHANNEL_MESSAGE_BYTES)) {
    throw new RangeError(
      `RPC frames need a max-message-size of at least ${String(MIN_CHANNEL_MESSAGE_BYTES)} bytes (got ${String(frameBytes)})`,
    );
  }
  const highWaterMark = opts.highWaterMark ?? 1024 * 1024;
  const lowWaterMark = Math.min(opts.lowWaterMark ?? 256 * 1024, highWaterMark);
  return { frameBytes, highWaterMark, lowWaterMark };
}

/** The bytes of a message event's data, or undefined for anything not binary. */
export function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}
