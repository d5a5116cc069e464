/**
 * The options a room Session (`connect()`) and a SignalingLink (a host's, a caller's) share,
 * their defaults, and what the two give the parts they are built on (a Reconnector, a
 * TokenRefresher).
 */
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import type { WebSocketFactory } from './connection.ts';
import type { Emitter } from './emitter.ts';
import { Lifecycle, defaultWebSocket, reportingEvents, type ErrorInfo } from './lifecycle.ts';
import type { ReconnectorEventSink } from './reconnector.ts';

export interface GatewayOptions {
  /** The bearer token (a JWT from your backend). */
  token: string;
  /** Supplies a new token before this one expires, and when a join (a sign-in) refuses it. */
  refreshToken?: (signal: AbortSignal) => Promise<string>;
  /** How long before `exp` to refresh (default 60 s; at most ½ of the remaining life). */
  tokenRefreshMarginMs?: number;
  /** Default deadline of each request (default 10 s). */
  requestTimeoutMs?: number;
  /** Deadline of opening one WebSocket and joining (signing in) on it (default 10 s). */
  connectTimeoutMs?: number;
  /** How long the first connect keeps retrying a gateway that cannot be reached (default 30 s). */
  firstConnectRetryMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Failures in a row for this long put it to sleep until `activity()` (default 5 min). */
  dormancyAfterMs?: number;
  /** Opens a WebSocket (default: the global WebSocket of browsers and Node 22). */
  WebSocket?: WebSocketFactory;
  /** [0, 1) random numbers for the jitter (tests). */
  random?: () => number;
  /** Where errors go when no `error` listener is registered (default console.error). */
  onError?: (error: Error, context: string) => void;
}

/** GatewayOptions with their defaults (the token aside: it changes). */
export interface GatewaySettings {
  refreshToken: ((signal: AbortSignal) => Promise<string>) | undefined;
  tokenRefreshMarginMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  firstConnectRetryMs: number;
  backoff: BackoffOptions;
  dormancyAfterMs: number;
  WebSocket: WebSocketFactory;
  random: () => number;
  onError: (error: Error, context: string) => void;
}

export function gatewaySettings(options: GatewayOptions): GatewaySettings {
  return {
    refreshToken: options.refreshToken,
    tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 60_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    firstConnectRetryMs: options.firstConnectRetryMs ?? 30_000,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    dormancyAfterMs: options.dormancyAfterMs ?? 5 * 60_000,
    WebSocket: options.WebSocket ?? defaultWebSocket,
    random: options.random ?? Math.random,
    onError:
      options.onError ??
      ((error, context) => {
        console.error(`switchboard client: ${context}:`, error);
      }),
  };
}

/**
 * What a Session or a SignalingLink is before what makes it one: its settings, its life
 * (closing it ends every wait, try and timer of its parts), its events and where its errors
 * go (its `error` event, or `onError`).
 */
export interface ClientBase<Events extends { error: ErrorInfo }> {
  readonly settings: GatewaySettings;
  readonly lc: Lifecycle;
  readonly events: Emitter<Events>;
  readonly reportError: (error: Error, context: string) => void;
}

export function clientBase<Events extends { error: ErrorInfo }>(
  options: GatewayOptions,
): ClientBase<Events> {
  const settings = gatewaySettings(options);
  const { events, report } = reportingEvents<Events>(settings.onError);
  return { settings, lc: new Lifecycle(), events, reportError: report };
}

/** A Session or a SignalingLink as the parts it is built on see it (its events: theirs too). */
export interface GatewayOwner {
  readonly settings: GatewaySettings;
  readonly lc: Lifecycle;
  readonly events: ReconnectorEventSink;
  readonly reportError: (error: Error, context: string) => void;
}
