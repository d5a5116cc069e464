/**
 * The test service of the host-call tests, beside the example Agent: declared once here and
 * bundled into the page too, so the browser's stubs and the Node host's handlers share the
 * schemas (as a real app's would).
 */
import { defineService, unary } from '@switchboard/protocol';
import Type from 'typebox';

export const HostTest = defineService('switchboard.test.HostTest', {
  /** Never answers: holds a stream slot until the caller cancels or its deadline passes. */
  hang: unary(Type.Object({}), Type.Object({})),
  /** Which runtime serves the call (the browser host answers with its user agent). */
  whoami: unary(Type.Object({}), Type.Object({ runtime: Type.String({ maxLength: 512 }) })),
});

/** The payload of an echo that fills a 16 MiB message exactly: `{"data":"…"}`. */
export const FULL_ECHO_CHARS = (1 << 24) - '{"data":""}'.length;
