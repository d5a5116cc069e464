/**
 * The receiving half of a stream's flow control: acknowledges, in `window` frames, the bytes
 * of messages its reader took, so that the sender may send as much more. Batched
 * (WINDOW_UPDATE_BYTES): as the window is two of the largest messages, a sender can never wait
 * on less than one batch, so no stream stalls for want of an acknowledgement.
 */
import { STREAM_WINDOW_BYTES, WINDOW_UPDATE_BYTES } from '@switchboard/protocol';
import type { FrameWriter } from './writer.ts';

export class ReceiveWindow {
  readonly #id: number;
  readonly #writer: FrameWriter;
  readonly #wanted: () => boolean;
  #unacked = 0;

  /** `wanted`: whether the sender may still send (no acknowledgement once it cannot). */
  constructor(id: number, writer: FrameWriter, wanted: () => boolean) {
    this.#id = id;
    this.#writer = writer;
    this.#wanted = wanted;
  }

  took(bytes: number): void {
    if (!this.#wanted()) return;
    this.#unacked += bytes;
    if (this.#unacked < WINDOW_UPDATE_BYTES) return;
    const grant = Math.min(this.#unacked, STREAM_WINDOW_BYTES);
    this.#unacked -= grant;
    this.#writer.frame({ id: this.#id, type: 'window', bytes: grant });
  }
}
