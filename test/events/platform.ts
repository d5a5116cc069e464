/**
 * The events tests' platform: the signaling platform of the tests (the rooms service and two
 * gateways on the real NATS and PostgreSQL) with events replicas on it, a NATS connection of
 * the tests' own (JetStream: the room-events stream; raw subscriptions) and what they read
 * there.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { inject } from 'vitest';
import {
  harnessConnectOptions,
  natsIdentityEnv,
  type DevIdentity,
  type ServiceProcess,
} from '@switchboard/devstack';
import { roomEventStream } from '@switchboard/protocol';
import { usePlatform } from '../sfu/platform.ts';
import { startSignaling, type SignalingPlatform } from '../signaling/platform.ts';

/** A room event as the room-events stream holds it. */
export interface StoredEvent {
  /** Its sequence number in the stream. */
  seq: number;
  subject: string;
  data: { id: string; ts: number; seq: number; roomId: string } & Record<string, unknown>;
}

export interface EventsPlatform extends SignalingPlatform {
  /** The tests' own NATS connection, and its JetStream manager. */
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** The platform's subject prefix. */
  prefix: string;
  /** The events replicas started by startReplica, in order (some may have exited since). */
  replicas: ServiceProcess[];
  /** An events replica `label` (its INSTANCE_ID too) with `env`, ready. */
  startReplica(label: string, env?: Record<string, string>): Promise<ServiceProcess>;
  /** Every event stored for the rooms `roomIds`, in stream order. */
  stored(...roomIds: string[]): Promise<StoredEvent[]>;
  /** The name of an event (`room.join`, …) from its subject. */
  eventName(subject: string): string;
  /** The environment of a command-line tool of the platform run as `identity`. */
  toolEnv(identity: DevIdentity): NodeJS.ProcessEnv;
  /**
   * Stop what consumes before what it consumes from: the tests' NATS connection, the events
   * replicas (they consume the room events), then the platform.
   */
  stop(): Promise<void>;
}

/** The signaling platform, the tests' NATS connection on it, and no events replica yet. */
export async function startEventsPlatform(
  natsUrl: string,
  pgServerUrl: string,
): Promise<EventsPlatform> {
  const sp = await startSignaling(natsUrl, pgServerUrl);
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  try {
    nc = await connect({ servers: natsUrl, ...harnessConnectOptions() });
    jsm = await jetstreamManager(nc);
  } catch (err) {
    await sp.stop();
    throw err;
  }
  const prefix = sp.platform.env['NATS_SUBJECT_PREFIX'] ?? '';
  const replicas: ServiceProcess[] = [];
  return {
    ...sp,
    nc,
    jsm,
    prefix,
    replicas,
    startReplica: async (label, env = {}) => {
      const replica = await sp.spawn('events', label, { INSTANCE_ID: label, ...env });
      replicas.push(replica);
      return replica;
    },
    stored: async (...roomIds) => {
      const rooms = new Set(roomIds);
      const name = roomEventStream(prefix);
      const info = await jsm.streams.info(name);
      const out: StoredEvent[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
        const m = await jsm.streams.getMessage(name, { seq });
        if (m === null) continue;
        const data = m.json<StoredEvent['data']>();
        if (rooms.has(data.roomId)) out.push({ seq, subject: m.subject, data });
      }
      return out;
    },
    eventName: (subject) => subject.slice(prefix.length + 1),
    toolEnv: (identity) => ({
      ...process.env,
      ...natsIdentityEnv(identity),
      NATS_URL: natsUrl,
      NATS_SUBJECT_PREFIX: prefix,
    }),
    stop: async () => {
      await nc.close();
      await Promise.all(
        replicas.map(async (r) => {
          await r.stop();
        }),
      );
      await sp.stop();
    },
  };
}

/**
 * A test file's events platform: started before its tests and handed to `started` (which may
 * start replicas and subscribe), stopped after them — the clients kept in `open` killed first,
 * what `closeLast` holds (the receivers the replicas deliver to) closed once nothing is left
 * to deliver to it.
 */
export function useEventsPlatform(
  open: readonly { kill(): void }[],
  started: (ep: EventsPlatform) => void | Promise<void>,
  closeLast: readonly { close(): Promise<void> }[] = [],
): void {
  usePlatform(
    async () => await startEventsPlatform(inject('natsUrl'), inject('pgServerUrl')),
    open,
    started,
    closeLast,
  );
}

/** Whether the events replica `replica` is running and holds the lease, by its metrics. */
export async function isLeader(replica: ServiceProcess): Promise<boolean> {
  if (!replica.process.running) return false;
  return /^sb_events_leader(\{[^}]*\})? 1$/m.test(await replica.metrics().catch(() => ''));
}
