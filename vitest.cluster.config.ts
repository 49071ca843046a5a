import { defineConfig } from 'vitest/config';

/** `npm run test:cluster`: the end-to-end suite on a real single-node cluster (test/cluster). */
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    // One cluster, one file at a time: the steps share it.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 900_000,
    setupFiles: ['test/support/temp-cleanup.ts'],
  },
});
