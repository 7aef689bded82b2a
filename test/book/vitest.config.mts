import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The browser suites (run by tools/browser-tests.mjs, after the notebooks have run): the static book
// in Debian's Chromium and the JupyterLab flow. One file at a time: the machine has two cores.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    include: ["test/book/**/*.browser.test.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    passWithNoTests: false,
    env: { TF_CPP_MIN_LOG_LEVEL: "2" },
  },
});
