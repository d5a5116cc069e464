/**
 * The join baseline of `bench/signaling.ts` and `bench/room.ts` (`joinTx`): the membership
 * change a join makes, done directly with node-postgres from a bare process — the room's row
 * created or locked, its size and the user's sessions counted under the lock, the session
 * inserted, room.created (a new room) and room.join written to the outbox with the room's
 * next sequence numbers, in one transaction of separate statements (BEGIN … COMMIT), as an
 * application without the platform would write it. No NATS, no gateway, no rooms service.
 *
 * Usage: node bench/lib/join-tx.ts '<json>' with {databaseUrl, joins, roomSize, capacity,
 * concurrency, poolMax, tag, warmup?}: `warmup` joins (into rooms of their own) go first,
 * unmeasured, as the platform's warm-up joins do. Rooms are `jointx-<tag>-<n>` of `roomSize` sessions each, which
 * admit `capacity` (the platform's ROOM_DEFAULT_CAPACITY, checked the same way); their events
 * are written as already published (the rooms service's outbox relay leaves them alone), and
 * everything is deleted again at the end. Prints one JSON line: {msg: "result", ms: [...],
 * seconds, cpuMs}.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

interface Args {
  databaseUrl: string;
  joins: number;
  roomSize: number;
  capacity: number;
  concurrency: number;
  poolMax: number;
  tag: string;
  /** Unmeasured joins first (default none). */
  warmup?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const GATEWAY = `jointx-${args.tag}`;
const pool = new pg.Pool({ connectionString: args.databaseUrl, max: args.poolMax });

const EVENT = `
  WITH s AS (
    INSERT INTO room_sequences AS q (room_id, seq) VALUES ($1, 1)
    ON CONFLICT (room_id) DO UPDATE SET seq = q.seq + 1
    RETURNING seq)
  INSERT INTO room_events (id, room_id, seq, type, payload, published_at)
  SELECT $2::uuid, $1, s.seq, $3, jsonb_set($4::jsonb, '{seq}', to_jsonb(s.seq)), now()
  FROM s`;

async function event(c: pg.PoolClient, roomId: string, type: string, body: object): Promise<void> {
  const id = randomUUID();
  await c.query(EVENT, [roomId, id, type, JSON.stringify({ id, ts: Date.now(), seq: 0, ...body })]);
}

async function join(i: number, warmup = false): Promise<void> {
  const roomId = `jointx-${args.tag}-${warmup ? 'w' : ''}${Math.floor(i / args.roomSize)}`;
  const socketId = randomBytes(16).toString('hex');
  const userId = `jointx-user-${i}`;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const room = await c.query<{ capacity: number | null; inserted: boolean }>(
      `INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET empty_since = NULL
       RETURNING capacity, (xmax = 0) AS inserted`,
      [roomId],
    );
    const counts = await c.query<{ size: number; mine: number }>(
      `SELECT count(*)::int AS size, (count(*) FILTER (WHERE user_id = $2))::int AS mine
       FROM sessions WHERE room_id = $1`,
      [roomId, userId],
    );
    const capacity = room.rows[0]?.capacity ?? args.capacity;
    const size = counts.rows[0]?.size ?? 0;
    if (size >= capacity || (counts.rows[0]?.mine ?? 0) >= 4) throw new Error('refused');
    await c.query(
      `INSERT INTO sessions (socket_id, room_id, user_id, platform, gateway_id, connection_id,
         state, joined_at, attached_at, last_seen, resume_hash, token_expires_at, grants, hidden)
       SELECT $1, $2, $3, 'Web', $7, $4, 'ACTIVE', t, t, t, $5, t + interval '1 hour', $6::jsonb,
         false
       FROM (SELECT now() AT TIME ZONE 'UTC' AS t) now_utc`,
      [socketId, roomId, userId, randomBytes(16).toString('hex'), 'x'.repeat(64), '{}', GATEWAY],
    );
    if (room.rows[0]?.inserted === true) await event(c, roomId, 'room.created', { roomId });
    await event(c, roomId, 'room.join', {
      roomId,
      roomSize: size + 1,
      socketId,
      userId,
      platform: 'Web',
      bitrate: null,
    });
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

// Connections opened first, as the platform's pool has them by the time it is measured.
await Promise.all(
  Array.from({ length: args.poolMax }, async () => {
    const c = await pool.connect();
    return c;
  }),
).then((clients) => {
  for (const c of clients) c.release();
});

// The sessions' gateway, alive as the platform's are (they beat every GATEWAY_HEARTBEAT_MS):
// else the rooms service's sweeper takes them for sessions of a dead gateway after
// GATEWAY_DEAD_AFTER_MS and ends them after RECONNECT_WINDOW_MS, in the middle of a long
// baseline (10,000 joins into one room take a minute), competing with it for the room.
const HEARTBEAT = `INSERT INTO gateways (id, started_at, last_seen)
  VALUES ($1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')
  ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen`;
await pool.query(HEARTBEAT, [GATEWAY]);
const heartbeat = setInterval(() => {
  pool.query(HEARTBEAT, [GATEWAY]).catch((err: unknown) => {
    process.stderr.write(`join-tx: heartbeat failed: ${String(err)}\n`);
    process.exitCode = 1;
  });
}, 1000);

/** `n` joins, `concurrency` at once; each one's time, ms. */
async function joins(n: number, warmup: boolean): Promise<number[]> {
  const ms: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(args.concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await join(i, warmup);
        ms.push(performance.now() - t);
      }
    }),
  );
  return ms;
}

await joins(args.warmup ?? 0, true);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const ms = await joins(args.joins, false);
const seconds = (performance.now() - t0) / 1000;
clearInterval(heartbeat);
const cpu = process.cpuUsage(cpu0);

// Reported before the clean-up, while the connections' server processes still run (the
// benchmark reads their CPU time when this line arrives).
process.stdout.write(
  `${JSON.stringify({ msg: 'result', ms, seconds, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
);
await pool.query(`DELETE FROM rooms WHERE id LIKE $1`, [`jointx-${args.tag}-%`]);
await pool.query(`DELETE FROM room_events WHERE room_id LIKE $1`, [`jointx-${args.tag}-%`]);
await pool.query(`DELETE FROM room_sequences WHERE room_id LIKE $1`, [`jointx-${args.tag}-%`]);
await pool.query(`DELETE FROM gateways WHERE id = $1`, [GATEWAY]);
await pool.end();
