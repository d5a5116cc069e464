import { configDefaults, defineConfig } from 'vitest/config';

/** The browser test that needs the machine to itself (see below). */
const ALONE = ['test/e2e/firefox.test.ts'];

export default defineConfig({
  test: {
    // NATS and PostgreSQL for the whole run: the reachable ones, or started for it.
    globalSetup: ['tools/devstack/src/vitest-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    restoreMocks: true,
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: [
            'libs/*/test/**/*.test.ts',
            'services/*/test/**/*.test.ts',
            'tools/*/test/**/*.test.ts',
            'test/**/*.test.ts',
            'scripts/test/**/*.test.ts',
          ],
          exclude: [...configDefaults.exclude, ...ALONE],
          // Two cores: tests spawn real services, workers and browsers of their own.
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          // Simulcast's upper layers are what a browser drops first when its CPU or bandwidth
          // estimate runs short: the layer test runs after the rest, with nothing beside it.
          name: 'alone',
          include: ALONE,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
