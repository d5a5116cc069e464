/**
 * A werift data channel as a DataChannelLike. werift's channel is close already (an
 * EventTarget with the same events, bufferedAmount, bufferedAmountLowThreshold); it differs
 * in what it sends and gives (Node Buffers) and in having no binaryType.
 */
import type { RTCDataChannel } from 'werift';
import type { DataChannelEventMap, DataChannelLike, DataChannelState } from './channel.ts';

export class WeriftChannel implements DataChannelLike {
  readonly dc: RTCDataChannel;
  /** Kept for the interface: werift always gives binary messages as Buffers. */
  binaryType = 'arraybuffer';

  constructor(dc: RTCDataChannel) {
    this.dc = dc;
  }

  get label(): string {
    return this.dc.label;
  }

  get readyState(): DataChannelState {
    return this.dc.readyState;
  }

  get bufferedAmount(): number {
    return this.dc.bufferedAmount;
  }

  get bufferedAmountLowThreshold(): number {
    return this.dc.bufferedAmountLowThreshold;
  }

  set bufferedAmountLowThreshold(value: number) {
    this.dc.bufferedAmountLowThreshold = value;
  }

  send(data: Uint8Array<ArrayBuffer>): void {
    // A Buffer over the same memory: no copy.
    this.dc.send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  // werift emits 'message' as {data: Buffer} (a Uint8Array: the runtime reads it as it is),
  // and 'open', 'close', 'bufferedamountlow' as the browser does.
  addEventListener<K extends keyof DataChannelEventMap>(
    type: K,
    listener: (ev: DataChannelEventMap[K]) => void,
  ): void {
    this.dc.addEventListener(type, listener);
  }

  removeEventListener<K extends keyof DataChannelEventMap>(
    type: K,
    listener: (ev: DataChannelEventMap[K]) => void,
  ): void {
    this.dc.removeEventListener(type, listener);
  }

  close(): void {
    this.dc.close();
  }
}
