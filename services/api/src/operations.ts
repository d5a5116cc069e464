/**
 * What each operation of the server API does: its validated input mapped onto the rooms
 * service's administration RPC (RoomsAdmin) behind it, or onto server-to-client calls
 * (libs/bus client-calls). The rooms service's replies are validated by the bus on receipt.
 */
import { callClient, callRoom, type Bus } from '@switchboard/bus';
import type { ProtocolError } from '@switchboard/protocol';
import {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_PAGE_LIMIT,
  RoomsAdmin,
  invalidPayload,
  isProtocolError,
  serverRequestData,
  type CallResult,
  type RpcMethod,
  type RpcReply,
  type RpcRequest,
  type ServerRequest,
  type Validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import type { OperationContext, Operations } from './http.ts';

/** Errors of a call that are the platform's, not the client's answer: the request fails. */
const NOT_AN_ANSWER = new Set(['CANCELLED', 'SERVICE_UNAVAILABLE', 'SHUTTING_DOWN']);

/** The method's `data`, checked against its schema (calls.ts); 400 naming `/data` otherwise. */
function callData(method: ServerRequest, data: unknown): unknown {
  const v = serverRequestData[method] as Validator<TSchema>;
  const parsed = v.parse(data);
  if (!parsed.ok) {
    throw invalidPayload(parsed.issues.map((i) => ({ ...i, path: `body/data${i.path}` })));
  }
  return parsed.value;
}

function failed(socketId: string, userId: string, err: ProtocolError): CallResult {
  return {
    socketId,
    userId,
    ok: false,
    error: { code: err.code, name: err.errorName, message: err.message },
  };
}

export function operations(bus: Bus): Operations {
  const rpc = async <M extends RpcMethod>(
    method: M,
    request: RpcRequest<M>,
    ctx: OperationContext,
  ): Promise<RpcReply<M>> =>
    await bus.request(method, request, {
      signal: ctx.signal,
      ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
    });

  return {
    createRoom: async ({ body }, ctx) => {
      const reply = await rpc(RoomsAdmin.createRoom, body, ctx);
      if (!reply.created) ctx.status(200);
      return reply;
    },
    listRooms: async ({ query }, ctx) =>
      await rpc(
        RoomsAdmin.listRooms,
        {
          ...(query.after === undefined ? {} : { after: query.after }),
          limit: query.limit ?? DEFAULT_PAGE_LIMIT,
          // Only the rooms the token covers.
          only: ctx.caller.claims.admin.rooms ?? [],
        },
        ctx,
      ),
    getRoom: async ({ params }, ctx) => await rpc(RoomsAdmin.getRoom, params, ctx),
    updateRoom: async ({ params, body }, ctx) =>
      await rpc(RoomsAdmin.updateRoom, { ...body, roomId: params.roomId }, ctx),
    deleteRoom: async ({ params }, ctx) => await rpc(RoomsAdmin.deleteRoom, params, ctx),
    listParticipants: async ({ params, query }, ctx) =>
      await rpc(
        RoomsAdmin.listParticipants,
        {
          roomId: params.roomId,
          ...(query.after === undefined ? {} : { after: query.after }),
          limit: query.limit ?? DEFAULT_PAGE_LIMIT,
        },
        ctx,
      ),
    getParticipant: async ({ params }, ctx) => await rpc(RoomsAdmin.getParticipant, params, ctx),
    updateParticipant: async ({ params, body }, ctx) =>
      await rpc(RoomsAdmin.updateParticipant, { ...body, ...params }, ctx),
    removeParticipant: async ({ params, query }, ctx) => {
      await rpc(
        RoomsAdmin.removeParticipant,
        { ...params, ...(query.reason === undefined ? {} : { reason: query.reason }) },
        ctx,
      );
      return undefined;
    },
    muteTrack: async ({ params, body }, ctx) =>
      await rpc(RoomsAdmin.muteTrack, { ...params, muted: body.muted }, ctx),
    sendData: async ({ params, body }, ctx) =>
      await rpc(RoomsAdmin.sendData, { ...body, roomId: params.roomId }, ctx),

    callParticipant: async ({ params, body }, ctx) => {
      const data = callData(body.method, body.data);
      // The member (404 when it is not one), and whose it is.
      const member = await rpc(RoomsAdmin.getParticipant, params, ctx);
      try {
        const reply = await callClient(bus, params, body.method, data as never, {
          timeoutMs: body.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
          signal: ctx.signal,
          ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
        });
        return { socketId: params.socketId, userId: member.userId, ok: true, data: reply };
      } catch (err) {
        if (!isProtocolError(err)) throw err;
        if (NOT_AN_ANSWER.has(err.errorName)) throw err;
        // The client's own error, TIMEOUT, SOCKET_ID_DOES_NOT_EXIST (in its reconnect window).
        return failed(params.socketId, member.userId, err);
      }
    },

    callRoom: async ({ params, body }, ctx) => {
      const data = callData(body.method, body.data);
      // 404 for a room that does not exist (rather than no member to call).
      await rpc(RoomsAdmin.getRoom, params, ctx);
      const results = await callRoom(bus, params.roomId, body.method, data as never, {
        timeoutMs: body.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
        signal: ctx.signal,
        ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
      });
      return {
        results: results.map((r): CallResult =>
          r.ok
            ? { socketId: r.socketId, userId: r.userId, ok: true, data: r.reply }
            : failed(r.socketId, r.userId, r.error),
        ),
      };
    },
  };
}
