/**
 * What a client frame is beyond its schema: its text, the parts of a bad frame that may be
 * echoed in the error reply, the SDP in either of its forms, the device fields of a join.
 * And the server's frames as bytes, encoded once for however many sockets they go to.
 */
import {
  ClientActions,
  ProtocolError,
  SessionDescription,
  formatIssues,
  validator,
  type EventFrameMessage,
  type JoinData,
  type RequestId,
} from '@switchboard/protocol';

/** An error reply's action when the frame's own cannot be known (not JSON, no `a`). */
export const UNKNOWN_FRAME_ACTION = 'error';

const sessionDescription = validator(SessionDescription);

/** The device fields of a join, and only those (unknown fields are not passed on). */
export function deviceOf(d: JoinData): Omit<JoinData, 'roomId' | 'bearer'> {
  // Undefined values are dropped by JSON.stringify on the way to the bus.
  return {
    platform: d.platform,
    deviceName: d.deviceName,
    networkType: d.networkType,
    version: d.version,
    appVersion: d.appVersion,
    orientation: d.orientation,
    camera: d.camera,
  };
}

/** The SDP as an RTCSessionDescriptionInit: given as the object, or as its JSON text. */
export function decodeSdp(sdp: unknown): {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback';
  sdp: string;
} {
  let value = sdp;
  if (typeof sdp === 'string') {
    try {
      value = JSON.parse(sdp);
    } catch {
      throw new ProtocolError('SDP_DECODE', 'the SDP text is not JSON');
    }
  }
  const parsed = sessionDescription.parse(value);
  if (!parsed.ok) throw new ProtocolError('SDP_DECODE', formatIssues(parsed.issues));
  if (parsed.value.type !== 'rollback' && !parsed.value.sdp.startsWith('v=0')) {
    throw new ProtocolError('SDP_DECODE', 'the SDP does not start with v=0');
  }
  return parsed.value;
}

export function frameText(data: unknown): string {
  if (typeof data === 'string') return data;
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return '';
}

/**
 * A server frame as the UTF-8 JSON of one WebSocket text frame. A room broadcast is encoded
 * once and the same bytes are written to every member: n members cost one JSON.stringify
 * and one UTF-8 conversion, not n.
 */
export interface EncodedFrame {
  readonly bytes: Buffer;
  /** It is (or carries) eventMediaReset: the receiver's media requests start anew. */
  readonly mediaReset: boolean;
}

export function encodeFrame(frame: object): Buffer {
  return Buffer.from(JSON.stringify(frame), 'utf8');
}

export function encodeEvent(event: EventFrameMessage): EncodedFrame {
  return { bytes: encodeFrame(event), mediaReset: event.a === 'eventMediaReset' };
}

/** An action name the envelope accepts (so it may be echoed in a reply). */
export function isActionName(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= 64;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function requestIdOf(v: unknown): RequestId | undefined {
  if (typeof v === 'string' && v.length > 0 && v.length <= 64) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  return undefined;
}

/** Actions as metric labels: unknown names are folded so clients cannot grow the label set. */
export function metricAction(action: string): string {
  return Object.hasOwn(ClientActions, action) || action === 'eventCpu' || action === 'eventFreeze'
    ? action
    : 'other';
}
