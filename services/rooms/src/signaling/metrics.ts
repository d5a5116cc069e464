import { Counter, Gauge, type Registry } from '@switchboard/service';
import type { Db } from '../db/client.ts';

export interface MembershipMetrics {
  ended: Counter;
  deadGatewaySessions: Counter;
  resumeRefused: Counter;
}

/** The rooms service's own figures; the bus metrics count its RPCs by method and outcome. */
export function membershipMetrics(registry: Registry, db: Db): MembershipMetrics {
  new Gauge({
    name: 'sb_rooms_sessions',
    help: 'Sessions in PostgreSQL by state (all replicas: the same figure)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const rows = await db.$queryRaw<{ state: string; n: number }[]>`
          SELECT state::text AS state, count(*)::int AS n FROM sessions GROUP BY state`;
        for (const r of rows) this.set({ state: r.state.toLowerCase() }, r.n);
      } catch {
        // PostgreSQL is down: no figure (the rest of /metrics, and /readyz, say so).
      }
    },
  });
  return {
    ended: new Counter({
      name: 'sb_rooms_sessions_ended_total',
      help: 'Sessions ended by this replica: left (close 1000), expired (window passed), removed or deleted (the server API)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    deadGatewaySessions: new Counter({
      name: 'sb_rooms_dead_gateway_sessions_total',
      help: 'Sessions put into their reconnect window because their gateway went silent',
      registers: [registry],
    }),
    resumeRefused: new Counter({
      name: 'sb_rooms_resume_refused_total',
      help: 'Reconnects refused for a wrong resume token (a replayed or guessed one)',
      registers: [registry],
    }),
  };
}
