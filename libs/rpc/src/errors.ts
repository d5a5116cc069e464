import {
  RpcStatusCodes,
  rpcStatusName,
  type RpcCode,
  type RpcMetadata,
  type RpcStatusName,
} from '@switchboard/protocol';

/**
 * A call that ended with a status other than OK: its code, message and trailers. Thrown by
 * handlers to answer with that status; thrown to callers for every failed call.
 */
export class RpcError extends Error {
  readonly code: RpcCode;
  readonly status: RpcStatusName;
  /** The trailers the call ended with (empty when it ended locally). */
  readonly metadata: RpcMetadata;

  constructor(
    status: RpcStatusName,
    message?: string,
    metadata: RpcMetadata = {},
    options?: ErrorOptions,
  ) {
    super(message ?? RpcStatusCodes[status].message, options);
    this.name = 'RpcError';
    this.status = status;
    this.code = RpcStatusCodes[status].code;
    this.metadata = metadata;
  }

  /** From a code received over the wire (outside the table: UNKNOWN). */
  static fromCode(code: number, message?: string, metadata?: RpcMetadata): RpcError {
    return new RpcError(rpcStatusName(code), message, metadata);
  }
}

export function isRpcError(err: unknown): err is RpcError {
  return err instanceof RpcError;
}
