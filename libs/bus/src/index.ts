export * from './bus.ts';
export * from './trace.ts';
