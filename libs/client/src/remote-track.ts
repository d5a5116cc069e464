/**
 * Something another member publishes, as this client receives it: a RemoteTrack, and the
 * mediasoup-client consumer behind it, which the RoomMedia that received it keeps up to date
 * from the server's events (paused, score, layers) and closes when the server or a restart
 * ends it.
 */
import type { types as ms } from 'mediasoup-client';
import type { MediaKind, Peer, ProducerSource } from '@switchboard/protocol';
import type { RoomEvents } from './session-types.ts';

export interface Layers {
  spatialLayer: number;
  temporalLayer?: number;
}

/** Something another member publishes, as this client receives it. */
export interface RemoteTrack {
  readonly consumerId: string;
  readonly producerId: string;
  readonly peer: Peer;
  readonly kind: MediaKind;
  readonly source: ProducerSource;
  readonly track: MediaStreamTrack;
  /** The producer is paused (its owner muted it). */
  readonly paused: boolean;
  /** The layers the SFU forwards now (simulcast), null when none. */
  readonly layers: Layers | null;
  /** The SFU's score of this stream, 0–10. */
  readonly score: number;
  /** The browser's statistics of its RTP (inbound-rtp: frames decoded, size, packets…). */
  getStats(): Promise<RTCStatsReport>;
}

/** A RemoteTrack with its consumer: what a RoomMedia holds (and hands out as RemoteTrack). */
export interface ReceivedTrack extends RemoteTrack {
  readonly consumer: ms.Consumer;
  paused: boolean;
  layers: Layers | null;
  score: number;
}

/** The RemoteTrack of `consumer`, consuming what eventNewConsumer `d` offered. */
export function receivedTrack(
  consumer: ms.Consumer,
  d: RoomEvents['eventNewConsumer'],
): ReceivedTrack {
  return {
    consumerId: consumer.id,
    producerId: d.producerId,
    peer: d.peer,
    kind: d.kind,
    source: d.source,
    track: consumer.track,
    paused: d.producerPaused,
    layers: null,
    score: 10,
    consumer,
    getStats: async () => await consumer.getStats(),
  };
}
