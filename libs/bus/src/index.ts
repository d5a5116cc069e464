export * from './bus.ts';
export * from './bus-like.ts';
export { JsonText, type RequestOptions } from './sender.ts';
export type { Handler, HandlerContext } from './served-method.ts';
export type { BusSubscription, Incoming, SubscriptionHandler } from './subscription.ts';
export * from './trace.ts';
export * from './client-calls.ts';
export * from './auth.ts';
