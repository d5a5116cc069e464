import { Counter, Gauge, Histogram, type Registry } from '@switchboard/service';

export interface SignalingMetrics {
  connections: Gauge;
  sessions: Gauge;
  frames: Counter;
  rejected: Counter;
  requests: Counter;
  duration: Histogram;
  calls: Counter;
  callDuration: Histogram;
  batches: Counter;
  batchedEvents: Counter;
  relayBatches: Counter;
  relayBatchItems: Counter;
}

export function signalingMetrics(registry: Registry): SignalingMetrics {
  return {
    connections: new Gauge({
      name: 'sb_gateway_connections',
      help: 'Open client WebSockets',
      registers: [registry],
    }),
    sessions: new Gauge({
      name: 'sb_gateway_sessions',
      help: 'Client WebSockets attached to a session (joined or reconnected)',
      registers: [registry],
    }),
    frames: new Counter({
      name: 'sb_gateway_frames_total',
      help: 'Frames received from clients',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'sb_gateway_closed_for_input_total',
      help: 'Sockets closed because of what they sent, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    requests: new Counter({
      name: 'sb_gateway_requests_total',
      help: 'Client requests and notifications, by action and outcome (ok or an error name)',
      labelNames: ['action', 'outcome'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'sb_gateway_request_duration_seconds',
      help: 'Time from a client request to its reply',
      labelNames: ['action'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    calls: new Counter({
      name: 'sb_gateway_server_requests_total',
      help: 'Server-to-client requests written to clients, by method and outcome',
      labelNames: ['method', 'outcome'],
      registers: [registry],
    }),
    callDuration: new Histogram({
      name: 'sb_gateway_server_request_duration_seconds',
      help: "Time from a server-to-client request to the client's reply",
      labelNames: ['method'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batches: new Counter({
      name: 'sb_gateway_event_batches_total',
      help: 'eventBatch frames written to client sockets (one per member a batch reached)',
      registers: [registry],
    }),
    batchedEvents: new Counter({
      name: 'sb_gateway_batched_events_total',
      help: 'Events carried by the eventBatch frames written to client sockets',
      registers: [registry],
    }),
    relayBatches: new Counter({
      name: 'sb_gateway_relay_batches_total',
      help: 'Relay batches sent to other gateways (one NATS request each)',
      registers: [registry],
    }),
    relayBatchItems: new Counter({
      name: 'sb_gateway_relay_batch_items_total',
      help: 'Relays carried by the relay batches sent to other gateways',
      registers: [registry],
    }),
  };
}
