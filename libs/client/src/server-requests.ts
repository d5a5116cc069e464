/**
 * The requests a gateway sends a session (server-to-client: `getClientStats`, `requestMute`,
 * the server API's calls), with their replies: each goes to the handler registered for its
 * method (`Session.handle`) with an AbortSignal that fires when the server gives up (its
 * deadline, `eventRequestCancelled`, the connection lost); what the handler returns is checked
 * against the method's reply schema and sent back on the connection the request came on. A
 * method nobody handles is answered UNKNOWN_ACTION.
 */
import {
  ProtocolError,
  isProtocolError,
  serverRequestData,
  serverRequestFrame,
  serverRequestReply,
  type ServerRequest,
  type ServerRequestData,
  type ServerRequestReply,
  type Validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import type { Connection } from './connection.ts';
import { asProtocolError } from './lifecycle.ts';

export interface ServerRequestContext {
  /** Fires when the server gave up (its deadline, or the connection is gone). */
  signal: AbortSignal;
  /** The server's request number on this connection. */
  sid: number;
}
export type ServerRequestHandler<M extends ServerRequest> = (
  data: ServerRequestData<M>,
  ctx: ServerRequestContext,
) => ServerRequestReply<M> | Promise<ServerRequestReply<M>>;

export class ServerRequests {
  readonly #handlers = new Map<ServerRequest, ServerRequestHandler<ServerRequest>>();
  /** Server requests being handled, by sid (aborted by eventRequestCancelled or a drop). */
  readonly #serving = new Map<number, AbortController>();
  readonly #reportError: (error: Error, context: string) => void;

  /** `reportError`: where a handler's failure goes (SYSTEM or not a ProtocolError). */
  constructor(reportError: (error: Error, context: string) => void) {
    this.#reportError = reportError;
  }

  /** Answer the server's `method` requests; returns the function that stops answering. */
  handle<M extends ServerRequest>(method: M, handler: ServerRequestHandler<M>): () => void {
    this.#handlers.set(method, handler);
    return () => {
      if (this.#handlers.get(method) === (handler as unknown)) this.#handlers.delete(method);
    };
  }

  /** A server request (a frame with `sid`) came on `conn`: its handler's reply goes back. */
  serve(conn: Connection, raw: Record<string, unknown>): void {
    const parsed = serverRequestFrame.parse(raw);
    if (!parsed.ok) {
      this.#reportError(
        new ProtocolError('JSON_FIELD_INVALID', 'malformed server request'),
        'frame',
      );
      return;
    }
    const { a: method, sid, timeoutMs } = parsed.value;
    const reply = (frame: object): void => {
      if (conn.lost) return; // the server cancelled it with the connection
      conn.send({ a: `${method}R`, sid, ...frame });
    };
    const handler = this.#handlers.get(method);
    const data = (serverRequestData as Record<ServerRequest, Validator<TSchema>>)[method].parse(
      parsed.value.d,
    );
    if (handler === undefined || !data.ok) {
      reply({
        s: false,
        e: new ProtocolError(handler === undefined ? 'UNKNOWN_ACTION' : 'JSON_FIELD_INVALID').code,
      });
      return;
    }
    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new ProtocolError('TIMEOUT'));
    }, timeoutMs);
    this.#serving.set(sid, ac);
    void (async () => {
      try {
        const result = await handler(data.value as never, { signal: ac.signal, sid });
        const checked = (serverRequestReply as Record<ServerRequest, Validator<TSchema>>)[
          method
        ].parse(result);
        if (!checked.ok) {
          throw new ProtocolError('SYSTEM', `the ${method} handler returned an invalid reply`);
        }
        reply({ s: true, d: checked.value });
      } catch (err) {
        const e = asProtocolError(err);
        if (!isProtocolError(err) || e.errorName === 'SYSTEM') {
          this.#reportError(err instanceof Error ? err : e, `the ${method} handler`);
        }
        reply({ s: false, e: e.code });
      } finally {
        clearTimeout(timer);
        this.#serving.delete(sid);
      }
    })().catch((err: unknown) => {
      this.#reportError(asProtocolError(err), `answering ${method}`);
    });
  }

  /** The server gave up on request `sid` (eventRequestCancelled): its handler is aborted. */
  cancel(sid: number): void {
    this.#serving.get(sid)?.abort(new ProtocolError('CANCELLED', 'the server gave up'));
    this.#serving.delete(sid);
  }

  /** A connection was lost: every handler is aborted (their replies cannot go back). */
  cancelAll(): void {
    for (const [sid, ac] of this.#serving) {
      ac.abort(new ProtocolError('CANCELLED', 'connection lost'));
      this.#serving.delete(sid);
    }
  }
}
