/**
 * The gateway's hosts, calls and presence, as one object the connections share: the call
 * queue (JetStream, or memory for one process), the hosts registered here, and presence in
 * NATS KV. Created by the signaling plugin; stopped before the bus closes.
 */
import type { Bus } from '@switchboard/bus';
import type { EventFrameMessage, GatewayConfig } from '@switchboard/protocol';
import { Counter, Gauge, type Logger, type Registry } from '@switchboard/service';
import type { CallQueue } from './call-queue.ts';
import { CallEndpoint } from './endpoint.ts';
import { HostRegistry } from './host-registry.ts';
import { JetStreamCallQueue } from './jetstream-queue.ts';
import { MemoryCallQueue } from './memory-queue.ts';
import { Presence } from './presence.ts';

type HostsConfig = Pick<
  GatewayConfig,
  | 'CALL_QUEUE'
  | 'CALL_MAX_PENDING_PER_HOST'
  | 'CALL_MAX_PER_CONNECTION'
  | 'CALL_MAX_RINGING_PER_HOST_CONNECTION'
  | 'CALL_SIGNALING_LINGER_MS'
  | 'HOST_PRESENCE_INTERVAL_MS'
  | 'HOST_READ_DEADLINE_GRACE_MS'
  | 'HOST_PRESENCE_RETENTION_MS'
>;

export class HostServices {
  readonly queue: CallQueue;
  readonly registry: HostRegistry;
  readonly presence: Presence;
  readonly presenceIntervalMs: number;
  /** A host silent this long is offline: 2 × the presence interval + the grace. */
  readonly readDeadlineMs: number;
  readonly #log: Logger;
  readonly #config: HostsConfig;
  readonly #calls: Counter;

  constructor(bus: Bus, log: Logger, registry: Registry, config: HostsConfig, gatewayId: string) {
    this.#log = log;
    this.#config = config;
    this.presenceIntervalMs = config.HOST_PRESENCE_INTERVAL_MS;
    this.readDeadlineMs = 2 * config.HOST_PRESENCE_INTERVAL_MS + config.HOST_READ_DEADLINE_GRACE_MS;
    const queueOpts = {
      maxPendingPerHost: config.CALL_MAX_PENDING_PER_HOST,
      lingerMs: config.CALL_SIGNALING_LINGER_MS,
    };
    this.queue =
      config.CALL_QUEUE === 'memory'
        ? new MemoryCallQueue(queueOpts)
        : new JetStreamCallQueue(bus, log, queueOpts);
    this.registry = new HostRegistry(this.queue, log, {
      maxRingingPerLine: config.CALL_MAX_RINGING_PER_HOST_CONNECTION,
    });
    this.presence = new Presence(bus, log, {
      gatewayId,
      intervalMs: config.HOST_PRESENCE_INTERVAL_MS,
      readDeadlineMs: this.readDeadlineMs,
      retentionMs: config.HOST_PRESENCE_RETENTION_MS,
      sweepMs: Math.max(250, Math.floor(config.HOST_PRESENCE_INTERVAL_MS / 2)),
    });
    const hosts = this.registry;
    new Gauge({
      name: 'sb_gateway_hosts',
      help: 'Host names with a connection on this gateway (one call-queue answerer each)',
      registers: [registry],
      collect() {
        this.set(hosts.size);
      },
    });
    this.#calls = new Counter({
      name: 'sb_gateway_host_calls_total',
      help: 'callHost requests of this gateway’s clients, by outcome (answered, or an error name)',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }

  /** Start the sweep; the call stream is made ready on first use. */
  start(): void {
    this.presence.start();
    this.queue.start().catch((err: unknown) => {
      this.#log.warn({ err }, 'call queue not ready yet (it is retried on first use)');
    });
  }

  /** A connection's calls. */
  endpoint(connectionId: string, send: (event: EventFrameMessage) => void): CallEndpoint {
    return new CallEndpoint(connectionId, {
      queue: this.queue,
      registry: this.registry,
      presence: this.presence,
      log: this.#log,
      send,
      limits: {
        maxOutgoing: this.#config.CALL_MAX_PER_CONNECTION,
        lingerMs: this.#config.CALL_SIGNALING_LINGER_MS,
      },
      metrics: { calls: this.#calls },
    });
  }

  async stop(): Promise<void> {
    await this.queue.close();
    await this.presence.stop();
  }
}
