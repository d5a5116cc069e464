export * from './infra.ts';
export * from './nats.ts';
export * from './net.ts';
export * from './paths.ts';
export * from './postgres.ts';
export * from './process.ts';
export * from './services.ts';
export * from './testkit.ts';
