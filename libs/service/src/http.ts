import type { FastifyReply } from 'fastify';

/**
 * An AbortSignal that fires when the HTTP client goes away before its response is sent,
 * so work done for a request (bus requests, queries) stops with it.
 */
export function requestSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  // The response's 'close' comes after the response is sent, or when the connection drops
  // first (the request's own 'close' comes as soon as its body has been read).
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort(new Error('client closed the request'));
  });
  return ac.signal;
}
