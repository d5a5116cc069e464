import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'libs/*/test/**/*.test.ts',
      'services/*/test/**/*.test.ts',
      'tools/*/test/**/*.test.ts',
      'test/**/*.test.ts',
      'scripts/test/**/*.test.ts',
    ],
    // NATS and PostgreSQL for the whole run: the reachable ones, or started for it.
    globalSetup: ['tools/devstack/src/vitest-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: tests spawn real services, workers and browsers of their own.
    maxWorkers: 2,
    restoreMocks: true,
  },
});
