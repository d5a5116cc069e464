import { formatIssues, type Issue } from './validate.ts';

/**
 * What a caller does after an error, the same wherever it comes from (one column of the table
 * below, so no caller keeps a list of its own):
 * - `never`: the request is refused as it is (its input, its credentials, the room's rules):
 *   sending it again changes nothing; a client gives up and says why;
 * - `backoff`: the platform could not serve it now (no instance, a deadline, a restart, a
 *   limit of the moment): the same request, after a backoff, can succeed;
 * - `depends`: the outcome depends on state that changes (the room, a session, a media object,
 *   a host) or on a fault (SYSTEM): a caller retries where it knows that state may have moved
 *   on — a client's reconnect does, a gateway delivering a disconnect does not.
 */
export type RetryClass = 'never' | 'backoff' | 'depends';

/**
 * The one table of error codes. Every error that crosses a process boundary (a WebSocket
 * reply's `e`, a bus reply's `error.code`) is one of these. The numbering follows the
 * original signaling server (0x5xx); codes it did not have are added in its gaps.
 */
export const ErrorCodes = {
  SYSTEM: { code: 0x500, message: 'Internal error', retry: 'depends' },
  JSON: { code: 0x502, message: 'The frame is not valid JSON', retry: 'never' },
  JSON_FIELD_MISSING: { code: 0x503, message: 'A required field is missing', retry: 'never' },
  JSON_FIELD_INVALID: {
    code: 0x504,
    message: 'A field has the wrong type or value',
    retry: 'never',
  },
  AUTH_FAILED: { code: 0x506, message: 'The bearer token was rejected', retry: 'never' },
  PERMISSION_DENIED: {
    code: 0x507,
    message: "The token's grants do not allow this",
    retry: 'never',
  },
  UNKNOWN_ACTION: { code: 0x510, message: 'Unknown action', retry: 'never' },
  USER_NOT_AUTHENTICATED: { code: 0x511, message: 'Join a room first', retry: 'never' },
  SOCKET_ID_DOES_NOT_EXIST: { code: 0x512, message: 'No such socketId', retry: 'depends' },
  ROOM_NOT_FOUND: { code: 0x521, message: 'No such room', retry: 'depends' },
  ROOM_IS_NOT_JOINABLE: { code: 0x522, message: 'The room cannot be joined', retry: 'never' },
  ROOM_ALREADY_JOINED: {
    code: 0x523,
    message: 'This connection already joined a room',
    retry: 'never',
  },
  ROOM_IS_FULL: { code: 0x524, message: 'The room is full', retry: 'never' },
  TOO_MANY_SESSIONS: {
    code: 0x525,
    message: 'This user already holds the most sessions allowed in this room',
    retry: 'depends',
  },
  SDP_DECODE: { code: 0x528, message: 'The SDP could not be decoded', retry: 'never' },
  SERVICE_UNAVAILABLE: {
    code: 0x530,
    message: 'No instance of the service is available',
    retry: 'backoff',
  },
  TIMEOUT: { code: 0x531, message: 'The request deadline passed', retry: 'backoff' },
  CANCELLED: { code: 0x532, message: 'The request was cancelled', retry: 'backoff' },
  RATE_LIMITED: { code: 0x533, message: 'Too many requests', retry: 'backoff' },
  SHUTTING_DOWN: { code: 0x534, message: 'The service is shutting down', retry: 'backoff' },
  MEDIA_NOT_FOUND: {
    code: 0x540,
    message: 'No such transport, producer or consumer of this session',
    retry: 'depends',
  },
  MEDIA_LIMIT: {
    code: 0x541,
    message: 'Too many transports, producers or consumers',
    retry: 'depends',
  },
  MEDIA_RESET: {
    code: 0x542,
    message: "The room's media was re-created: start again from getRouterRtpCapabilities",
    retry: 'depends',
  },
  HOST_UNAVAILABLE: {
    code: 0x550,
    message: 'No such host: it never came online, or not for a long time',
    retry: 'depends',
  },
  CALL_REJECTED: { code: 0x551, message: 'The host refused the call', retry: 'never' },
  CALL_TIMEOUT: { code: 0x552, message: 'No answer from the host in time', retry: 'depends' },
  CALL_LIMIT: {
    code: 0x553,
    message: 'Too many calls waiting for this host, or made at once',
    retry: 'backoff',
  },
  CALL_NOT_FOUND: { code: 0x554, message: 'No such call of this connection', retry: 'depends' },
} as const satisfies Record<string, { code: number; message: string; retry: RetryClass }>;

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

  /** What a caller does about it (see RetryClass). */
  get retry(): RetryClass {
    return ErrorCodes[this.errorName].retry;
  }

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
