// The scaling sweep behind notebooks/05-scaling-laws: a grid of tiny decoder-only models, every
// one trained with the same recipe on the English corpus (Shakespeare, character tokens), each
// (model size N, token budget D) its own run with its own cosine schedule — as Hoffmann et al.
// (2022) insist, a schedule longer than the run overstates the loss at the point where it stops.
// Each run's final held-out loss is recorded with N (non-embedding parameters, Kaplan et al.'s
// count), D (training tokens), C = 6ND and the run's wall time; then the laws of lib/scaling.ts are
// fitted with bootstrap intervals and written next to the points.
//
//   npx tsx tools/sweep.ts            the full grid -> data/sweep.json (regenerated, never hand-edited)
//   npx tsx tools/sweep.ts --quick    3 sizes × 3 budgets -> .cache/sweep-quick.json (a smoke test)
//   options: --jobs K   train in K worker processes (default 1; CI on 2 cores: --jobs 2)
//            --out FILE, --no-fit, --samples K (bootstrap resamples, default 100)
//
// Every run is cached under .cache/runs by its full description (lib/train.ts `cached`), so an
// interrupted sweep resumes where it stopped and a rerun only refits. BOOK_NO_CACHE=1 retrains.
// On a shared machine run it politely: `nice -n 19 npx tsx tools/sweep.ts`.
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import { SEED, Rng, tf } from "../lib/tf";
import { DecoderConfig, Params, countParams, initDecoder, lmLoss } from "../lib/decoder";
import { batches, cacheDir, cached, evalLoss, repoRoot, train } from "../lib/train";
import { loadCorpus, splitText } from "../lib/data";
import { CharTokenizer } from "../lib/tokenizer";
import {
  bootstrapOneVariable, bootstrapPowerLaw, computeOptimal, trainingFlops, type ScalingPoint,
} from "../lib/scaling";

/** Model shapes: width d, layers; 2 heads below d = 32, else 4; dFF = 4d. */
const SIZES: { d: number; layers: number }[] = [
  { d: 16, layers: 1 }, // N = 3,312  (d = 12 stayed on the unigram plateau for 120 steps: left out)
  { d: 24, layers: 1 }, // N = 7,272
  { d: 32, layers: 2 }, // N = 25,472
  { d: 48, layers: 2 }, // N = 56,640
  { d: 64, layers: 2 }, // N = 100,096
  { d: 96, layers: 2 }, // N = 223,872  (1.83 decades above the smallest)
];
/** Token budgets D, ×2.5 apart (rounded to whole steps of batchSize × seqLen tokens). */
const BUDGETS = [4e4, 1e5, 2.5e5, 6.25e5];
const QUICK_SIZES = SIZES.slice(0, 3);
const QUICK_BUDGETS = BUDGETS.slice(0, 3);

/**
 * One recipe for every run: only N and D change. Measured before it was fixed (2026-12, this
 * 2-core machine):
 *  • at these budgets a run is still escaping the "unigram plateau" (loss ~3.3 → 2.5), and when it
 *    escapes depends on the initialisation: d48 with seed 42 sat 0.1–0.2 nats above seeds 1, 2, 43
 *    after 120–290 steps, whatever the warm-up, weight decay, clipping or rate. With one seed for a
 *    whole size, such a draw biases every point of that size alike; so each run gets its OWN seed
 *    (SEED + its index in the grid), which makes the seed noise independent from point to point,
 *    where the Huber fit averages it out (a first sweep with seeds 42 and 43 on every point is in
 *    the git history of this file);
 *  • one peak learning rate does not suit widths 16–96 (d16 was best at 2e-2, d72 at ≤1e-2), so
 *    the rate follows Adam's usual width rule lr = lrTimesWidth / d (1e-2 at d = 32);
 *  • 20-step runs (D = 2e4) all ended near 3.2 nats whatever N: warm-up, not scaling. So D starts
 *    at 4e4 (39 steps).
 */
const RECIPE = {
  corpus: "shakespeare" as const,
  batchSize: 16,
  seqLen: 64,
  lrTimesWidth: 0.32, // peak lr = 0.32/d; warm-up over 10% of the steps, cosine to lr/10 (lib/train.ts defaults)
  weightDecay: 0.1,
  clip: 1,
  evalBatches: 16, // held-out windows drawn once (seed 43): every run is scored on the same 16×16×64 tokens
  dataSeed: SEED, // every run sees the same batches in the same order
};

interface Run {
  index: number;
  d: number;
  layers: number;
  heads: number;
  lr: number;
  seed: number;
  config: DecoderConfig;
  /** Non-embedding parameters (what the laws use) and all parameters. */
  N: number;
  totalParams: number;
  steps: number;
  D: number;
}

interface RunResult {
  name: string;
  d: number;
  layers: number;
  heads: number;
  lr: number;
  seed: number;
  N: number;
  totalParams: number;
  D: number;
  C: number;
  steps: number;
  /** Held-out loss at the end of the run (nats per character). */
  loss: number;
  /** Mean over the last 10 training steps. */
  finalTrainLoss: number;
  /** Wall time of the run, measured when it trained (a cached run keeps its original time). */
  seconds: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const round = (x: number, digits = 6): number => Number(x.toPrecision(digits));

function corpus() {
  // Character tokens over the whole corpus; 10% of the speeches held out whole (lib/data.ts splitText).
  const text = loadCorpus(RECIPE.corpus);
  const split = splitText(text, 0.1);
  const tokenizer = new CharTokenizer(text);
  return {
    tokenizer,
    trainIds: Int32Array.from(tokenizer.encode(split.train)),
    heldOut: Int32Array.from(tokenizer.encode(split.heldOut)),
  };
}

function plan(quick: boolean, vocabSize: number): Run[] {
  const runs: Run[] = [];
  const tokensPerStep = RECIPE.batchSize * RECIPE.seqLen;
  for (const { d, layers } of quick ? QUICK_SIZES : SIZES) {
    const heads = d < 32 ? 2 : 4;
    const config: DecoderConfig = {
      vocabSize, contextLength: RECIPE.seqLen, dModel: d, nLayers: layers, nHeads: heads, dFF: 4 * d, positional: "learned",
    };
    const { nonEmbedding: N, total: totalParams } = countParams(config);
    for (const target of quick ? QUICK_BUDGETS : BUDGETS) {
      const steps = Math.max(1, Math.round(target / tokensPerStep));
      const index = SIZES.findIndex((s) => s.d === d && s.layers === layers) * BUDGETS.length + BUDGETS.indexOf(target);
      runs.push({ index, d, layers, heads, lr: RECIPE.lrTimesWidth / d, seed: SEED + index, config, N, totalParams, steps, D: steps * tokensPerStep });
    }
  }
  return runs;
}

const runKey = (r: Run) => ({ what: "scaling-sweep-run", version: 2, config: r.config, steps: r.steps, lr: r.lr, seed: r.seed, recipe: RECIPE });

// Train one run (or read it from the cache): held-out loss, last training losses, wall time.
async function execute(r: Run, data: ReturnType<typeof corpus>, evalSet: tf.Tensor2D[]) {
  return cached(runKey(r), () => {
    const start = Date.now();
    const loss = (p: Params, batch: tf.Tensor2D) => lmLoss(p, r.config, batch);
    const params = initDecoder(r.config, r.seed);
    const history = train(params, loss, { train: batches(data.trainIds, RECIPE.batchSize, RECIPE.seqLen, new Rng(RECIPE.dataSeed)) }, {
      steps: r.steps, lr: r.lr, weightDecay: RECIPE.weightDecay, clip: RECIPE.clip, batchSize: RECIPE.batchSize,
      seqLen: RECIPE.seqLen, seed: r.seed, logEvery: r.steps, log: () => {},
    });
    const heldOutLoss = evalLoss(params, loss, evalSet);
    tf.dispose(Object.values(params));
    const last = history.trainLoss.slice(-10);
    return { loss: heldOutLoss, finalTrainLoss: last.reduce((a, b) => a + b, 0) / last.length, seconds: (Date.now() - start) / 1000 };
  });
}

const isCached = (r: Run) => process.env.BOOK_NO_CACHE !== "1" && fs.existsSync(path.join(cacheDir(runKey(r)), "result.json"));

// Split the runs that still need training among K workers, longest first onto the least loaded
// (a step's cost grows slowly with the model: ~1 + N/1e5 in units of the smallest model's step).
function assign(runs: Run[], jobs: number): Run[][] {
  const cost = (r: Run) => r.steps * (1 + r.N / 1e5);
  const groups: Run[][] = Array.from({ length: jobs }, () => []);
  const load = new Array(jobs).fill(0);
  for (const r of [...runs].sort((a, b) => cost(b) - cost(a))) {
    const k = load.indexOf(Math.min(...load));
    groups[k].push(r);
    load[k] += cost(r);
  }
  return groups;
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const worker = arg("--worker"); // "k/K": train group k of K, print progress, exit
  const jobs = Math.max(1, Number(arg("--jobs") ?? 1));
  const root = repoRoot();
  const out = arg("--out") ?? (quick ? path.join(root, ".cache", "sweep-quick.json") : path.join(root, "data", "sweep.json"));
  const samples = Number(arg("--samples") ?? 100);

  const data = corpus();
  const drawEval = batches(data.heldOut, RECIPE.batchSize, RECIPE.seqLen, new Rng(SEED + 1));
  const evalSet = Array.from({ length: RECIPE.evalBatches }, () => drawEval());
  const runs = plan(quick, data.tokenizer.vocabSize);
  const t0 = Date.now();
  const progress = (r: Run, res: { loss: number; seconds: number }, hit: boolean, tag: string) =>
    console.log(`${tag}d${r.d}·L${r.layers} N=${r.N.toLocaleString("en").padStart(7)} D=${r.D.toExponential(2)} ` +
      `(${String(r.steps).padStart(3)} steps, seed ${r.seed})  held-out ${res.loss.toFixed(4)} nats  ${res.seconds.toFixed(1)} s` +
      `${hit ? " (cached)" : ""}  [${((Date.now() - t0) / 1000).toFixed(0)} s]`);

  if (worker !== undefined) {
    const [k, K] = worker.split("/").map(Number);
    const mine = assign(runs.filter((r) => !isCached(r)), K)[k];
    for (const r of mine) progress(r, await execute(r, data, evalSet), false, `[worker ${k + 1}/${K}] `);
    tf.dispose(evalSet);
    return;
  }

  console.log(`scaling sweep: ${runs.length} runs (${quick ? "quick: " : ""}${new Set(runs.map((r) => r.d)).size} sizes × ` +
    `${new Set(runs.map((r) => r.D)).size} budgets) on ${RECIPE.corpus} (${data.tokenizer.vocabSize} characters, ` +
    `${data.trainIds.length.toLocaleString("en")} train tokens), batch ${RECIPE.batchSize}×${RECIPE.seqLen}, ` +
    `lr = ${RECIPE.lrTimesWidth}/d, ${jobs} job(s)`);
  if (jobs > 1) {
    // Workers train what is not cached yet, in parallel; below, every run is then a cache hit.
    const extra = quick ? ["--quick"] : [];
    const children = Array.from({ length: jobs }, (_, k) => spawn(process.execPath,
      [...process.execArgv, process.argv[1], "--worker", `${k}/${jobs}`, ...extra], { stdio: "inherit", env: process.env }));
    const codes = await Promise.all(children.map((c) => new Promise<number>((resolve) => c.on("exit", (code) => resolve(code ?? 1)))));
    if (codes.some((c) => c !== 0)) throw new Error(`a sweep worker failed (exit codes ${codes.join(", ")})`);
  }
  const results: RunResult[] = [];
  for (const r of runs) {
    const hit = isCached(r);
    const res = await execute(r, data, evalSet);
    if (jobs === 1 || !hit) progress(r, res, hit, `[${String(results.length + 1).padStart(2)}/${runs.length}] `);
    results.push({
      name: `d${r.d}-L${r.layers}-D${r.D}`, d: r.d, layers: r.layers, heads: r.heads, lr: round(r.lr), seed: r.seed,
      N: r.N, totalParams: r.totalParams, D: r.D, C: trainingFlops(r.N, r.D), steps: r.steps,
      loss: round(res.loss), finalTrainLoss: round(res.finalTrainLoss), seconds: round(res.seconds, 4),
    });
  }
  tf.dispose(evalSet);
  const trainSeconds = results.reduce((s, r) => s + r.seconds, 0);
  console.log(`sweep: ${results.length} runs, ${trainSeconds.toFixed(1)} s of training (sum of the runs' own wall time), ` +
    `${((Date.now() - t0) / 1000).toFixed(1)} s wall in this invocation`);

  const sweep: Record<string, unknown> = {
    about: "Generated by tools/sweep.ts (npx tsx tools/sweep.ts); regenerate it, never edit it by hand.",
    corpus: RECIPE.corpus,
    tokenizer: "char",
    vocabSize: data.tokenizer.vocabSize,
    recipe: RECIPE,
    counting: "N = non-embedding parameters (countParams(config).nonEmbedding), D = training tokens, C = 6ND",
    sweepSeconds: round(trainSeconds, 4),
    points: results,
  };
  if (!process.argv.includes("--no-fit")) {
    const tf0 = Date.now();
    sweep.fit = fitAll(results, samples);
    console.log(`fits and bootstrap (${samples} resamples) in ${((Date.now() - tf0) / 1000).toFixed(1)} s`);
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(sweep, null, 1) + "\n");
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

// L(N, D) = E + A/N^α + B/D^β by Approach 3 with bootstrap intervals; Kaplan's L(N) on the largest
// budget of each size and L(D) on the largest model; the compute-optimal split at a few budgets.
function fitAll(runs: RunResult[], samples: number): Record<string, unknown> {
  const points: ScalingPoint[] = runs.map((r) => ({ N: r.N, D: r.D, L: r.loss }));
  const boot = bootstrapPowerLaw(points, { samples, seed: SEED });
  const f = boot.fit;
  const iv = (k: keyof typeof boot.intervals) => boot.intervals[k].map((v) => round(v, 4));
  const law = { E: f.E, A: f.A, B: f.B, alpha: f.alpha, beta: f.beta };
  const a = f.beta / (f.alpha + f.beta);
  const rms = Math.sqrt(f.residuals.reduce((s, r) => s + r * r, 0) / f.residuals.length);
  console.log(`L(N, D) = E + A/N^α + B/D^β  (Huber δ=1e-3 in log space, L-BFGS from ${f.starts} starts; ` +
    `95% bootstrap intervals over ${samples} resamples)`);
  for (const k of ["E", "A", "B", "alpha", "beta"] as const) {
    console.log(`  ${k.padEnd(5)} ${round(f[k], 4).toString().padStart(10)}   [${iv(k).join(", ")}]`);
  }
  console.log(`  a = β/(α+β) ${round(a, 4)} [${iv("a").join(", ")}]   R²(log L) ${round(f.r2, 5)}   rms log-residual ${round(rms, 3)}`);

  const maxD = Math.max(...runs.map((r) => r.D));
  const maxN = Math.max(...runs.map((r) => r.N));
  const byN = runs.filter((r) => r.D === maxD);
  const byD = runs.filter((r) => r.N === maxN);
  const lN = bootstrapOneVariable(byN.map((r) => r.N), byN.map((r) => r.loss), { samples: 1000, seed: SEED });
  const lD = bootstrapOneVariable(byD.map((r) => r.D), byD.map((r) => r.loss), { samples: 1000, seed: SEED });
  console.log(`L(N) = (N_c/N)^α_N at D = ${maxD.toExponential(2)}: α_N ${round(lN.fit.alpha, 4)} [${lN.intervals.alpha.map((v) => round(v, 4)).join(", ")}], ` +
    `N_c ${lN.fit.xc.toExponential(3)}, R² ${round(lN.fit.r2, 4)}`);
  console.log(`L(D) = (D_c/D)^α_D at N = ${maxN.toLocaleString("en")}: α_D ${round(lD.fit.alpha, 4)} [${lD.intervals.alpha.map((v) => round(v, 4)).join(", ")}], ` +
    `D_c ${lD.fit.xc.toExponential(3)}, R² ${round(lD.fit.r2, 4)}`);

  // The split at each power of ten of C inside the sweep's range; a law is only known where runs
  // were made, so each optimum says whether N_opt and D_opt fall inside the sizes and budgets trained.
  const Cs = runs.map((r) => r.C);
  const Ns = runs.map((r) => r.N);
  const Ds = runs.map((r) => r.D);
  const inside = (v: number, vs: number[]) => v >= Math.min(...vs) && v <= Math.max(...vs);
  const budgets: number[] = [];
  for (let e = Math.ceil(Math.log10(Math.min(...Cs))); e <= Math.floor(Math.log10(Math.max(...Cs))); e++) budgets.push(10 ** e);
  const optimal = budgets.map((C) => {
    const o = computeOptimal(law, C);
    return {
      C, N: round(o.N, 4), D: round(o.D, 4), tokensPerParam: round(o.tokensPerParam, 4), loss: round(o.loss, 5),
      nInsideSweep: inside(o.N, Ns), dInsideSweep: inside(o.D, Ds),
    };
  });
  const o0 = computeOptimal(law, budgets[0]);
  console.log(`compute-optimal: N_opt ∝ C^${round(o0.a, 3)}, D_opt ∝ C^${round(o0.b, 3)}, D_opt ∝ N_opt^${round(o0.dExponentInN, 3)}`);
  for (const o of optimal) {
    console.log(`  C=${o.C.toExponential(0)}: N_opt ${o.N.toExponential(2)}${o.nInsideSweep ? "" : " (outside the sizes trained)"}, ` +
      `D_opt ${o.D.toExponential(2)}${o.dInsideSweep ? "" : " (outside the budgets trained)"}, D/N ${o.tokensPerParam}`);
  }

  return {
    chinchilla: {
      E: round(f.E, 6), A: round(f.A, 6), B: round(f.B, 6), alpha: round(f.alpha, 6), beta: round(f.beta, 6),
      a: round(a, 6), b: round(1 - a, 6), r2: round(f.r2, 6), rmsLogResidual: round(rms, 6),
      starts: f.starts, converged: f.converged,
      note: f.E < 1e-6
        ? "E → 0 (log E ran off to −∞, so L-BFGS's gradient test was never met): these runs, all far from convergence, do not identify an irreducible loss"
        : undefined,
      intervals95: { E: iv("E"), A: iv("A"), B: iv("B"), alpha: iv("alpha"), beta: iv("beta"), a: iv("a"), b: iv("b") },
      bootstrapSamples: samples,
    },
    kaplanN: { atD: maxD, alpha: round(lN.fit.alpha, 6), Nc: round(lN.fit.xc, 6), r2: round(lN.fit.r2, 6), alphaInterval95: lN.intervals.alpha.map((v) => round(v, 4)), bootstrapSamples: 1000 },
    kaplanD: { atN: maxN, alpha: round(lD.fit.alpha, 6), Dc: round(lD.fit.xc, 6), r2: round(lD.fit.r2, 6), alphaInterval95: lD.intervals.alpha.map((v) => round(v, 4)), bootstrapSamples: 1000 },
    computeOptimal: optimal,
  };
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
