export * from './config.ts';
export * from './readiness.ts';
export * from './service.ts';
// Services use the same logger and metrics types as the runtime that creates them.
export type { Logger } from 'pino';
export { Counter, Gauge, Histogram, type Registry } from 'prom-client';
export * from './http.ts';
export * from './nats-auth.ts';
export * from './sleep.ts';
export * from './api-keys.ts';
