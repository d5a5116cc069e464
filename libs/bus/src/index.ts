export * from './bus.ts';
export * from './trace.ts';
export * from './client-calls.ts';
