/**
 * The mediasoup worker the install step provides (official prebuilt or offline build):
 * a real worker process, a router, a WebRtcServer and a WebRtcTransport on it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createWorker, version, type types } from 'mediasoup';

let worker: types.Worker | undefined;

afterEach(() => {
  worker?.close();
  worker = undefined;
});

describe('mediasoup smoke', () => {
  it('creates a worker, a router, a WebRtcServer and a WebRtcTransport', async () => {
    expect(version).toBe('3.27.1');
    worker = await createWorker({ logLevel: 'warn' });
    expect(worker.pid).toBeGreaterThan(0);

    const router = await worker.createRouter({
      mediaCodecs: [
        { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
        { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
      ],
    });
    expect(router.rtpCapabilities.codecs?.map((c) => c.mimeType)).toEqual(
      expect.arrayContaining(['audio/opus', 'video/VP8']),
    );

    const server = await worker.createWebRtcServer({
      listenInfos: [
        { protocol: 'udp', ip: '127.0.0.1', port: 0 },
        { protocol: 'tcp', ip: '127.0.0.1', port: 0 },
      ],
    });
    const transport = await router.createWebRtcTransport({
      webRtcServer: server,
      enableSctp: true,
    });
    const udp = transport.iceCandidates.find((c) => c.protocol === 'udp');
    const tcp = transport.iceCandidates.find((c) => c.protocol === 'tcp');
    expect(udp?.address).toBe('127.0.0.1');
    expect(tcp?.address).toBe('127.0.0.1');
    expect(transport.dtlsParameters.fingerprints.length).toBeGreaterThan(0);
    expect(transport.sctpParameters?.port).toBe(5000);

    const dump = await server.dump();
    expect(dump.webRtcTransportIds).toContain(transport.id);
    expect(dump.udpSockets[0]?.port).toBe(udp?.port);

    const usage = await worker.getResourceUsage();
    expect(usage.ru_maxrss).toBeGreaterThan(0);
  });
});
