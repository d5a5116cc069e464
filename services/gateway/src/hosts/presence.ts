/**
 * Host presence, kept in the NATS KV bucket `presenceBucket(p)`: one record per host
 * instance (`host.<name>.<instance>`) saying online or offline, since when, and when it was
 * last heard. A host is online while one of its instances is. Changes of a host (online ⇄
 * offline) are published on `<p>.presence.<host>`.
 *
 * - The gateway holding an instance writes it online at `hostOnline`, refreshes `lastSeen`
 *   on its heartbeats (at most once per half presence interval), and writes it offline when
 *   the host says so (`hostOffline`, a normal close). A socket that merely drops leaves the
 *   record as it is: the host may come back through any gateway before its read deadline,
 *   and then it never went offline.
 * - Every gateway sweeps the bucket: an online record not heard of for the read deadline
 *   (its host is gone, or its gateway died) is written offline. Writes are compare-and-set
 *   on the record's revision, so of several gateways sweeping, or a sweep racing the
 *   host's return, exactly one change wins and is announced once.
 * - Records live `retentionMs` after their last write (the bucket's TTL): a host gone that
 *   long is unknown again (HOST_UNAVAILABLE to callers).
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { Bus } from '@switchboard/bus';
import {
  ProtocolError,
  hostSubjects,
  presenceBucket,
  presenceKey,
  presenceRecord,
  type HostPresence,
  type PresenceChange,
  type PresenceRecord,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/service';

export interface PresenceOptions {
  gatewayId: string;
  /** How often hosts heartbeat (ms); lastSeen is written at most every half of it. */
  intervalMs: number;
  /** A record not heard of this long is offline (2 × interval + grace). */
  readDeadlineMs: number;
  /** How long records live after their last write (ms). */
  retentionMs: number;
  /** How often this gateway sweeps for stale records (ms). */
  sweepMs: number;
}

interface Held {
  revision: number;
  record: PresenceRecord;
  /** When lastSeen was last written. */
  writtenAt: number;
}

export class Presence {
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #opts: PresenceOptions;
  /** The records of the instances this gateway holds, by key. */
  readonly #held = new Map<string, Held>();
  #kv: Promise<KV> | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

  constructor(bus: Bus, log: Logger, opts: PresenceOptions) {
    this.#bus = bus;
    this.#log = log.child({ component: 'presence' });
    this.#opts = opts;
  }

  async #bucket(): Promise<KV> {
    this.#kv ??= (async () => {
      const nc = this.#bus.connection;
      if (nc === undefined || !this.#bus.connected) {
        throw new ProtocolError('SERVICE_UNAVAILABLE', 'not connected to NATS');
      }
      return await new Kvm(nc).create(presenceBucket(this.#bus.prefix), {
        history: 1,
        ttl: this.#opts.retentionMs,
      });
    })();
    try {
      return await this.#kv;
    } catch (err) {
      this.#kv = undefined;
      throw err;
    }
  }

  start(): void {
    this.#sweeper = setInterval(() => {
      if (this.#sweeping !== undefined || !this.#bus.connected) return;
      this.#sweeping = this.sweep()
        .catch((err: unknown) => {
          this.#log.warn({ err }, 'presence sweep failed');
        })
        .finally(() => {
          this.#sweeping = undefined;
        });
    }, this.#opts.sweepMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweeper);
    await this.#sweeping;
  }

  /** An instance of `host` is online through `connectionId` on this gateway. */
  async online(host: string, instance: string, connectionId: string): Promise<void> {
    const kv = await this.#bucket();
    const key = presenceKey(host, instance);
    const now = Date.now();
    const wasOnline = await this.#hostOnline(kv, host, key);
    const prev = await this.#read(kv, key);
    const since =
      prev?.record.status === 'online' && now - prev.record.lastSeen <= this.#opts.readDeadlineMs
        ? prev.record.since
        : now;
    const record: PresenceRecord = {
      host,
      instance,
      status: 'online',
      gatewayId: this.#opts.gatewayId,
      connectionId,
      since,
      lastSeen: now,
    };
    // Last writer wins here: the host is back, whoever held it before.
    const revision = await kv.put(key, JSON.stringify(record));
    this.#held.set(key, { revision, record, writtenAt: now });
    const instanceWasOnline =
      prev !== undefined &&
      prev.record.status === 'online' &&
      now - prev.record.lastSeen <= this.#opts.readDeadlineMs;
    if (!wasOnline && !instanceWasOnline) await this.#announce(kv, host, now);
  }

  /** A heartbeat of a held instance: lastSeen moves (written at most every half interval). */
  heartbeat(host: string, instance: string, connectionId: string): void {
    const key = presenceKey(host, instance);
    const held = this.#held.get(key);
    if (held?.record.connectionId !== connectionId) return;
    const now = Date.now();
    if (now - held.writtenAt < this.#opts.intervalMs / 2) return;
    held.writtenAt = now;
    const record: PresenceRecord = { ...held.record, lastSeen: now };
    void (async () => {
      try {
        const kv = await this.#bucket();
        try {
          held.revision = await kv.update(key, JSON.stringify(record), held.revision);
          held.record = record;
          return;
        } catch {
          // The record changed since this gateway wrote it: see below.
        }
        const now2 = Date.now();
        const current = await this.#read(kv, key);
        if (current === undefined || current.record.connectionId !== connectionId) {
          // Another connection holds the instance now (the host is back elsewhere).
          if (this.#held.get(key) === held) this.#held.delete(key);
          return;
        }
        // Still ours, but a sweep turned it offline (the host was silent past its read
        // deadline while its socket stayed open): it is back, so online again.
        const back: PresenceRecord = {
          ...current.record,
          status: 'online',
          since: current.record.status === 'online' ? current.record.since : now2,
          lastSeen: now2,
        };
        const wasOnline = await this.#hostOnline(kv, host, key);
        held.revision = await kv.update(key, JSON.stringify(back), current.revision);
        held.record = back;
        if (current.record.status !== 'online' && !wasOnline) await this.#announce(kv, host, now2);
      } catch (err) {
        // NATS hiccuped, or another write raced this one: the next heartbeat tries again.
        this.#log.debug({ err, key }, 'presence heartbeat not written');
      }
    })();
  }

  /**
   * The connection holding an instance closed. `offline`: the host said it goes (the record
   * turns offline now); otherwise it may come back before its read deadline, so the record
   * stays (the sweep turns it offline if it does not).
   */
  async release(
    host: string,
    instance: string,
    connectionId: string,
    offline: boolean,
  ): Promise<void> {
    const key = presenceKey(host, instance);
    const held = this.#held.get(key);
    if (held?.record.connectionId !== connectionId) return;
    this.#held.delete(key);
    if (!offline) return;
    const kv = await this.#bucket();
    const now = Date.now();
    const record: PresenceRecord = { ...held.record, status: 'offline', lastSeen: now };
    try {
      await kv.update(key, JSON.stringify(record), held.revision);
    } catch (err) {
      this.#log.debug({ err, key }, 'presence record changed meanwhile; not written offline');
      return;
    }
    if (!(await this.#hostOnline(kv, host, key))) await this.#announce(kv, host, now);
  }

  /** Turn stale online records offline (each once, whoever sweeps). */
  async sweep(): Promise<void> {
    const kv = await this.#bucket();
    const now = Date.now();
    const changed = new Set<string>();
    for await (const key of await kv.keys('host.>')) {
      const entry = await this.#read(kv, key);
      if (entry === undefined) continue;
      const { record, revision } = entry;
      if (record.status !== 'online' || now - record.lastSeen <= this.#opts.readDeadlineMs) {
        continue;
      }
      try {
        await kv.update(key, JSON.stringify({ ...record, status: 'offline' }), revision);
      } catch {
        continue; // Someone else wrote it first (a heartbeat, a return, another sweep).
      }
      // A connection of this gateway may still hold it (a host silent, its socket open): its
      // next heartbeat brings it back online.
      changed.add(record.host);
    }
    for (const host of changed) {
      if (!(await this.#hostOnline(kv, host))) await this.#announce(kv, host, now);
    }
  }

  /** A host's presence (undefined: unknown — never online, or gone past the retention). */
  async get(host: string): Promise<HostPresence | undefined> {
    const kv = await this.#bucket();
    const records = await this.#records(kv, `host.${host}.*`);
    return summarize(host, records, Date.now(), this.#opts.readDeadlineMs);
  }

  /** Hosts whose name `allowed` accepts, by name, after `after`, at most `limit`. */
  async list(
    allowed: (host: string) => boolean,
    after: string | undefined,
    limit: number,
  ): Promise<{ hosts: HostPresence[]; next?: string }> {
    const kv = await this.#bucket();
    const byHost = new Map<string, PresenceRecord[]>();
    for (const r of await this.#records(kv, 'host.>')) {
      if (!allowed(r.host) || (after !== undefined && r.host <= after)) continue;
      const list = byHost.get(r.host) ?? [];
      list.push(r);
      byHost.set(r.host, list);
    }
    const names = [...byHost.keys()].sort();
    const now = Date.now();
    const hosts: HostPresence[] = [];
    for (const name of names.slice(0, limit)) {
      const p = summarize(name, byHost.get(name) ?? [], now, this.#opts.readDeadlineMs);
      if (p !== undefined) hosts.push(p);
    }
    const last = hosts.at(-1);
    return names.length > limit && last !== undefined ? { hosts, next: last.host } : { hosts };
  }

  async #records(kv: KV, filter: string): Promise<PresenceRecord[]> {
    const out: PresenceRecord[] = [];
    for await (const key of await kv.keys(filter)) {
      const entry = await this.#read(kv, key);
      if (entry !== undefined) out.push(entry.record);
    }
    return out;
  }

  /** Whether any instance of `host` other than `except` is online now. */
  async #hostOnline(kv: KV, host: string, except?: string): Promise<boolean> {
    const now = Date.now();
    for await (const key of await kv.keys(`host.${host}.*`)) {
      if (key === except) continue;
      const entry = await this.#read(kv, key);
      if (
        entry?.record.status === 'online' &&
        now - entry.record.lastSeen <= this.#opts.readDeadlineMs
      ) {
        return true;
      }
    }
    return false;
  }

  async #announce(kv: KV, host: string, at: number): Promise<void> {
    const records = await this.#records(kv, `host.${host}.*`);
    const p = summarize(host, records, at, this.#opts.readDeadlineMs);
    if (p === undefined) return;
    const change: PresenceChange = { ...p, at };
    try {
      this.#bus.publish(hostSubjects.presence(this.#bus.prefix, host), change);
    } catch (err) {
      this.#log.warn({ err, host }, 'presence change not published');
    }
  }

  async #read(
    kv: KV,
    key: string,
  ): Promise<{ record: PresenceRecord; revision: number } | undefined> {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    let raw: unknown;
    try {
      raw = entry.json();
    } catch {
      return undefined;
    }
    const parsed = presenceRecord.parse(raw);
    if (!parsed.ok) {
      this.#log.warn({ key, issues: parsed.issues }, 'malformed presence record ignored');
      return undefined;
    }
    return { record: parsed.value, revision: entry.revision };
  }
}

/** A host's presence from its instances' records. */
function summarize(
  host: string,
  records: readonly PresenceRecord[],
  now: number,
  readDeadlineMs: number,
): HostPresence | undefined {
  if (records.length === 0) return undefined;
  const live = records.filter(
    (r) => r.status === 'online' && now - r.lastSeen <= readDeadlineMs,
  ).length;
  return {
    host,
    status: live > 0 ? 'online' : 'offline',
    lastSeen: Math.max(...records.map((r) => r.lastSeen)),
    instances: live,
  };
}
