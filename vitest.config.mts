import { defineConfig } from 'vitest/config';

// src/pg/sql/*.sql are imported as text, as esbuild's text loader does in the build.
const sqlText = {
  name: 'sql-text',
  transform(code: string, id: string) {
    return id.endsWith('.sql') ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
  },
};

export default defineConfig({
  test: {
    // scripts/run-tests.sh runs the cluster project apart and gives it a report of its own.
    reporters: ['default', ['json', { outputFile: process.env.PGTWIN_TEST_REPORT ?? 'dist/test-results.json' }]],
    projects: [
      {
        plugins: [sqlText],
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        plugins: [sqlText],
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          // One Pacemaker and one pair of clusters: files take turns.
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        // The multi-node rig (scripts/cluster-rig.sh). Run on its own, after the
        // other projects (scripts/run-tests.sh), never beside them: its nodes
        // power off and fail over, and they share the machine's two cores.
        test: {
          name: 'cluster',
          // After every other project when a single run includes them all.
          sequence: { groupOrder: 1 },
          include: ['test/cluster/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/cluster-global-setup.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
      {
        // Benchmarks on the cluster rig (make bench-cluster): numbers, not tests; never part of make test.
        test: {
          name: 'bench-cluster',
          include: ['bench/cluster.ts'],
          environment: 'node',
          globalSetup: ['test/support/cluster-global-setup.ts'],
          fileParallelism: false,
          testTimeout: 3_600_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
