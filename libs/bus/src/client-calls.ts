/**
 * Server-to-client requests from anywhere on the bus (a service, an operator tool): call one
 * connected client, or every member of a room, and get each one's validated reply. The
 * gateway holding the socket writes the request to the client and answers for it (see
 * libs/protocol/src/calls.ts for the frames).
 */
import {
  ProtocolError,
  Rooms,
  isProtocolError,
  serverRequestReply,
  signalingSubjects,
  type ServerRequest,
  type ServerRequestData,
  type ServerRequestReply,
  type SocketCall,
  type Validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import type { BusLike } from './bus-like.ts';

export interface ClientCallOptions {
  /** How long the client has to answer (default: the bus's requestTimeoutMs). */
  timeoutMs?: number;
  signal?: AbortSignal;
  traceparent?: string;
}

/** Who to call: a session, in its room (a socketId alone never reaches across rooms). */
export interface CallTarget {
  roomId: string;
  socketId: string;
}

/**
 * Call `method` on one client. Rejects with a ProtocolError: the client's own error code,
 * TIMEOUT when it did not answer in time, SOCKET_ID_DOES_NOT_EXIST when no gateway holds the
 * session's socket in that room (it left, or is in its reconnect window).
 */
export async function callClient<M extends ServerRequest>(
  bus: BusLike,
  target: CallTarget,
  method: M,
  data: ServerRequestData<M>,
  opts: ClientCallOptions = {},
): Promise<ServerRequestReply<M>> {
  const call: SocketCall = { call: { method, data } };
  return (await bus.requestSubject(
    signalingSubjects.call(bus.prefix, target.socketId, target.roomId),
    call,
    (serverRequestReply as Record<ServerRequest, Validator<TSchema>>)[method],
    { ...opts, noResponders: 'SOCKET_ID_DOES_NOT_EXIST' },
  )) as ServerRequestReply<M>;
}

/** One member's outcome of a room-wide call. */
export type RoomCallResult<M extends ServerRequest> = {
  socketId: string;
  userId: string;
} & ({ ok: true; reply: ServerRequestReply<M> } | { ok: false; error: ProtocolError });

/**
 * Call `method` on every member of `roomId` that has a socket now (members in their
 * reconnect window are left out), in parallel, each with the same deadline. Every member's
 * outcome is returned; one failing does not fail the others.
 */
export async function callRoom<M extends ServerRequest>(
  bus: BusLike,
  roomId: string,
  method: M,
  data: ServerRequestData<M>,
  opts: ClientCallOptions = {},
): Promise<RoomCallResult<M>[]> {
  // Every page of a big room's members (roomInfo replies stay under NATS's message limit).
  const active: { socketId: string; userId: string }[] = [];
  let after: string | undefined;
  do {
    const info = await bus.request(
      Rooms.roomInfo,
      { roomId, ...(after === undefined ? {} : { after }) },
      opts,
    );
    for (const s of info.sessions) if (s.state === 'active') active.push(s);
    after = info.next;
  } while (after !== undefined);
  return await Promise.all(
    active.map(async ({ socketId, userId }): Promise<RoomCallResult<M>> => {
      try {
        const reply = await callClient(bus, { roomId, socketId }, method, data, opts);
        return { socketId, userId, ok: true, reply };
      } catch (err) {
        const error = isProtocolError(err)
          ? err
          : new ProtocolError('SYSTEM', String(err), { cause: err });
        return { socketId, userId, ok: false, error };
      }
    }),
  );
}
