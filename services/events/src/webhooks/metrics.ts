/**
 * The webhook metrics, on the service's registry. `endpoint` is the endpoint's hash, never
 * its URL (it may hold a token).
 */
import { Counter, Gauge, Histogram, type Registry } from '@switchboard/service';

/** How an endpoint's backlog is read when Prometheus scrapes (the leader's view). */
export type PendingSampler = () => Promise<ReadonlyMap<string, number>>;

export class WebhookMetrics {
  readonly attempts: Counter<'endpoint' | 'result'>;
  readonly delivered: Counter<'endpoint'>;
  readonly parked: Counter<'endpoint'>;
  readonly lag: Histogram<'endpoint'>;
  readonly pending: Gauge<'endpoint'>;

  constructor(registry: Registry, endpoints: readonly string[], sample: PendingSampler) {
    this.attempts = new Counter({
      name: 'sb_events_webhook_deliveries_total',
      help: 'Webhook POSTs by endpoint (hash) and result: ok (2xx) or failed (other status, timeout, network error)',
      labelNames: ['endpoint', 'result'],
      registers: [registry],
    });
    this.delivered = new Counter({
      name: 'sb_events_webhook_delivered_total',
      help: 'Room events delivered (a 2xx) to each webhook endpoint',
      labelNames: ['endpoint'],
      registers: [registry],
    });
    this.parked = new Counter({
      name: 'sb_events_webhook_parked_total',
      help: 'Room events parked (WEBHOOK_MAX_ATTEMPTS failed, or not valid) per webhook endpoint',
      labelNames: ['endpoint'],
      registers: [registry],
    });
    this.lag = new Histogram({
      name: 'sb_events_webhook_lag_seconds',
      help: "From a room event's commit (ts) to its webhook's 2xx",
      labelNames: ['endpoint'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    });
    this.pending = new Gauge({
      name: 'sb_events_webhook_pending',
      help: 'Room events not yet delivered to each webhook endpoint: its consumer’s backlog plus those in flight (reported by the leader)',
      labelNames: ['endpoint'],
      registers: [registry],
      async collect() {
        this.reset();
        const counts = await sample();
        for (const [endpoint, n] of counts) this.set({ endpoint }, n);
      },
    });
    // Every endpoint's series exist from the start (at 0), so rates and alerts see them.
    for (const endpoint of endpoints) {
      for (const result of ['ok', 'failed']) this.attempts.inc({ endpoint, result }, 0);
      this.delivered.inc({ endpoint }, 0);
      this.parked.inc({ endpoint }, 0);
    }
  }
}
