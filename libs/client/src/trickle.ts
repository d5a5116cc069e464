/** Trickle ICE for calls to hosts: a local candidate to the other side, through the link. */
import type { IceCandidate } from '@switchboard/protocol';
import type { IceCandidateInit } from '@switchboard/rpc';
import type { SignalingLink } from './link.ts';

/**
 * Send `c` (a local candidate of call `callId`) with `exchangeCallCandidate`. The end-of-
 * candidates marker (an empty candidate) is not sent. A failure is reported while `wanted()`
 * (after the gateway's linger, or a drop, candidates have nowhere to go: ICE has them).
 */
export function trickle(
  link: SignalingLink,
  callId: string,
  c: IceCandidateInit,
  wanted: () => boolean = () => true,
): void {
  if (c.candidate === undefined || c.candidate === '') return;
  const candidate: IceCandidate = {
    candidate: c.candidate,
    ...(c.sdpMid === undefined ? {} : { sdpMid: c.sdpMid }),
    ...(c.sdpMLineIndex === undefined ? {} : { sdpMLineIndex: c.sdpMLineIndex }),
  };
  link.request('exchangeCallCandidate', { callId, candidate }).catch((err: unknown) => {
    if (wanted())
      link.reportError(err instanceof Error ? err : new Error(String(err)), 'a candidate');
  });
}
