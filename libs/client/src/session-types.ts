/**
 * A room Session's types: what `request()` sends and gets back, the events it emits, its
 * options.
 */
import type {
  ClientAction,
  ClientActions,
  JoinData,
  JoinReply,
  MediaAction,
  MediaActions,
  MediaEvent,
  MediaEvents,
  ProtocolError,
  ServerEvent,
  ServerEventData,
} from '@switchboard/protocol';
import type { Static, TSchema } from 'typebox';
import type { GatewayOptions } from './gateway-options.ts';
import type { ConnectionState } from './reconnector.ts';

export type { ServerRequestContext, ServerRequestHandler } from './server-requests.ts';

type Actions = typeof ClientActions & typeof MediaActions;
/** What `request()` sends: every client action but those the session itself speaks. */
export type SessionAction =
  Exclude<ClientAction, 'join' | 'reconnect' | 'ping' | 'refreshToken'> | MediaAction;
export type ActionData<A extends SessionAction> = Static<Actions[A]['data']>;
export type ActionReply<A extends SessionAction> = Actions[A]['reply'] extends TSchema
  ? Static<Actions[A]['reply']>
  : undefined;

/** The events a session emits (eventBatch is unpacked: its events come one by one). */
export type RoomEventName = Exclude<ServerEvent, 'eventBatch'> | MediaEvent;
export type RoomEvents = { [E in Exclude<ServerEvent, 'eventBatch'>]: ServerEventData<E> } & {
  [E in MediaEvent]: Static<(typeof MediaEvents)[E]>;
};

export type SessionState = ConnectionState;

export interface CloseInfo {
  /**
   * left: `leave()` (or the signal); replaced: the session was taken over by another
   * connection (4001); refused: a rejoin was refused for good (token, room full…);
   * failed: the first connect never succeeded; removed: the server API removed the member
   * (4004) or deleted the room (4005), `message` saying why.
   */
  reason: 'left' | 'replaced' | 'refused' | 'failed' | 'removed';
  error?: ProtocolError;
  /** The server's close reason (removed). */
  message?: string;
}

export interface SessionEvents extends RoomEvents {
  state: { state: SessionState; previous: SessionState };
  /** The connection dropped; the session is being re-established. */
  disconnected: { code: number; reason: string };
  /** The same session is back on a new connection (inside the server's window). */
  resumed: { socketId: string; roomSize: number; offlineMs: number; url: string };
  /** The window had passed: the session joined again, with a new socketId. */
  rejoined: {
    socketId: string;
    previousSocketId: string;
    join: JoinReply;
    offlineMs: number;
    url: string;
  };
  /** A try to re-establish the session failed; the next one follows after `retryInMs`. */
  retrying: { attempt: number; error: ProtocolError; retryInMs: number };
  token: { expiresAt: number | undefined };
  closed: CloseInfo;
  error: { error: Error; context: string };
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Deadline of this request, waiting for a connection included (default requestTimeoutMs). */
  timeoutMs?: number;
}

export interface ConnectOptions extends GatewayOptions {
  /** The room to join. */
  room: string;
  /** What `join` tells about this device (`platform` defaults to "web" or "node"). */
  device?: Partial<Omit<JoinData, 'roomId' | 'bearer'>>;
  /** Heartbeat period (default 10 s). */
  heartbeatIntervalMs?: number;
  /** Added to 2 × heartbeatIntervalMs for the read deadline (default 5 s). */
  readDeadlineGraceMs?: number;
  /** Closes the session (as `leave()`). */
  signal?: AbortSignal;
}
