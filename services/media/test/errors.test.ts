/**
 * Which failures of a media request are the client's and which are ours (errors.ts):
 * mediasoup's refusals of a client's input are JSON_FIELD_INVALID only inside clientInput();
 * the same classes outside it are a fault of this service (SYSTEM, its message not sent).
 * The errors are mediasoup's own classes and plain ones, as mediasoup throws them.
 */
import { describe, expect, it } from 'vitest';
import { errors } from 'mediasoup';
import { ErrorCodes, ProtocolError } from '@switchboard/protocol';
import { clientInput, mediaError, refusedByMediasoup } from '../src/errors.ts';

async function refusal(err: unknown): Promise<ProtocolError> {
  try {
    await clientInput(() => {
      throw err; // as a rejected mediasoup call
    });
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error('clientInput resolved');
}

describe('media errors', () => {
  it("a refusal of a client's input is JSON_FIELD_INVALID with mediasoup's reason", async () => {
    for (const err of [
      new Error('ssrc already exists in RTP listener [ssrc:1111]'),
      new TypeError('invalid dtlsParameters'),
      new errors.UnsupportedError('no matching codec'),
    ]) {
      const e = await refusal(err);
      expect(e.errorName).toBe('JSON_FIELD_INVALID');
      expect(e.code).toBe(ErrorCodes.JSON_FIELD_INVALID.code);
      expect(e.message).toContain(err.message);
      expect(refusedByMediasoup(e)).toBe(true);
    }
  });

  it('a worker that closed, or an entity it no longer has, is said as such anywhere', async () => {
    const closed = new errors.WorkerClosedError('Channel closed');
    const gone = new errors.NotFoundError('Transport not found');
    expect(mediaError(closed).errorName).toBe('MEDIA_RESET');
    expect(mediaError(gone).errorName).toBe('MEDIA_NOT_FOUND');
    expect((await refusal(closed)).errorName).toBe('MEDIA_RESET');
    expect((await refusal(gone)).errorName).toBe('MEDIA_NOT_FOUND');
  });

  it('an Error outside clientInput is ours: SYSTEM, its message kept out of the answer', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'id')");
    const e = mediaError(bug);
    expect(e.errorName).toBe('SYSTEM');
    expect(e.code).toBe(0x500);
    expect(e.message).toBe(ErrorCodes.SYSTEM.message);
    expect(e.cause).toBe(bug);
    expect(refusedByMediasoup(e)).toBe(false);
    expect(mediaError('a string').errorName).toBe('SYSTEM');
  });

  it('a protocol error passes through both unchanged', async () => {
    const ours = new ProtocolError('MEDIA_LIMIT', 'too many producers');
    expect(mediaError(ours)).toBe(ours);
    expect(await refusal(ours)).toBe(ours);
    expect(refusedByMediasoup(ours)).toBe(false);
  });
});
