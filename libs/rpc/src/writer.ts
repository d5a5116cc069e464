/**
 * The send side of one channel, shared by all its streams. Frames of one stream leave in the
 * order they were queued; streams take turns a frame at a time (round robin), so the chunks
 * of a 16 MiB message interleave with a small call's frames instead of going ahead of them.
 *
 * Backpressure: nothing is handed to the channel while its bufferedAmount is at or above the
 * high-water mark; `bufferedamountlow` (bufferedAmountLowThreshold = the low-water mark)
 * resumes. A message's promise resolves when its last chunk is handed over, so a sender that
 * awaits each send never has more than the channel's buffer plus one message in memory.
 */
import { encodeRpcFrame, type RpcFrame } from '@switchboard/protocol';
import type { DataChannelLike, ResolvedChannelOptions } from './channel.ts';
import { RpcError } from './errors.ts';

/** What a stream may still send (its flow-control window); owned by the stream. */
export interface SendWindow {
  bytes: number;
}

interface Pending {
  /** A frame sent whole (`inline` its payload, if any), or a message's (`payload` set). */
  frame: RpcFrame;
  inline?: Uint8Array;
  payload: Uint8Array | undefined;
  offset: number;
  /** Payload bytes per chunk of this message (computed at its first chunk). */
  room?: number;
  /** The stream's window: each chunk waits until it has room. */
  window?: SendWindow;
  done: (err?: RpcError) => void;
}

const encoder = new TextEncoder();

export class FrameWriter {
  readonly #channel: DataChannelLike;
  readonly #opts: ResolvedChannelOptions;
  /** Each stream's frames not yet sent, in order. */
  readonly #queues = new Map<number, Pending[]>();
  /** Streams with frames to send, in turn order (a Set keeps insertion order). */
  readonly #turns = new Set<number>();
  /** Streams whose next chunk waits for their window (`resume` puts them back in turn). */
  readonly #blocked = new Set<number>();
  #closed: RpcError | undefined;
  #pumping = false;
  /** Largest bufferedAmount seen right after a send (tests and benchmarks read it). */
  maxBufferedAmount = 0;
  readonly #onResume = (): void => {
    this.#pump();
  };
  readonly #onClose = (): void => {
    this.close(new RpcError('UNAVAILABLE', 'the data channel closed'));
  };

  constructor(channel: DataChannelLike, opts: ResolvedChannelOptions) {
    this.#channel = channel;
    this.#opts = opts;
    channel.bufferedAmountLowThreshold = opts.lowWaterMark;
    channel.addEventListener('bufferedamountlow', this.#onResume);
    channel.addEventListener('open', this.#onResume);
    channel.addEventListener('close', this.#onClose);
  }

  /**
   * Queue a frame sent whole (with `inline` as its payload: it must fit `inlineRoom`); `done`
   * (if given) learns when it left or failed.
   */
  frame(frame: RpcFrame, done: (err?: RpcError) => void = noop, inline?: Uint8Array): void {
    this.#enqueue({
      frame,
      payload: undefined,
      offset: 0,
      done,
      ...(inline === undefined ? {} : { inline }),
    });
  }

  /** The most payload a frame with `header` can carry whole. */
  inlineRoom(header: RpcFrame): number {
    return this.#opts.frameBytes - 4 - encoder.encode(JSON.stringify(header)).length;
  }

  /**
   * Queue one message of stream `id` (its JSON bytes), in chunks, each within `window`;
   * resolves once all left.
   */
  async message(id: number, payload: Uint8Array, window?: SendWindow): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#enqueue({
        frame: { id, type: 'msg' },
        payload,
        offset: 0,
        ...(window === undefined ? {} : { window }),
        done: (err) => {
          if (err === undefined) resolve();
          else reject(err);
        },
      });
    });
  }

  /** Stream `id`'s window grew: its waiting chunks may go. */
  resume(id: number): void {
    if (!this.#blocked.delete(id)) return;
    this.#turns.add(id);
    this.#pump();
  }

  /** Drop what stream `id` has not sent yet (it was reset or ended); its senders get `err`. */
  discard(id: number, err: RpcError): void {
    const queue = this.#queues.get(id);
    if (queue === undefined) return;
    this.#queues.delete(id);
    this.#turns.delete(id);
    this.#blocked.delete(id);
    for (const p of queue) p.done(err);
  }

  /** Fail everything queued and refuse what comes (the channel closed or the owner stopped). */
  close(err: RpcError): void {
    if (this.#closed !== undefined) return;
    this.#closed = err;
    this.#channel.removeEventListener('bufferedamountlow', this.#onResume);
    this.#channel.removeEventListener('open', this.#onResume);
    this.#channel.removeEventListener('close', this.#onClose);
    for (const id of [...this.#queues.keys()]) this.discard(id, err);
  }

  #enqueue(p: Pending): void {
    if (this.#closed !== undefined) {
      p.done(this.#closed);
      return;
    }
    const id = p.frame.id;
    let queue = this.#queues.get(id);
    if (queue === undefined) {
      queue = [];
      this.#queues.set(id, queue);
    }
    queue.push(p);
    this.#turns.add(id);
    this.#pump();
  }

  #pump(): void {
    // send() may call back into the writer (a werift event fired synchronously): one loop.
    if (this.#pumping || this.#closed !== undefined) return;
    this.#pumping = true;
    try {
      while (this.#turns.size > 0) {
        const state = this.#channel.readyState;
        if (state === 'closing' || state === 'closed') {
          this.close(new RpcError('UNAVAILABLE', 'the data channel closed'));
          return;
        }
        // Not open yet ('open' resumes), or full ('bufferedamountlow' resumes).
        if (state !== 'open' || this.#channel.bufferedAmount >= this.#opts.highWaterMark) return;
        const id = this.#turns.values().next().value as number;
        this.#turns.delete(id);
        const queue = this.#queues.get(id) ?? [];
        const p = queue[0];
        if (p === undefined) continue;
        if (!this.#fits(p)) {
          this.#blocked.add(id);
          continue;
        }
        const { bytes, last } = this.#nextFrame(p);
        try {
          this.#channel.send(bytes);
        } catch (err) {
          // A channel that throws on send is gone (closed under us, or over its limit, which
          // the framing never asks of it): every stream learns it.
          this.close(
            new RpcError('UNAVAILABLE', 'the data channel refused a frame', {}, { cause: err }),
          );
          return;
        }
        this.maxBufferedAmount = Math.max(this.maxBufferedAmount, this.#channel.bufferedAmount);
        if (last) {
          queue.shift();
          p.done();
        }
        if (queue.length > 0) this.#turns.add(id);
        else this.#queues.delete(id);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Whether `p`'s next chunk fits its stream's window. */
  #fits(p: Pending): boolean {
    if (p.payload === undefined || p.window === undefined) return true;
    p.room ??= this.inlineRoom({ id: p.frame.id, type: 'msg', more: true });
    return p.window.bytes >= Math.min(p.room, p.payload.length - p.offset);
  }

  /** The next data-channel message of `p`: all of a control frame, one chunk of a message. */
  #nextFrame(p: Pending): { bytes: Uint8Array<ArrayBuffer>; last: boolean } {
    if (p.payload === undefined) return { bytes: encodeRpcFrame(p.frame, p.inline), last: true };
    const id = p.frame.id;
    // Room for the payload: the frame less the prefix and the longest header ({"more":true}).
    p.room ??= this.inlineRoom({ id, type: 'msg', more: true });
    const room = p.room;
    const end = Math.min(p.payload.length, p.offset + room);
    const last = end === p.payload.length;
    const header: RpcFrame = last ? { id, type: 'msg' } : { id, type: 'msg', more: true };
    const bytes = encodeRpcFrame(header, p.payload.subarray(p.offset, end));
    if (p.window !== undefined) p.window.bytes -= end - p.offset;
    p.offset = end;
    return { bytes, last };
  }
}

function noop(): void {
  // A frame whose fate nobody waits for (a status, a reset): the stream is over either way.
}
