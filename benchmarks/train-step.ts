// One training step of the BASE decoder (forward + backward + clipping + AdamW, lib/train.ts's
// trainStep) at batch 32 × seq 64 on tfjs-node, against the same model and step in PyTorch
// (benchmarks/train_step_torch.py), both on 2 threads, measured side by side in one run.
//
//   npx tsx benchmarks/train-step.ts [--rounds 4] [--steps 5] [--warmup 3] [--threads 2] [--profile] [--json out.json]
//   (--batch 1 --seq 2 measures the fixed cost of a step: the per-op overhead with next to no arithmetic)
//
// The two sides take turns (R rounds of S steps each), so a burst of load from another process on
// this shared machine hits both rather than one. Each side's number is the median of its R·S timed
// steps after W warm-up steps; every step reads its loss back (a sync), as a training loop does.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PYTHON, TorchPeer, median } from "./peer";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const THREADS = arg("threads", 2);
// TensorFlow reads its thread counts when its first op runs, so they are set before tfjs loads.
// intra-op: the threads one op (a matMul) splits its work over, the same knob as torch.set_num_threads;
// inter-op 1: eager ops run one after another, as in PyTorch.
process.env.TF_NUM_INTRAOP_THREADS = String(THREADS);
process.env.TF_NUM_INTEROP_THREADS ??= "1";
process.env.TF_CPP_MIN_LOG_LEVEL ??= "2";

const ROUNDS = arg("rounds", 4), STEPS = arg("steps", 5), WARMUP = arg("warmup", 3);
const BATCH = arg("batch", 32), SEQ = arg("seq", 64);
async function main(): Promise<void> {
  const { tf, Rng } = await import("../lib/tf");
  const { BASE, initDecoder, lmLoss, countParams } = await import("../lib/decoder");
  const { adamw, trainStep, batches } = await import("../lib/train");
  type Params = import("../lib/decoder").Params;

  const config = BASE;
  const params = initDecoder(config, 42);
  const state = adamw(params, Object.keys(params), { clip: 1.0, weightDecay: 0.1 });
  const loss = (p: Params, b: import("@tensorflow/tfjs").Tensor2D) => lmLoss(p, config, b);
  const rng = new Rng(1);
  const tokens = Int32Array.from({ length: 100_000 }, () => rng.int(config.vocabSize));
  const next = batches(tokens, BATCH, SEQ, new Rng(2));

  const tfjsTimes: number[] = [];
  let cpuMicros = 0, wallMs = 0;
  const tfjsSteps = (n: number, record: boolean) => {
    for (let i = 0; i < n; i++) {
      const batch = next(); // drawn outside the timer on both sides
      const c0 = process.cpuUsage(), t0 = performance.now();
      const l = trainStep(params, loss, batch, state, 1e-3);
      l.dataSync();
      const dt = performance.now() - t0, c = process.cpuUsage(c0);
      tf.dispose([l, batch]);
      if (record) { tfjsTimes.push(dt); cpuMicros += c.user + c.system; wallMs += dt; }
    }
  };

  const havePython = fs.existsSync(PYTHON);
  if (!havePython) {
    console.log(`PyTorch peer skipped: ${PYTHON} is missing. Make it with\n  python3 -m venv .cache/bench-venv && .cache/bench-venv/bin/pip install torch==2.13.0 numpy\n(or run \`npm run bench\`, which does that).`);
  }
  const peer = havePython ? new TorchPeer("train_step_torch.py", { config, batch: BATCH, seq: SEQ, threads: THREADS, seed: 42 }) : null;
  const torchInfo = peer ? await peer.ask("info") : null;
  const torchTimes: { [variant: string]: number[] } = { eager: [], sdpa: [] };
  const torchCpu: { [variant: string]: number } = { eager: 0, sdpa: 0 };
  const torchWall: { [variant: string]: number } = { eager: 0, sdpa: 0 };
  const load0 = os.loadavg()[0];

  tfjsSteps(WARMUP, false);
  if (peer) for (const v of ["eager", "sdpa"]) await peer.ask(`${v} ${WARMUP}`);
  for (let r = 0; r < ROUNDS; r++) {
    tfjsSteps(STEPS, true);
    if (!peer) continue;
    for (const v of ["eager", "sdpa"]) {
      const out = await peer.ask(`${v} ${STEPS}`);
      torchTimes[v].push(...out.times_ms);
      torchCpu[v] += out.cpu_ms;
      torchWall[v] += out.wall_ms;
    }
  }
  const load1 = os.loadavg()[0];

  // One profiled step: how many tfjs kernels a step runs, how many of them reach TensorFlow as an
  // op (Identity, for one, is bookkeeping in JS), and the CPU time of each op type. CPU time, not
  // tf.profile's wall time, so that other processes on a loaded machine do not inflate it.
  const batch = next();
  const info = await tf.profile(() => { const l = trainStep(params, loss, batch, state, 1e-3); l.dataSync(); return l; });
  const kernels = info.kernels.length;
  const backend = tf.backend() as unknown as { [k: string]: (name: string, ...rest: unknown[]) => unknown };
  const byOp = new Map<string, { count: number; us: number }>();
  const originals: [string, (name: string, ...rest: unknown[]) => unknown][] = [];
  for (const fn of ["executeSingleOutput", "executeMultipleOutputs"]) {
    const orig = backend[fn];
    originals.push([fn, orig]);
    backend[fn] = function (this: unknown, name: string, ...rest: unknown[]) {
      const c0 = process.cpuUsage();
      const out = orig.call(this, name, ...rest);
      const c = process.cpuUsage(c0);
      const e = byOp.get(name) ?? { count: 0, us: 0 };
      e.count++;
      e.us += c.user + c.system;
      byOp.set(name, e);
      return out;
    };
  }
  const c0 = process.cpuUsage();
  tf.dispose(trainStep(params, loss, batch, state, 1e-3));
  const cStep = process.cpuUsage(c0);
  for (const [fn, orig] of originals) backend[fn] = orig;
  tf.dispose(batch);
  const tfOps = [...byOp.values()].reduce((a, e) => a + e.count, 0);
  const opUs = [...byOp.values()].reduce((a, e) => a + e.us, 0);
  peer?.close();

  const n = countParams(config).total;
  const tfjsMs = median(tfjsTimes);
  // cores: CPU time / wall time while stepping (≤ threads; well below it means other processes took the CPU)
  // cpu ms: CPU time per step, all threads: the work itself, less sensitive to load than wall time
  const rows: [string, number, number, number, number][] = [
    [`tfjs-node ${tf.version.tfjs} (${tf.getBackend()})`, tfjsMs, Math.min(...tfjsTimes), cpuMicros / 1000 / wallMs, cpuMicros / 1000 / tfjsTimes.length],
  ];
  if (peer) {
    for (const [v, label] of [["eager", "eager"], ["sdpa", "SDPA attention"]]) {
      rows.push([`PyTorch ${torchInfo.torch} ${label}`, median(torchTimes[v]), Math.min(...torchTimes[v]),
        torchCpu[v] / torchWall[v], torchCpu[v] / torchTimes[v].length]);
    }
  }
  console.log(`\nTraining step (forward + backward + clip + AdamW): BASE decoder d${config.dModel} × ${config.nLayers} layers, ` +
    `${(n / 1e6).toFixed(2)}M params, batch ${BATCH} × seq ${SEQ}`);
  console.log(`threads: tfjs intra-op ${process.env.TF_NUM_INTRAOP_THREADS} (inter-op ${process.env.TF_NUM_INTEROP_THREADS}), ` +
    `torch ${torchInfo ? torchInfo.threads : "-"}; ${ROUNDS} rounds × ${STEPS} steps each side after ${WARMUP} warm-up; ` +
    `load average ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${os.cpus().length} cores`);
  console.log(`${"".padEnd(34)}${"median ms".padStart(10)}${"min ms".padStart(9)}${"cores".padStart(7)}${"cpu ms".padStart(8)}`);
  for (const [name, med, min, cores, cpu] of rows)
    console.log(`${name.padEnd(34)}${med.toFixed(0).padStart(10)}${min.toFixed(0).padStart(9)}${cores.toFixed(2).padStart(7)}${cpu.toFixed(0).padStart(8)}`);
  const ratios: { [k: string]: number } = {};
  if (peer) {
    ratios.eager = tfjsMs / median(torchTimes.eager);
    ratios.sdpa = tfjsMs / median(torchTimes.sdpa);
    ratios.eagerCpu = rows[0][4] / rows[1][4];
    console.log(`ratio tfjs / torch eager: ${ratios.eager.toFixed(2)}× (median wall; CPU time ${ratios.eagerCpu.toFixed(2)}×)   ` +
      `tfjs / torch SDPA: ${ratios.sdpa.toFixed(2)}×   (goal ≤ 1.5×)`);
  }

  console.log(`tfjs per step: ${kernels} kernels, ${tfOps} of them TensorFlow ops`);
  if (process.argv.includes("--profile")) {
    const stepMs = (cStep.user + cStep.system) / 1000;
    console.log(`\nCPU time of one tfjs step by TensorFlow op (${stepMs.toFixed(0)} ms; ${(opUs / 1000).toFixed(0)} ms inside ops, ` +
      `${(stepMs - opUs / 1000).toFixed(0)} ms in JS around them: tape, tidy, shape checks, scalar uploads):`);
    for (const [name, e] of [...byOp].sort((x, y) => y[1].us - x[1].us).slice(0, 16))
      console.log(`  ${name.padEnd(22)}${String(e.count).padStart(6)}${(e.us / 1000).toFixed(1).padStart(9)} ms${(e.us / e.count).toFixed(0).padStart(8)} µs each`);
  }
  if (Math.max(load0, load1) > os.cpus().length) {
    console.log(`warning: load average ${Math.max(load0, load1).toFixed(1)} on ${os.cpus().length} cores — other processes held the CPU, ` +
      `and PyTorch's OpenMP threads wait for each other when one is descheduled, so its wall-clock numbers collapse ` +
      `first; compare the CPU-time ratio at --threads 1, or rerun when the machine is idle.`);
  }
  const jsonOut = process.argv.indexOf("--json");
  if (jsonOut >= 0) {
    fs.writeFileSync(process.argv[jsonOut + 1], JSON.stringify({
      config, batch: BATCH, seq: SEQ, threads: THREADS, rounds: ROUNDS, steps: STEPS, warmup: WARMUP, kernels, tfOps,
      tfjs: { median_ms: tfjsMs, times_ms: tfjsTimes }, torch: peer ? { ...torchInfo, times_ms: torchTimes } : null,
      rows: rows.map(([name, med, min, cores, cpu]) => ({ name, median_ms: med, min_ms: min, cores, cpu_ms: cpu })), ratios, load: [load0, load1],
    }, null, 1) + "\n");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
