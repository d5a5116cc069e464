import { readFileSync } from 'node:fs';
import {
  CpuTelemetry,
  FreezeTelemetry,
  MemberPresenceChange,
  PresenceChange,
  hostSubjects,
  RoomEvents,
  formatIssues,
  roomEventStream,
  roomEventSubject,
  signalingSubjects,
  validator,
} from '@switchboard/protocol';
import type { TSchema } from 'typebox';
import { describe, expect, it } from 'vitest';
import { ASYNCAPI, renderAsyncapi } from '../asyncapi.ts';

interface Schema {
  type?: string;
  properties?: Record<string, unknown>;
  required?: string[];
}
interface Message {
  payload: Schema;
  headers?: Schema;
  examples?: { payload: unknown; headers?: Record<string, unknown> }[];
}
interface Doc {
  asyncapi: string;
  info: { title: string; version: string; description: string };
  servers: Record<string, { host: string; protocol: string }>;
  channels: Record<
    string,
    {
      address: string;
      parameters: Record<string, { $ref: string }>;
      messages: Record<string, { $ref: string }>;
    }
  >;
  operations: Record<
    string,
    { action: string; channel: { $ref: string }; messages: { $ref: string }[] }
  >;
}

/** What each channel must carry: the subject (prefix `sb`) and the libs/protocol schema. */
const EXPECTED: { subject: string; schema: TSchema; durable: boolean }[] = [
  ...(Object.keys(RoomEvents) as (keyof typeof RoomEvents)[]).map((e) => ({
    subject: roomEventSubject('sb', e),
    schema: RoomEvents[e],
    durable: e !== 'room.live',
  })),
  { subject: signalingSubjects.telemetryCpu('sb'), schema: CpuTelemetry, durable: false },
  { subject: signalingSubjects.telemetryFreeze('sb'), schema: FreezeTelemetry, durable: false },
  { subject: hostSubjects.presence('sb', '{host}'), schema: PresenceChange, durable: false },
  { subject: 'sb.presence.user.{user}', schema: MemberPresenceChange, durable: false },
];

const committed = readFileSync(ASYNCAPI, 'utf8');
const doc = JSON.parse(committed) as Doc;

/** Resolve a local `#/a/b/c` reference (following references it lands on). */
function resolve(ref: string): unknown {
  expect(ref.startsWith('#/')).toBe(true);
  let node: unknown = doc;
  for (const part of ref.slice(2).split('/')) {
    node = (node as Record<string, unknown> | undefined)?.[
      part.replace(/~1/g, '/').replace(/~0/g, '~')
    ];
    expect(node, ref).toBeDefined();
  }
  const next = (node as { $ref?: unknown }).$ref;
  return typeof next === 'string' ? resolve(next) : node;
}

describe('docs/asyncapi.json', () => {
  it('is what scripts/docs.ts generates from libs/protocol (run ./run docs when this fails)', async () => {
    expect(committed).toBe(await renderAsyncapi());
  });

  it('is an AsyncAPI 3.0 document with a NATS server', () => {
    expect(doc.asyncapi).toBe('3.0.0');
    expect(doc.info.title).toBe('Switchboard room events');
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(doc.info.description).toContain(roomEventStream('sb'));
    expect(Object.values(doc.servers).some((s) => s.protocol === 'nats')).toBe(true);
  });

  it('has one channel per subject, each message the protocol schema, with valid examples', () => {
    const channels = Object.values(doc.channels);
    expect(channels.map((c) => c.address).sort()).toEqual(
      EXPECTED.map((e) => e.subject.replace(/^sb\./, '{prefix}.')).sort(),
    );
    for (const channel of channels) {
      const prefix = resolve(channel.parameters.prefix?.$ref ?? '') as { default?: string };
      expect(prefix.default).toBe('sb');
      const subject = channel.address.replace('{prefix}', prefix.default ?? '');
      const expected = EXPECTED.find((e) => e.subject === subject);
      if (expected === undefined) throw new Error(`unexpected channel ${channel.address}`);
      const messages = Object.values(channel.messages).map((m) => resolve(m.$ref) as Message);
      expect(messages).toHaveLength(1);
      for (const message of messages) {
        const { payload } = message;
        expect(payload.type, subject).toBe('object');
        const required = (expected.schema as Schema).required ?? [];
        expect(required.length, subject).toBeGreaterThan(0);
        expect(payload.required, subject).toEqual(required);
        for (const field of required) expect(payload.properties, subject).toHaveProperty(field);
        expect(payload, subject).toEqual(JSON.parse(JSON.stringify(expected.schema)));
        expect(message.headers?.required?.includes('Nats-Msg-Id') ?? false, subject).toBe(
          expected.durable,
        );
        const check = validator(expected.schema);
        expect(message.examples?.length ?? 0, subject).toBeGreaterThan(0);
        for (const example of message.examples ?? []) {
          const parsed = check.parse(example.payload);
          expect(parsed.ok ? '' : formatIssues(parsed.issues), subject).toBe('');
          if (expected.durable) {
            expect(example.headers?.['Nats-Msg-Id']).toBe((example.payload as { id: string }).id);
          }
        }
      }
    }
  });

  it('has a receive operation for every channel', () => {
    const received = Object.values(doc.operations).map((op) => {
      expect(op.action).toBe('receive');
      const channel = resolve(op.channel.$ref);
      for (const m of op.messages) resolve(m.$ref);
      return channel;
    });
    for (const channel of Object.values(doc.channels)) expect(received).toContain(channel);
  });
});
