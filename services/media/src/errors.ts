/**
 * mediasoup's errors as protocol errors. What mediasoup refuses is nearly always the
 * client's input (bad RTP parameters, a second connect()), so it is answered as such; a
 * closed worker means the room is being re-created.
 */
import { errors } from 'mediasoup';
import { ProtocolError, isProtocolError } from '@switchboard/protocol';

export function mediaError(err: unknown): ProtocolError {
  if (isProtocolError(err)) return err;
  if (err instanceof errors.WorkerClosedError) {
    return new ProtocolError('MEDIA_RESET', err.message, { cause: err });
  }
  if (err instanceof errors.NotFoundError) {
    return new ProtocolError('MEDIA_NOT_FOUND', err.message, { cause: err });
  }
  if (err instanceof TypeError || err instanceof errors.UnsupportedError || err instanceof Error) {
    return new ProtocolError('JSON_FIELD_INVALID', err.message, { cause: err });
  }
  return new ProtocolError('SYSTEM', undefined, { cause: err });
}
