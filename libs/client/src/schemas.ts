/**
 * The protocol's schemas as the client checks the gateway's frames against them: a room
 * Session's and a SignalingLink's replies and events. Every frame is validated before it is
 * handed out.
 */
import {
  MediaEvents,
  ProtocolError,
  ServerEvents,
  validator,
  type MediaEvent,
  type ServerEvent,
  type Validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';

/** Compiled on first use: a browser page pays only for the schemas it meets. */
const compiled = new Map<string, Validator<TSchema>>();
export function validatorOf(key: string, schema: TSchema): Validator<TSchema> {
  let v = compiled.get(key);
  if (v === undefined) {
    v = validator(schema);
    compiled.set(key, v);
  }
  return v;
}

/** The schema of event `a` (a server event or a media event); undefined for no event. */
export function eventSchema(a: string): TSchema | undefined {
  if (Object.hasOwn(ServerEvents, a)) return ServerEvents[a as ServerEvent];
  if (Object.hasOwn(MediaEvents, a)) return MediaEvents[a as MediaEvent];
  return undefined;
}

/** A reply's `d` checked against `schema` (none: the action replies nothing). */
export function parseReply(action: string, schema: TSchema | undefined, d: unknown): unknown {
  if (schema === undefined) return undefined;
  const parsed = validatorOf(`reply:${action}`, schema).parse(d);
  if (!parsed.ok) {
    throw new ProtocolError(
      'SYSTEM',
      `${action}R does not match its schema: ${parsed.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
    );
  }
  return parsed.value;
}
