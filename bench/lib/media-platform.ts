/**
 * The platform scenario of `bench/media.ts`: the same forwarding as the bare one, set up the
 * way a user's tools would — through the whole platform. The rooms service, a gateway and a
 * media node (one worker, MEDIA_PLAIN_TRANSPORTS on) run as processes; a broadcaster member
 * joins a room over the gateway's WebSocket and produces on a plain transport, and one
 * recorder member per sink joins, creates a receiving plain transport connected to its sink
 * and resumes the consumers the media node announces; with SRTP, each transport asks for it
 * (createPlainTransport's `srtp`). CPU is the media node's: its worker and its Node process
 * (events, scores, freeze checks — what the service adds).
 */
import { randomBytes } from 'node:crypto';
import {
  ServiceProcess,
  ensureInfra,
  infraFromEnv,
  mediasoupWorkerPids,
  mintToken,
  randomSrtpKeys,
  startPlatform,
  uniquePrefix,
  type Infra,
  type Platform,
} from '@switchboard/devstack';
import type { ServerFrame } from '@switchboard/protocol';
import type WebSocket from 'ws';
import { BENCH_GATEWAY_ENV, apiWsUrl } from './infra.ts';
import { procRunTimeMs } from './proc-cpu.ts';
import { openSocket } from './ws-client.ts';
import {
  rtpParametersOf,
  type Scenario,
  type ScenarioRun,
  type ScenarioSetup,
} from './media-scenario.ts';

const REQUEST_TIMEOUT_MS = 20_000;

/** A member on the gateway's WebSocket: requests with ids, and the events it received. */
class Member {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, { resolve(f: ServerFrame): void; reject(e: Error): void }>();
  readonly #listeners = new Set<(f: ServerFrame) => void>();
  #next = 1;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as ServerFrame;
      if (typeof f.id === 'number') {
        const p = this.#pending.get(f.id);
        this.#pending.delete(f.id);
        p?.resolve(f);
        return;
      }
      for (const l of this.#listeners) l(f);
    });
    ws.on('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error('socket closed'));
      this.#pending.clear();
    });
  }

  /** Join with a token of the plain-RTP `role` (a broadcaster sends, a recorder receives). */
  static async join(
    url: string,
    roomId: string,
    userId: string,
    role: 'broadcaster' | 'recorder',
  ): Promise<Member> {
    const m = new Member(await openSocket(url));
    await m.request('join', {
      roomId,
      bearer: await mintToken({ sub: userId, rooms: [roomId], extra: { grants: { role } } }),
      platform: 'bench',
    });
    return m;
  }

  onEvent(listener: (f: ServerFrame) => void): void {
    this.#listeners.add(listener);
  }

  async request(a: string, d?: unknown): Promise<unknown> {
    const id = this.#next++;
    const reply = await new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${a}: no reply in ${String(REQUEST_TIMEOUT_MS)} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#ws.send(JSON.stringify({ a, d, id }));
    });
    if (reply.s !== true) throw new Error(`${a} failed: error ${String(reply.e)}`);
    return reply.d;
  }

  close(): void {
    this.#ws.close(1000);
  }
}

export class PlatformScenario implements Scenario {
  readonly name = 'platform';
  readonly description =
    'rooms + gateway + media node (one worker) as processes; members on the WebSocket API';
  #infra: Infra | undefined;
  #platform: Platform | undefined;
  #media: ServiceProcess | undefined;
  #wsUrl = '';

  async start(): Promise<void> {
    this.#infra = await ensureInfra(infraFromEnv());
    const env = {
      ...BENCH_GATEWAY_ENV,
      ROOM_DEFAULT_CAPACITY: '100000',
      MEDIA_PLAIN_TRANSPORTS: 'true',
      MEDIASOUP_WORKER_MAX_LOAD: '100000',
      LOG_LEVEL: 'info',
    };
    this.#platform = await startPlatform({
      natsUrl: this.#infra.natsUrl,
      subjectPrefix: uniquePrefix('benchmedia'),
      pgServerUrl: this.#infra.pgServerUrl,
      names: ['rooms', 'gateway'],
      env,
    });
    this.#media = await ServiceProcess.start('media', { ...this.#platform.env, ...env });
    await this.#media.waitReady();
    this.#wsUrl = apiWsUrl(this.#platform.get('gateway'));
  }

  info(): Record<string, unknown> {
    const pid = this.#media?.process.pid;
    return { mediaPid: pid, workerPids: mediasoupWorkerPids(pid) };
  }

  async setup({ sinks, streams, srtp }: ScenarioSetup): Promise<ScenarioRun> {
    const media = this.#media;
    const mediaPid = media?.process.pid;
    if (mediaPid === undefined) throw new Error('platform: the media node is not running');
    const roomId = `bench-${randomBytes(4).toString('hex')}`;
    const members: Member[] = [];
    try {
      const broadcaster = await Member.join(this.#wsUrl, roomId, 'broadcaster', 'broadcaster');
      members.push(broadcaster);
      const caps = await broadcaster.request('getRouterRtpCapabilities');
      const ingress = (await broadcaster.request('createPlainTransport', {
        direction: 'send',
        ...(srtp === undefined ? {} : { srtp }),
      })) as { id: string; ip: string; port: number };
      for (const s of streams) {
        await broadcaster.request('produce', {
          transportId: ingress.id,
          kind: s.kind,
          rtpParameters: rtpParametersOf(s),
        });
      }
      // Recorders join a few at a time; each resumes the consumers announced to it.
      const resumed: Promise<unknown>[] = [];
      const joinOne = async (i: number): Promise<void> => {
        const sink = sinks[i];
        if (sink === undefined) return;
        const m = await Member.join(this.#wsUrl, roomId, `recorder-${String(i)}`, 'recorder');
        members.push(m);
        m.onEvent((f) => {
          if (f.a === 'eventNewConsumer') {
            resumed.push(m.request('resumeConsumer', { consumerId: (f.d as { id: string }).id }));
          }
        });
        const t = (await m.request('createPlainTransport', {
          direction: 'recv',
          rtpCapabilities: caps,
          // The recorder's keys (for RTCP it never sends): the node encrypts with its own.
          ...(srtp === undefined ? {} : { srtp: randomSrtpKeys(srtp.cryptoSuite) }),
        })) as { id: string };
        await m.request('connectPlainTransport', { transportId: t.id, ...sink });
      };
      for (let i = 0; i < sinks.length; i += 20) {
        await Promise.all(
          sinks.slice(i, i + 20).map(async (_, j) => {
            await joinOne(i + j);
          }),
        );
      }
      const expected = sinks.length * streams.length;
      const deadline = Date.now() + REQUEST_TIMEOUT_MS;
      while (resumed.length < expected) {
        if (Date.now() > deadline) {
          throw new Error(`platform: ${String(resumed.length)} of ${String(expected)} consumers`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await Promise.all(resumed);
      return {
        producerTarget: { ip: ingress.ip, port: ingress.port },
        cpuTimeMs: async () => {
          const cpu: Record<string, number> = { 'media-node': procRunTimeMs(mediaPid) };
          for (const pid of mediasoupWorkerPids(mediaPid))
            cpu[`worker-${String(pid)}`] = procRunTimeMs(pid);
          return cpu;
        },
        teardown: async () => {
          for (const m of members) m.close();
          await new Promise((r) => setTimeout(r, 300));
        },
      };
    } catch (err) {
      for (const m of members) m.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#media?.stop();
    await this.#platform?.stop();
    await this.#infra?.stop();
  }
}
