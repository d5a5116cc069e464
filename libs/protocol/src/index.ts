export * from './errors.ts';
export * from './validate.ts';
export * from './client.ts';
export * from './bus.ts';
export * from './config.ts';
export * from './http.ts';
export * from './events.ts';
