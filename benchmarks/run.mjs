// `npm run bench`: every side-by-side speed run in benchmarks/, one after another.
// Ratios against PyTorch on a shared machine are noisy; they are printed, never pass/fail.
//
// The PyTorch peer lives in its own venv, .cache/bench-venv (never the project's .venv), with
// torch==2.13.0 exactly: that spec resolves to the CPU wheel; a looser one pulls a CUDA build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// One line per benchmark: [script, ...its arguments].
const BENCHMARKS = [
  ["benchmarks/train-step.ts"],
  ["benchmarks/generate.ts"],
];

const venv = join(root, ".cache", "bench-venv");
const python = join(venv, "bin", "python");

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status})`);
}

function ensurePeer() {
  const ok = existsSync(python) &&
    spawnSync(python, ["-c", "import torch, numpy; assert torch.__version__.startswith('2.13.0')"], { stdio: "ignore" }).status === 0;
  if (ok) return;
  console.log("::: making .cache/bench-venv with torch==2.13.0 (the PyTorch peer)");
  if (!existsSync(python)) sh("python3", ["-m", "venv", venv]);
  sh(python, ["-m", "pip", "install", "-q", "torch==2.13.0", "numpy"]);
}

ensurePeer();
let failed = 0;
for (const [script, ...args] of BENCHMARKS) {
  console.log(`\n::: ${script} ${args.join(" ")}`);
  const r = spawnSync(join(root, "node_modules", ".bin", "tsx"), [script, ...args], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" },
  });
  if (r.status !== 0) {
    console.log(`::: ${script} exited with ${r.status}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
