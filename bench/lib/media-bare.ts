/**
 * The baseline of `bench/media.ts`: mediasoup driven directly from the benchmark's process,
 * the least any SFU built on it can do. One worker for the whole run; per measurement a
 * router (VP8 and Opus), a comedia PlainTransport with a producer of each stream, and per
 * sink a PlainTransport connected to it with a consumer of each producer; with SRTP, every
 * transport in the run's suite, the ingress one connected with the sender's keys.
 */
import { randomSrtpKeys } from '@switchboard/devstack';
import { mediasoup, type types } from './mediasoup.ts';
import { procRunTimeMs } from './proc-cpu.ts';
import {
  rtpParametersOf,
  type Scenario,
  type ScenarioRun,
  type ScenarioSetup,
} from './media-scenario.ts';

const MEDIA_CODECS: types.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48_000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90_000 },
];

export class BareScenario implements Scenario {
  readonly name = 'bare';
  readonly description = `mediasoup ${mediasoup.version} driven from this process, one worker`;
  readonly #listenIp: string;
  #worker: types.Worker | undefined;

  constructor(listenIp = '127.0.0.1') {
    this.#listenIp = listenIp;
  }

  async start(): Promise<void> {
    this.#worker = await mediasoup.createWorker({ logLevel: 'warn' });
  }

  info(): Record<string, unknown> {
    return { mediasoup: mediasoup.version, workerPid: this.#worker?.pid, listenIp: this.#listenIp };
  }

  async setup({ sinks, streams, srtp }: ScenarioSetup): Promise<ScenarioRun> {
    const worker = this.#worker;
    if (worker === undefined || worker.closed) throw new Error('bare: the worker is not running');
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    try {
      const listenInfo: types.TransportListenInfo = { protocol: 'udp', ip: this.#listenIp };
      const secure =
        srtp === undefined ? {} : { enableSrtp: true, srtpCryptoSuite: srtp.cryptoSuite };
      const ingress = await router.createPlainTransport({
        listenInfo,
        rtcpMux: true,
        comedia: true,
        ...secure,
      });
      if (srtp !== undefined) await ingress.connect({ srtpParameters: srtp });
      const producers: types.Producer[] = [];
      for (const s of streams) {
        producers.push(
          await ingress.produce({
            kind: s.kind,
            rtpParameters: rtpParametersOf(s),
          }),
        );
      }
      const consumers: types.Consumer[] = [];
      for (const sink of sinks) {
        const t = await router.createPlainTransport({
          listenInfo,
          rtcpMux: true,
          comedia: false,
          ...secure,
        });
        await t.connect({
          ip: sink.ip,
          port: sink.port,
          // The sink's keys (for RTCP it never sends): the transport encrypts with its own.
          ...(srtp === undefined ? {} : { srtpParameters: randomSrtpKeys(srtp.cryptoSuite) }),
        });
        for (const p of producers)
          consumers.push(
            await t.consume({
              producerId: p.id,
              rtpCapabilities: router.rtpCapabilities,
              paused: false,
            }),
          );
      }
      return {
        producerTarget: { ip: ingress.tuple.localAddress, port: ingress.tuple.localPort },
        // From /proc, not worker.getResourceUsage() (the same figures): that is a round trip,
        // which an overloaded worker answers hundreds of ms late, blurring the window's edges.
        cpuTimeMs: async () => ({ worker: procRunTimeMs(worker.pid) }),
        mediasoupCounts: async () => {
          let producerPackets = 0;
          let consumerPackets = 0;
          for (const p of producers)
            for (const s of await p.getStats()) producerPackets += s.packetCount;
          for (const c of consumers)
            for (const s of await c.getStats())
              if (s.type === 'outbound-rtp') consumerPackets += s.packetCount;
          return { producerPackets, consumerPackets };
        },
        teardown: async () => {
          router.close();
        },
      };
    } catch (err) {
      router.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#worker?.close();
    this.#worker = undefined;
  }
}
