export * from './bus.ts';
export * from './trace.ts';
export * from './client-calls.ts';
export * from './auth.ts';
