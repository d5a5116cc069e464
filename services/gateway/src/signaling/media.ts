/**
 * One connection's way to the media node hosting its room. The rooms service says which
 * node that is (and records it); the answer is kept until the room's media is reset
 * (eventMediaReset) or the node stops answering, then asked again.
 */
import type { BusLike } from '@switchboard/bus';
import {
  Media,
  MediaActions,
  ProtocolError,
  Rooms,
  isProtocolError,
  mediaActionData,
  type RpcMethod,
  invalidPayload,
  type MediaAction,
  type SessionGrants,
} from '@switchboard/protocol';
import { authorizeMedia } from './grants.ts';

export interface MediaCaller {
  roomId: string;
  socketId: string;
  userId: string;
  connectionId: string;
  /** What the session's token allows (checked before the action goes to the node). */
  grants: SessionGrants;
}

export class MediaProxy {
  readonly #bus: BusLike;
  #node: Promise<string> | undefined;

  constructor(bus: BusLike) {
    this.#bus = bus;
  }

  /** Forget the node (the room's media was reset: it may have moved). */
  reset(): void {
    this.#node = undefined;
  }

  /**
   * Validate `data` for `action` and send it to the room's media node. Replies without data
   * (`{}` on the bus) are undefined, as the client protocol has them.
   */
  async call(
    action: MediaAction,
    data: unknown,
    caller: MediaCaller,
    signal: AbortSignal,
  ): Promise<unknown> {
    // getRouterRtpCapabilities takes no data: a missing `d` is an empty one.
    const raw = data === undefined && action === 'getRouterRtpCapabilities' ? {} : data;
    if (raw === undefined) throw new ProtocolError('JSON_FIELD_MISSING', '/d');
    const parsed = mediaActionData[action].parse(raw);
    if (!parsed.ok) throw invalidPayload(parsed.issues);
    authorizeMedia(caller.grants, action, parsed.value);
    const node = this.#nodeFor(caller, signal);
    const nodeId = await node;
    try {
      const method: RpcMethod = Media[action];
      const reply = await this.#bus.request(
        method,
        {
          roomId: caller.roomId,
          socketId: caller.socketId,
          userId: caller.userId,
          data: parsed.value,
        },
        { signal, to: nodeId },
      );
      return MediaActions[action].reply === undefined ? undefined : reply;
    } catch (err) {
      // Nobody answers on the node's subjects: it is gone; ask again next time.
      if (isProtocolError(err) && err.errorName === 'SERVICE_UNAVAILABLE' && this.#node === node) {
        this.#node = undefined;
      }
      throw err;
    }
  }

  #nodeFor(caller: MediaCaller, signal: AbortSignal): Promise<string> {
    if (this.#node !== undefined) return this.#node;
    const pending = this.#bus
      .request(
        Rooms.mediaNode,
        { socketId: caller.socketId, connectionId: caller.connectionId },
        { signal },
      )
      .then((r) => r.nodeId);
    this.#node = pending;
    pending.catch(() => {
      if (this.#node === pending) this.#node = undefined;
    });
    return pending;
  }
}
