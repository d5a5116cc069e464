/**
 * mediasoup's errors as protocol errors.
 *
 * What mediasoup refuses of a client's input (RTP parameters it cannot route, a duplicate
 * SSRC, DTLS parameters it cannot use, a second connect()) is the client's fault, but
 * mediasoup says so with plain `Error`s and `TypeError`s — the same classes our own bugs
 * throw. So the line is drawn where the input enters: a mediasoup call made with what a
 * client sent runs inside `clientInput()`, and its refusal is answered JSON_FIELD_INVALID
 * (0x504). Past that line, an `Error` is a fault of this service: SYSTEM (0x500), its
 * message kept out of the reply and its stack in the log.
 */
import { errors } from 'mediasoup';
import { ProtocolError, isProtocolError } from '@switchboard/protocol';

/**
 * The protocol error of a failure: ours as they are; a closed worker means the room is being
 * made again (MEDIA_RESET); an entity the worker no longer has, MEDIA_NOT_FOUND; anything
 * else, SYSTEM.
 */
export function mediaError(err: unknown): ProtocolError {
  if (isProtocolError(err)) return err;
  if (err instanceof errors.WorkerClosedError) {
    return new ProtocolError('MEDIA_RESET', err.message, { cause: err });
  }
  if (err instanceof errors.NotFoundError) {
    return new ProtocolError('MEDIA_NOT_FOUND', err.message, { cause: err });
  }
  return new ProtocolError('SYSTEM', undefined, { cause: err });
}

/**
 * Run a mediasoup call whose arguments a client chose: what mediasoup refuses (an `Error`
 * that is not one of the above) is the client's input, JSON_FIELD_INVALID with mediasoup's
 * reason.
 */
export async function clientInput<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (
      isProtocolError(err) ||
      err instanceof errors.WorkerClosedError ||
      err instanceof errors.NotFoundError ||
      !(err instanceof Error)
    ) {
      throw mediaError(err);
    }
    throw new ProtocolError('JSON_FIELD_INVALID', err.message, { cause: err });
  }
}

/** A refusal of mediasoup's (not ours): its reason is worth a line in the log. */
export function refusedByMediasoup(e: ProtocolError): boolean {
  return e.errorName !== 'SYSTEM' && e.cause instanceof Error && !isProtocolError(e.cause);
}
