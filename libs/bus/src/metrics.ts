/** The bus's metrics: the connection, the requests sent, the requests answered, the shed. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface BusMetrics {
  connected: Gauge;
  clientRequests: Counter;
  clientDuration: Histogram;
  served: Counter;
  serveDuration: Histogram;
  shed: Counter;
}

/** The bus metrics, registered in `registry` (once: a second Bus on it is refused). */
export function busMetrics(registry: Registry, connected: () => boolean): BusMetrics {
  const existing = registry.getSingleMetric('sb_bus_client_requests_total');
  if (existing !== undefined)
    throw new Error('bus metrics are already registered in this registry');
  return {
    connected: new Gauge({
      name: 'sb_nats_connected',
      help: '1 while connected to NATS',
      registers: [registry],
      collect() {
        this.set(connected() ? 1 : 0);
      },
    }),
    clientRequests: new Counter({
      name: 'sb_bus_client_requests_total',
      help: 'Requests sent to other services, by method and outcome (ok or an error name)',
      labelNames: ['method', 'outcome'],
      registers: [registry],
    }),
    clientDuration: new Histogram({
      name: 'sb_bus_client_request_duration_seconds',
      help: 'Round trip of requests sent to other services',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    served: new Counter({
      name: 'sb_bus_served_requests_total',
      help: 'Requests answered by this instance, by method and outcome',
      labelNames: ['method', 'outcome'],
      registers: [registry],
    }),
    shed: new Counter({
      name: 'sb_bus_shed_total',
      help: 'Messages refused (requests: SERVICE_UNAVAILABLE) or dropped because the bus had BUS_MAX_CONCURRENT in hand',
      labelNames: ['kind'],
      registers: [registry],
    }),
    serveDuration: new Histogram({
      name: 'sb_bus_served_request_duration_seconds',
      help: 'Time to answer a request',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
