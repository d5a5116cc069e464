/**
 * What a room hears after a change of its membership commits: eventJoin, eventLeave,
 * eventUserMediaConfiguration (when the size moves onto another ladder step) and
 * eventOrientationChange go out as room broadcasts; a replaced, expired or removed
 * connection is told to its gateway to close. Plain publishes (see Notifier): a change that
 * committed is never undone by a failure to announce it.
 */
import type {
  DetachReason,
  EventFrameMessage,
  RoomsJoinRequest,
  ServerEventData,
  UserMediaConfiguration,
} from '@switchboard/protocol';
import type { UserMediaLadder } from './ladder.ts';
import type { Left } from './leave.ts';
import type { Notifier } from './notifier.ts';

/** A connection of a session: the gateway that holds it, and its ids. */
export interface Attached {
  gatewayId: string;
  socketId: string;
  connectionId: string;
}

export interface AnnouncementsOptions {
  /** Where the broadcasts and control messages go out. */
  notify: Notifier;
  /** Which media configuration a room's size asks for. */
  ladder: UserMediaLadder;
}

export class Announcements {
  readonly #notify: Notifier;
  readonly #ladder: UserMediaLadder;

  constructor(opts: AnnouncementsOptions) {
    this.#notify = opts.notify;
    this.#ladder = opts.ladder;
  }

  /** `req`'s session joined: the room is `size` members now, its broadcast number `seq`. */
  joined(req: RoomsJoinRequest, size: number, seq: number): void {
    // The others hear who arrived (a hidden member arrives for nobody), with the media
    // configuration of the room's new size if that changed: one broadcast, one number.
    const change = this.#ladder.change(size - 1, size);
    const config =
      change === undefined ? [] : [{ a: 'eventUserMediaConfiguration' as const, d: change }];
    if (!req.grants.hidden) {
      this.#notify.broadcast({
        roomId: req.roomId,
        except: req.socketId,
        seq,
        event: {
          a: 'eventJoin',
          d: {
            roomId: req.roomId,
            roomSize: size,
            socketId: req.socketId,
            userId: req.userId,
            ...(req.name === undefined ? {} : { name: req.name }),
            ...(req.metadata === undefined ? {} : { metadata: req.metadata }),
          },
        },
        ...(config.length === 0 ? {} : { more: config }),
      });
    } else if (change !== undefined) {
      this.#userMedia(req.roomId, change, req.socketId);
    }
  }

  /**
   * Tell each room who left: the leaves of one broadcast number in one broadcast, the media
   * configuration of the room's final size (if its step changed) with the last of them.
   */
  left(left: readonly Left[]): void {
    const byRoom = new Map<string, Left[]>();
    for (const l of left) {
      const gone = byRoom.get(l.roomId);
      if (gone === undefined) byRoom.set(l.roomId, [l]);
      else gone.push(l);
    }
    for (const [roomId, gone] of byRoom) {
      const first = gone[0];
      const last = gone.at(-1);
      if (first === undefined || last === undefined) continue;
      const change = this.#ladder.change(first.sizeBefore, last.sizeAfter);
      const groups = new Map<number, EventFrameMessage[]>();
      for (const l of gone) {
        if (l.hidden) continue;
        const events = groups.get(l.roomSeq) ?? [];
        events.push({
          a: 'eventLeave',
          d: { roomId, roomSize: l.sizeAfter, socketId: l.socketId, userId: l.userId },
        });
        groups.set(l.roomSeq, events);
      }
      if (groups.size === 0) {
        if (change !== undefined) this.#userMedia(roomId, change);
        continue;
      }
      const seqs = [...groups.keys()].sort((a, b) => a - b);
      for (const seq of seqs) {
        const [event, ...more] = groups.get(seq) ?? [];
        if (event === undefined) continue;
        if (seq === seqs.at(-1) && change !== undefined) {
          more.push({ a: 'eventUserMediaConfiguration', d: change });
        }
        this.#notify.broadcast({
          roomId,
          seq,
          event,
          ...(more.length === 0 ? {} : { more }),
        });
      }
    }
  }

  /** A member turned its device (or changed camera): the others hear it. */
  orientationChanged(roomId: string, change: ServerEventData<'eventOrientationChange'>): void {
    this.#notify.broadcast({
      roomId,
      except: change.from.socketId,
      event: { a: 'eventOrientationChange', d: change },
    });
  }

  /** Tell a connection's gateway to close it, and why (a message for the client, if any). */
  detach(c: Attached, reason: DetachReason, message?: string): void {
    this.#notify.control(c.gatewayId, {
      type: 'detach',
      socketId: c.socketId,
      connectionId: c.connectionId,
      reason,
      ...(message === undefined ? {} : { message }),
    });
  }

  #userMedia(roomId: string, config: UserMediaConfiguration, except?: string): void {
    this.#notify.broadcast({
      roomId,
      ...(except === undefined ? {} : { except }),
      event: { a: 'eventUserMediaConfiguration', d: config },
    });
  }
}
