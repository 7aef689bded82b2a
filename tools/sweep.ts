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
//   options: --out FILE, --no-fit, --samples K (bootstrap resamples, default 200)
//   (--quick trains one seed; the full sweep two, see RECIPE)
//
// Every run is cached under .cache/runs by its full description (lib/train.ts `cached`), so an
// interrupted sweep resumes where it stopped and a rerun only refits. BOOK_NO_CACHE=1 retrains.
// Run it politely on a shared machine: `nice -n 19 npx tsx tools/sweep.ts`.
import * as fs from "fs";
import * as path from "path";
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
  { d: 72, layers: 2 }, // N = 126,432  (1.58 decades above the smallest)
];
/** Token budgets D (rounded to whole steps of batchSize × seqLen tokens). */
const BUDGETS = [2e4, 5e4, 1.25e5, 3e5];
const QUICK_SIZES = SIZES.slice(0, 3);
const QUICK_BUDGETS = BUDGETS.slice(0, 3);

/**
 * One recipe for every run: only N and D change. Two things were measured before it was fixed
 * (2026-12, on this 2-core machine):
 *  • at these budgets a run is still escaping the "unigram plateau" (loss ~3.3 → 2.5), and when it
 *    escapes depends on the initialisation: d48 with seed 42 sat 0.1–0.2 nats above seeds 1, 2, 43
 *    after 120–290 steps. So every point is the MEAN over two initialisations (seeds 42, 43; the
 *    batches are the same for both), and both losses are recorded;
 *  • one peak learning rate does not suit widths 12–64 (d16 was best at 2e-2, d72 at ≤1e-2), so
 *    the rate follows Adam's usual width rule lr = lrTimesWidth / d (1e-2 at d = 32).
 */
const RECIPE = {
  corpus: "shakespeare" as const,
  batchSize: 16,
  seqLen: 64,
  lrTimesWidth: 0.32, // peak lr = 0.32/d; warm-up over 10% of the steps, cosine to lr/10 (lib/train.ts defaults)
  weightDecay: 0.1,
  clip: 1,
  evalBatches: 16, // held-out windows drawn once (seed 43): every run is scored on the same 16×16×64 tokens
  seeds: [SEED, SEED + 1],
};

interface RunResult {
  name: string;
  d: number;
  layers: number;
  heads: number;
  lr: number;
  /** Non-embedding parameters (what the laws use) and all parameters. */
  N: number;
  totalParams: number;
  D: number;
  C: number;
  steps: number;
  /** Mean held-out loss over the seeds (nats per character), and each seed's. */
  loss: number;
  lossBySeed: number[];
  /** Mean over the last 10 training steps, averaged over the seeds. */
  finalTrainLoss: number;
  /** Wall time of the training runs (all seeds), measured when they ran. */
  seconds: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const round = (x: number, digits = 6): number => Number(x.toPrecision(digits));

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const root = repoRoot();
  const out = arg("--out") ?? (quick ? path.join(root, ".cache", "sweep-quick.json") : path.join(root, "data", "sweep.json"));
  const samples = Number(arg("--samples") ?? 200);
  const recipe = quick ? { ...RECIPE, seeds: RECIPE.seeds.slice(0, 1) } : RECIPE;
  const sizes = quick ? QUICK_SIZES : SIZES;
  const budgets = quick ? QUICK_BUDGETS : BUDGETS;

  // Character tokens over the whole corpus; 10% of the speeches held out whole (lib/data.ts splitText).
  const text = loadCorpus(recipe.corpus);
  const split = splitText(text, 0.1);
  const tokenizer = new CharTokenizer(text);
  const trainIds = Int32Array.from(tokenizer.encode(split.train));
  const heldOut = Int32Array.from(tokenizer.encode(split.heldOut));
  const drawEval = batches(heldOut, recipe.batchSize, recipe.seqLen, new Rng(SEED + 1));
  const evalSet = Array.from({ length: recipe.evalBatches }, () => drawEval());
  const tokensPerStep = recipe.batchSize * recipe.seqLen;
  console.log(`scaling sweep: ${sizes.length} sizes × ${budgets.length} budgets × ${recipe.seeds.length} seed(s) on ${recipe.corpus} ` +
    `(${tokenizer.vocabSize} characters, ${trainIds.length.toLocaleString("en")} train tokens), ` +
    `batch ${recipe.batchSize}×${recipe.seqLen} = ${tokensPerStep} tokens a step, lr = ${recipe.lrTimesWidth}/d`);

  const runs: RunResult[] = [];
  const total = sizes.length * budgets.length;
  const t0 = Date.now();
  for (const { d, layers } of sizes) {
    const heads = d < 32 ? 2 : 4;
    const lr = recipe.lrTimesWidth / d;
    const config: DecoderConfig = {
      vocabSize: tokenizer.vocabSize, contextLength: recipe.seqLen, dModel: d, nLayers: layers,
      nHeads: heads, dFF: 4 * d, positional: "learned",
    };
    const loss = (p: Params, batch: tf.Tensor2D) => lmLoss(p, config, batch);
    const { nonEmbedding: N, total: totalParams } = countParams(config);
    for (const target of budgets) {
      const steps = Math.max(1, Math.round(target / tokensPerStep));
      const D = steps * tokensPerStep;
      const seedRuns: { loss: number; finalTrainLoss: number; seconds: number }[] = [];
      let hits = 0;
      for (const seed of recipe.seeds) {
        const key = { what: "scaling-sweep-run", version: 1, config, steps, lr, seed, recipe: { ...recipe, seeds: undefined } };
        if (process.env.BOOK_NO_CACHE !== "1" && fs.existsSync(path.join(cacheDir(key), "result.json"))) hits++;
        seedRuns.push(await cached(key, () => {
          const start = Date.now();
          const params = initDecoder(config, seed);
          const history = train(params, loss, { train: batches(trainIds, recipe.batchSize, recipe.seqLen, new Rng(SEED)) }, {
            steps, lr, weightDecay: recipe.weightDecay, clip: recipe.clip, batchSize: recipe.batchSize,
            seqLen: recipe.seqLen, seed, logEvery: steps, log: () => {},
          });
          const heldOutLoss = evalLoss(params, loss, evalSet);
          tf.dispose(Object.values(params));
          const last = history.trainLoss.slice(-10);
          return { loss: heldOutLoss, finalTrainLoss: last.reduce((a, b) => a + b, 0) / last.length, seconds: (Date.now() - start) / 1000 };
        }));
      }
      const mean = (f: (r: (typeof seedRuns)[number]) => number) => seedRuns.reduce((a, r) => a + f(r), 0) / seedRuns.length;
      const run: RunResult = {
        name: `d${d}-L${layers}-D${D}`, d, layers, heads, lr: round(lr), N, totalParams, D, C: trainingFlops(N, D), steps,
        loss: round(mean((r) => r.loss)), lossBySeed: seedRuns.map((r) => round(r.loss)),
        finalTrainLoss: round(mean((r) => r.finalTrainLoss)), seconds: round(seedRuns.reduce((a, r) => a + r.seconds, 0), 4),
      };
      runs.push(run);
      console.log(`[${String(runs.length).padStart(2)}/${total}] d${d}·L${layers} N=${N.toLocaleString("en").padStart(7)} ` +
        `D=${D.toExponential(2)} (${String(steps).padStart(3)} steps)  held-out ${run.loss.toFixed(4)} nats ` +
        `(seeds ${run.lossBySeed.map((l) => l.toFixed(3)).join(", ")})  ${run.seconds.toFixed(1)} s` +
        `${hits === recipe.seeds.length ? " (cached)" : hits > 0 ? ` (${hits} cached)` : ""}  [${((Date.now() - t0) / 1000).toFixed(0)} s so far]`);
    }
  }
  tf.dispose(evalSet);
  const trainSeconds = runs.reduce((s, r) => s + r.seconds, 0);
  console.log(`sweep: ${runs.length} runs, ${trainSeconds.toFixed(1)} s of training (sum of the runs' own wall time), ` +
    `${((Date.now() - t0) / 1000).toFixed(1)} s wall in this process`);

  const sweep: Record<string, unknown> = {
    about: "Generated by tools/sweep.ts (npx tsx tools/sweep.ts); regenerate it, never edit it by hand.",
    corpus: recipe.corpus,
    tokenizer: "char",
    vocabSize: tokenizer.vocabSize,
    recipe,
    counting: "N = non-embedding parameters (countParams(config).nonEmbedding), D = training tokens, C = 6ND",
    sweepSeconds: round(trainSeconds, 4),
    points: runs,
  };
  if (!process.argv.includes("--no-fit")) {
    const tf0 = Date.now();
    sweep.fit = fitAll(runs, samples);
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

  const budgets = [1e10, 1e11, 1e12];
  const optimal = budgets.map((C) => {
    const o = computeOptimal(law, C);
    return { C, N: round(o.N, 4), D: round(o.D, 4), tokensPerParam: round(o.tokensPerParam, 4), loss: round(o.loss, 5) };
  });
  const o0 = computeOptimal(law, budgets[0]);
  console.log(`compute-optimal: N_opt ∝ C^${round(o0.a, 3)}, D_opt ∝ C^${round(o0.b, 3)}, D_opt ∝ N_opt^${round(o0.dExponentInN, 3)}; ` +
    optimal.map((o) => `C=${o.C.toExponential(0)}: N ${o.N.toExponential(2)}, D ${o.D.toExponential(2)}, D/N ${o.tokensPerParam}`).join("; "));

  return {
    chinchilla: {
      E: round(f.E, 6), A: round(f.A, 6), B: round(f.B, 6), alpha: round(f.alpha, 6), beta: round(f.beta, 6),
      a: round(a, 6), b: round(1 - a, 6), r2: round(f.r2, 6), rmsLogResidual: round(rms, 6),
      starts: f.starts, converged: f.converged,
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
