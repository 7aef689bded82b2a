import { defineConfig } from "vitest/config";

// Unit tests on tiny shapes; the notebook, figure and browser suites are run by tools/test.mjs.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/book/**", "node_modules/**"],
    pool: "forks",
    testTimeout: 60_000,
    passWithNoTests: false,
    env: { TF_CPP_MIN_LOG_LEVEL: "2" },
  },
});
