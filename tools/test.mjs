// npm test (after tools/setup.mjs): every check of the book, in order, stopping at the first failure.
//   1. tsc --strict on lib/, test/, tools/ and benchmarks/
//   2. the notebooks match their sources (identical code cells by construction)
//   3. vitest: lib unit tests on tiny shapes, notebook structure tests
//   4. the scaling sweep regenerated (tools/sweep.ts -> data/sweep.json; each run cached, CI starts cold)
//   5. every notebook executed headless (00-overview twice: byte-identical specs), figures checked
//   6. the HTML book built, then tested in Chromium with the JupyterLab flow (tools/browser-tests.mjs)
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
const steps = [
  ["typecheck (tsc --strict)", bin("tsc"), ["-p", "tsconfig.json"]],
  ["notebooks match notebooks/src", process.execPath, ["tools/notebooks.mjs", "--check"]],
  ["unit tests (vitest)", bin("vitest"), ["run"]],
  ["scaling sweep (tools/sweep.ts)", process.execPath, [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), "tools/sweep.ts", "--jobs", "2"]],
  ["notebooks headless + figures", process.execPath, ["tools/run-notebooks.mjs", "--twice=00-overview"]],
  ["book + browser tests", process.execPath, ["tools/browser-tests.mjs"]],
];
const t0 = Date.now();
for (const [name, cmd, args] of steps) {
  const start = Date.now();
  console.log(`\n=== ${name}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  const s = ((Date.now() - start) / 1000).toFixed(1);
  if (r.status !== 0) {
    console.error(`\n=== FAILED: ${name} (exit ${r.status}, ${s} s)`);
    process.exit(1);
  }
  console.log(`=== ok: ${name} (${s} s)`);
}
console.log(`\nnpm test: all ${steps.length} stages passed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
