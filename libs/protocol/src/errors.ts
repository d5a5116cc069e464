import { formatIssues, type Issue } from './validate.ts';

/**
 * The one table of error codes. Every error that crosses a process boundary (a WebSocket
 * reply's `e`, a bus reply's `error.code`) is one of these. The numbering follows the
 * original signaling server (0x5xx); codes it did not have are added in its gaps.
 */
export const ErrorCodes = {
  SYSTEM: { code: 0x500, message: 'Internal error' },
  JSON: { code: 0x502, message: 'The frame is not valid JSON' },
  JSON_FIELD_MISSING: { code: 0x503, message: 'A required field is missing' },
  JSON_FIELD_INVALID: { code: 0x504, message: 'A field has the wrong type or value' },
  AUTH_FAILED: { code: 0x506, message: 'The bearer token was rejected' },
  PERMISSION_DENIED: { code: 0x507, message: "The token's grants do not allow this" },
  UNKNOWN_ACTION: { code: 0x510, message: 'Unknown action' },
  USER_NOT_AUTHENTICATED: { code: 0x511, message: 'Join a room first' },
  SOCKET_ID_DOES_NOT_EXIST: { code: 0x512, message: 'No such socketId' },
  ROOM_NOT_FOUND: { code: 0x521, message: 'No such room' },
  ROOM_IS_NOT_JOINABLE: { code: 0x522, message: 'The room cannot be joined' },
  ROOM_ALREADY_JOINED: { code: 0x523, message: 'This connection already joined a room' },
  ROOM_IS_FULL: { code: 0x524, message: 'The room is full' },
  TOO_MANY_SESSIONS: {
    code: 0x525,
    message: 'This user already holds the most sessions allowed in this room',
  },
  SDP_DECODE: { code: 0x528, message: 'The SDP could not be decoded' },
  SERVICE_UNAVAILABLE: { code: 0x530, message: 'No instance of the service is available' },
  TIMEOUT: { code: 0x531, message: 'The request deadline passed' },
  CANCELLED: { code: 0x532, message: 'The request was cancelled' },
  RATE_LIMITED: { code: 0x533, message: 'Too many requests' },
  SHUTTING_DOWN: { code: 0x534, message: 'The service is shutting down' },
  MEDIA_NOT_FOUND: {
    code: 0x540,
    message: 'No such transport, producer or consumer of this session',
  },
  MEDIA_LIMIT: { code: 0x541, message: 'Too many transports, producers or consumers' },
  MEDIA_RESET: {
    code: 0x542,
    message: "The room's media was re-created: start again from getRouterRtpCapabilities",
  },
  HOST_UNAVAILABLE: {
    code: 0x550,
    message: 'No such host: it never came online, or not for a long time',
  },
  CALL_REJECTED: { code: 0x551, message: 'The host refused the call' },
  CALL_TIMEOUT: { code: 0x552, message: 'No answer from the host in time' },
  CALL_LIMIT: { code: 0x553, message: 'Too many calls waiting for this host, or made at once' },
  CALL_NOT_FOUND: { code: 0x554, message: 'No such call of this connection' },
} as const satisfies Record<string, { code: number; message: string }>;

export type ErrorName = keyof typeof ErrorCodes;
export type ErrorCode = (typeof ErrorCodes)[ErrorName]['code'];

const byCode = new Map<number, ErrorName>(
  (Object.keys(ErrorCodes) as ErrorName[]).map((name) => [ErrorCodes[name].code, name]),
);

/** The name of a known code, or undefined for a number that is not in the table. */
export function errorName(code: number): ErrorName | undefined {
  return byCode.get(code);
}

/**
 * An error that carries a protocol code. Thrown by handlers, mapped onto the wire
 * unchanged; any other error becomes SYSTEM (and is logged where it happened).
 */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly errorName: ErrorName;

  constructor(name: ErrorName, detail?: string, options?: ErrorOptions) {
    const entry = ErrorCodes[name];
    super(detail === undefined ? entry.message : `${entry.message}: ${detail}`, options);
    this.name = 'ProtocolError';
    this.code = entry.code;
    this.errorName = name;
  }

  /** Rebuild from a code received over the wire (unknown codes become SYSTEM). */
  static fromCode(code: number, message?: string): ProtocolError {
    const name = errorName(code) ?? 'SYSTEM';
    const err = new ProtocolError(name);
    if (message !== undefined) err.message = message;
    return err;
  }
}

/**
 * The error for a payload that failed its schema: JSON_FIELD_MISSING when a required field
 * is absent, JSON_FIELD_INVALID otherwise; the issues are its detail.
 */
export function invalidPayload(issues: readonly Issue[]): ProtocolError {
  return new ProtocolError(
    issues.some((i) => i.missing) ? 'JSON_FIELD_MISSING' : 'JSON_FIELD_INVALID',
    formatIssues(issues),
  );
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
