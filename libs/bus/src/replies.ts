/**
 * Answering a message received on the bus: the deadline its sender set, the error half of
 * a reply envelope, and the reply itself.
 */
import type { Msg } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { BusHeaders, type BusReplyEnvelope, type ProtocolError } from '@switchboard/protocol';

/** The caller's deadline header, else the default one (`defaultTimeoutMs`) from now. */
export function deadlineOf(msg: Msg, defaultTimeoutMs: number): number {
  const header = Number(msg.headers?.get(BusHeaders.deadline));
  return Number.isFinite(header) && header > 0 ? header : Date.now() + defaultTimeoutMs;
}

/** A ProtocolError as the error half of a bus reply. */
export function errorEnvelope(err: ProtocolError): BusReplyEnvelope {
  return { ok: false, error: { code: err.code, name: err.errorName, message: err.message } };
}

/** Send `envelope` as the reply to `msg`; one the closed connection could not send is logged. */
export function respond(msg: Msg, log: Logger, envelope: BusReplyEnvelope): void {
  if (!msg.respond(JSON.stringify(envelope))) {
    log.warn('could not send the reply (connection closed)');
  }
}
