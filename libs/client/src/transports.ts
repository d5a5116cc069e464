/**
 * One generation of a RoomMedia's WebRTC: the mediasoup-client Device loaded with the
 * router's capabilities, one send and one receive transport with the TURN/STUN servers of the
 * join, the data channel going out and those coming in. A media restart closes the generation
 * and sets up the next; what a closed one still reports is not heard any more.
 */
import { Device } from 'mediasoup-client';
import type { types as ms } from 'mediasoup-client';
import {
  ProtocolError,
  type ClientStats,
  type Peer,
  type ProducerSource,
} from '@switchboard/protocol';
import { Emitter, type Listener } from './emitter.ts';
import type { Session } from './session.ts';
import type { RoomEvents } from './session-types.ts';

/** mediasoup-client ≥ 3.24 no longer reports SCTP capabilities; these ask for SCTP. */
const SCTP_CAPABILITIES = { numStreams: { OS: 1024, MIS: 1024 } };

export type Direction = 'send' | 'recv';

export interface TransportsEvents {
  transportState: { direction: Direction; state: string };
  /** A message on a data channel another member opened. */
  data: { peer: Peer; label: string; data: string | ArrayBuffer };
}

/** A data channel another member opened, as this client receives it. */
export interface IncomingData {
  readonly dataConsumerId: string;
  readonly peer: Peer;
  readonly label: string;
  /** Its channel is open: what the member sends from now on arrives. */
  readonly open: boolean;
}

export interface TransportsOptions {
  /** Label of the data channel opened on set-up (false: none). */
  dataChannel: string | false;
  /** A mediasoup-client Device of the application's (default: detected for this browser). */
  device: (() => Device) | undefined;
  /** Where a failure nobody awaits goes (the data channel's opening, a listener's). */
  fail: (context: string, err: unknown) => void;
}

/** What the transports report now (ClientStats' part of them). */
export interface TransportFigures {
  transports: ClientStats['transports'];
  /** Bytes sent and received, all RTP streams together. */
  sent: number;
  received: number;
  packetsLost: number;
  rttMs: number | undefined;
}

export class Transports {
  readonly #session: Session;
  readonly #opts: TransportsOptions;
  readonly #events: Emitter<TransportsEvents>;
  readonly #dataConsumers = new Map<string, { dc: ms.DataConsumer; peer: Peer; label: string }>();
  #device: Device | undefined;
  #send: ms.Transport | undefined;
  #recv: ms.Transport | undefined;
  #dataProducer: ms.DataProducer | undefined;
  #closed = false;

  constructor(session: Session, opts: TransportsOptions) {
    this.#session = session;
    this.#opts = opts;
    this.#events = new Emitter<TransportsEvents>((err, event) => {
      opts.fail(`a listener of ${event} threw`, err);
    });
  }

  on<K extends keyof TransportsEvents>(
    event: K,
    listener: Listener<TransportsEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /** The device in use (undefined before set-up). */
  get device(): Device | undefined {
    return this.#device;
  }

  /** The data channel this client sends on (undefined until it is open). */
  get dataProducer(): ms.DataProducer | undefined {
    return this.#dataProducer;
  }

  /** The ids of the transports on the server (undefined before set-up). */
  get ids(): { send: string | undefined; recv: string | undefined } {
    return { send: this.#send?.id, recv: this.#recv?.id };
  }

  /** The data channels the others opened, as received now. */
  get incomingData(): IncomingData[] {
    return [...this.#dataConsumers.values()].map(({ dc, peer, label }) => ({
      dataConsumerId: dc.id,
      peer,
      label,
      open: dc.readyState === 'open',
    }));
  }

  /** Load the device and create the transports; the data channel opens beside. */
  async setup(): Promise<void> {
    const session = this.#session;
    const device = this.#opts.device?.() ?? new Device();
    // The protocol's schemas check shape and bounds; mediasoup-client's types are stricter
    // about optional fields the server always sends.
    const caps = await session.request('getRouterRtpCapabilities', {});
    await device.load({ routerRtpCapabilities: caps as ms.RtpCapabilities });
    this.#device = device;
    const { transport: send, sctp } = await this.#transport(device, 'send');
    send.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
      const source = (appData['source'] as ProducerSource | undefined) ?? 'other';
      session
        .request('produce', {
          transportId: send.id,
          kind,
          rtpParameters: rtpParameters as never,
          source,
          paused: appData['paused'] === true,
        })
        .then(ok, fail);
    });
    send.on('producedata', ({ sctpStreamParameters, label, protocol }, ok, fail) => {
      session
        .request('produceData', {
          transportId: send.id,
          sctpStreamParameters: sctpStreamParameters as { streamId: number },
          label,
          protocol,
        })
        .then(ok, fail);
    });
    await this.#transport(device, 'recv');

    const label = this.#opts.dataChannel;
    if (label !== false && sctp) {
      // Beside the queue, like publishing: it needs the send transport connected.
      void send
        .produceData({ label, protocol: 'text', ordered: true })
        .then((dp) => {
          if (!this.#closed) this.#dataProducer = dp;
          else dp.close();
        })
        .catch((err: unknown) => {
          this.#opts.fail('opening the data channel', err);
        });
    }
  }

  /** A producer of `track` on the send transport (undefined when there is none). */
  async produce(
    track: MediaStreamTrack,
    appData: { source: ProducerSource; paused: boolean },
    encodings: ms.RtpEncodingParameters[] | undefined,
  ): Promise<ms.Producer | undefined> {
    const send = this.#send;
    if (send === undefined) return undefined;
    return await send.produce({
      track,
      stopTracks: false,
      ...(encodings === undefined ? {} : { encodings }),
      appData,
    });
  }

  /** Consume what eventNewConsumer `d` offers, on the receive transport. */
  async consume(d: RoomEvents['eventNewConsumer']): Promise<ms.Consumer> {
    return await this.#receiving().consume({
      id: d.id,
      producerId: d.producerId,
      kind: d.kind,
      rtpParameters: d.rtpParameters as ms.RtpParameters,
    });
  }

  /** Receive the data channel eventNewDataConsumer `d` offers (its messages: `data`). */
  async consumeData(d: RoomEvents['eventNewDataConsumer']): Promise<void> {
    const dc = await this.#receiving().consumeData({
      id: d.id,
      dataProducerId: d.dataProducerId,
      sctpStreamParameters: d.sctpStreamParameters,
      label: d.label,
      protocol: d.protocol,
    });
    this.#dataConsumers.set(dc.id, { dc, peer: d.peer, label: d.label });
    dc.on('message', (data: string | ArrayBuffer) => {
      this.#events.emit('data', { peer: d.peer, label: d.label, data });
    });
  }

  /** The server closed a data consumer (eventDataConsumerClosed). */
  closeDataConsumer(dataConsumerId: string): void {
    this.#dataConsumers.get(dataConsumerId)?.dc.close();
    this.#dataConsumers.delete(dataConsumerId);
  }

  /** Restart ICE on the transports whose ICE failed or was cut (after the session resumed). */
  async restartIceIfNeeded(): Promise<void> {
    for (const t of [this.#send, this.#recv]) {
      if (t !== undefined && !t.closed && ['failed', 'disconnected'].includes(t.connectionState)) {
        await this.#restartIce(t);
      }
    }
  }

  /** Restart ICE on the `direction` transport. */
  async restartIce(direction: Direction): Promise<void> {
    const t = direction === 'send' ? this.#send : this.#recv;
    if (t !== undefined) await this.#restartIce(t);
  }

  async figures(): Promise<TransportFigures> {
    let sent = 0;
    let received = 0;
    let packetsLost = 0;
    let rttMs: number | undefined;
    const transports: ClientStats['transports'] = [];
    for (const [direction, t] of [
      ['send', this.#send],
      ['recv', this.#recv],
    ] as const) {
      if (t === undefined || t.closed) continue;
      transports.push({ direction, state: t.connectionState });
      const report = await t.getStats();
      report.forEach((s: Record<string, unknown>) => {
        const n = (k: string): number => (typeof s[k] === 'number' ? s[k] : 0);
        if (s['type'] === 'outbound-rtp') sent += n('bytesSent');
        if (s['type'] === 'inbound-rtp') {
          received += n('bytesReceived');
          packetsLost += Math.max(0, n('packetsLost'));
        }
        if (
          (direction === 'send' || rttMs === undefined) &&
          s['type'] === 'candidate-pair' &&
          s['state'] === 'succeeded' &&
          typeof s['currentRoundTripTime'] === 'number'
        ) {
          rttMs = s['currentRoundTripTime'] * 1000;
        }
      });
    }
    return { transports, sent, received, packetsLost, rttMs };
  }

  /** Close the data channels and the transports (with what they carry). */
  close(): void {
    this.#closed = true;
    for (const { dc } of this.#dataConsumers.values()) dc.close();
    this.#dataConsumers.clear();
    this.#dataProducer?.close();
    this.#dataProducer = undefined;
    this.#send?.close();
    this.#recv?.close();
    this.#send = undefined;
    this.#recv = undefined;
    this.#device = undefined;
  }

  #receiving(): ms.Transport {
    const recv = this.#recv;
    if (recv === undefined) throw new ProtocolError('MEDIA_NOT_FOUND', 'no receive transport');
    return recv;
  }

  /**
   * A WebRTC transport of this generation, with the join's ICE servers; a receiving one
   * carries the device's RTP capabilities (the SFU consumes for it with them).
   */
  async #transport(
    device: Device,
    direction: Direction,
  ): Promise<{ transport: ms.Transport; sctp: boolean }> {
    const session = this.#session;
    const info = await session.request('createWebRtcTransport', {
      direction,
      sctpCapabilities: SCTP_CAPABILITIES,
      ...(direction === 'recv' ? { rtpCapabilities: device.recvRtpCapabilities as never } : {}),
    });
    const iceServers = session.joinReply.iceServers;
    const options = { ...info, ...(iceServers === undefined ? {} : { iceServers }) };
    const t =
      direction === 'send'
        ? device.createSendTransport(options as ms.TransportOptions)
        : device.createRecvTransport(options as ms.TransportOptions);
    if (direction === 'send') this.#send = t;
    else this.#recv = t;
    t.on('connectionstatechange', (state) => {
      if (this.#closed) return; // an earlier generation's
      this.#events.emit('transportState', { direction, state });
    });
    t.on('connect', ({ dtlsParameters }, ok, fail) => {
      session
        .request('connectWebRtcTransport', { transportId: t.id, dtlsParameters })
        .then(ok, fail);
    });
    return { transport: t, sctp: info.sctpParameters !== undefined };
  }

  async #restartIce(t: ms.Transport): Promise<void> {
    if (t.closed) return;
    const { iceParameters } = await this.#session.request('restartIce', { transportId: t.id });
    await t.restartIce({ iceParameters });
  }
}
