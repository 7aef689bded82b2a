// Generation speed at batch 1: lib/sampling.ts's generate on the BASE decoder with and without the
// KV cache, against the same model generating the same way in PyTorch (benchmarks/generate_torch.py),
// both on 2 threads, measured side by side in one run.
//
//   npx tsx benchmarks/generate.ts [--rounds 5] [--tokens 120] [--json out.json]
//
// One run generates `tokens` new tokens after an 8-token prompt (8 + 120 = the BASE context of 128),
// sampling at temperature 1 with a seed; ms/token is its wall time over the tokens. Without the cache
// each step reruns the whole sequence so far (on average ~68 positions here), with it only the newest
// token. The sides take turns (tfjs cache, tfjs no cache, torch cache, torch no cache, R rounds after
// one warm-up each), so a burst of load from another process hits all of them; each figure is the
// median of its R runs, with the fastest run beside it (the least disturbed by other processes).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PYTHON, TorchPeer, median } from "./peer";

const THREADS = 2;
// Set before tfjs loads: TensorFlow reads its thread counts when its first op runs (see train-step.ts).
process.env.TF_NUM_INTRAOP_THREADS ??= String(THREADS);
process.env.TF_NUM_INTEROP_THREADS ??= "1";
process.env.TF_CPP_MIN_LOG_LEVEL ??= "2";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const ROUNDS = arg("rounds", 5), TOKENS = arg("tokens", 120);
const PROMPT = [1, 2, 3, 4, 5, 6, 7, 8];
async function main(): Promise<void> {
  const { tf } = await import("../lib/tf");
  const { BASE, initDecoder, countParams } = await import("../lib/decoder");
  const { generate } = await import("../lib/sampling");
  const config = BASE;
  if (PROMPT.length + TOKENS > config.contextLength) {
    throw new Error(`--tokens must be at most ${config.contextLength - PROMPT.length} so the run stays inside the context, got ${TOKENS}`);
  }
  const model = { params: initDecoder(config, 42), config };
  let seed = 0;
  const tfjsRun = (useCache: boolean) => {
    const t0 = performance.now();
    generate(model, PROMPT, { maxNewTokens: TOKENS, seed: seed++, useCache });
    return (performance.now() - t0) / TOKENS;
  };

  const havePython = fs.existsSync(PYTHON);
  if (!havePython) {
    console.log(`PyTorch peer skipped: ${PYTHON} is missing. Make it with\n  python3 -m venv .cache/bench-venv && .cache/bench-venv/bin/pip install torch==2.13.0 numpy`);
  }
  const peer = havePython ? new TorchPeer("generate_torch.py", { config, prompt: PROMPT, threads: THREADS, seed: 42 }) : null;
  const torchInfo = peer ? await peer.ask("info") : null;
  const ms: { [k: string]: number[] } = { tfjsCache: [], tfjsFull: [], torchCache: [], torchFull: [] };
  const load0 = os.loadavg()[0];

  tfjsRun(true); tfjsRun(false);
  if (peer) { await peer.ask(`cache ${TOKENS}`); await peer.ask(`nocache ${TOKENS}`); }
  for (let r = 0; r < ROUNDS; r++) {
    ms.tfjsCache.push(tfjsRun(true));
    ms.tfjsFull.push(tfjsRun(false));
    if (!peer) continue;
    ms.torchCache.push((await peer.ask(`cache ${TOKENS}`)).ms_per_token);
    ms.torchFull.push((await peer.ask(`nocache ${TOKENS}`)).ms_per_token);
  }
  const load1 = os.loadavg()[0];
  peer?.close();

  // What one cached step costs in kernels: the per-op overhead is where tfjs-node's time goes.
  const before = tf.memory().numTensors;
  const info = await tf.profile(() => { generate(model, PROMPT, { maxNewTokens: 10, seed: 0 }); return tf.scalar(0); });
  const kernelsPerToken = info.kernels.length / 10;
  const leaked = tf.memory().numTensors - before - 1;

  const m = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, v.length ? median(v) : NaN]));
  const n = countParams(config).total;
  console.log(`\nGeneration at batch 1: BASE decoder d${config.dModel} × ${config.nLayers} layers, ${(n / 1e6).toFixed(2)}M params, ` +
    `prompt ${PROMPT.length} + ${TOKENS} new tokens, sampling at T = 1`);
  console.log(`threads: tfjs intra-op ${process.env.TF_NUM_INTRAOP_THREADS} (inter-op ${process.env.TF_NUM_INTEROP_THREADS}), ` +
    `torch ${torchInfo ? torchInfo.threads : "-"}; median of ${ROUNDS} runs each after 1 warm-up; ` +
    `load average ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${os.cpus().length} cores`);
  const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
  const best = (k: string) => (ms[k].length ? Math.min(...ms[k]) : NaN);
  const cell = (k: string) => `${fmt(m[k])} (${fmt(best(k))})`.padStart(16) + `${Number.isFinite(m[k]) ? (1000 / m[k]).toFixed(0) : "-"}`.padStart(10);
  console.log(`${"ms/token median (fastest)".padEnd(30)}${"KV cache".padStart(16)}${"tokens/s".padStart(10)}${"no cache".padStart(18)}${"tokens/s".padStart(10)}`);
  console.log(`${`tfjs-node ${tf.version.tfjs} (${tf.getBackend()})`.padEnd(30)}${cell("tfjsCache")}  ${cell("tfjsFull")}`);
  if (peer) console.log(`${`PyTorch ${torchInfo.torch} eager`.padEnd(30)}${cell("torchCache")}  ${cell("torchFull")}`);
  console.log(`no cache / cache: tfjs ${(m.tfjsFull / m.tfjsCache).toFixed(2)}×` + (peer ? `, torch ${(m.torchFull / m.torchCache).toFixed(2)}×` : ""));
  if (peer) {
    console.log(`ratio tfjs / torch: with cache ${(m.tfjsCache / m.torchCache).toFixed(2)}×, without ${(m.tfjsFull / m.torchFull).toFixed(2)}×`);
  }
  console.log(`tfjs kernels per cached token: ${kernelsPerToken.toFixed(0)} (≈ ${(m.tfjsCache * 1000 / kernelsPerToken).toFixed(0)} µs each); ` +
    `goal ≤ 5 ms/token with the cache: ${m.tfjsCache <= 5 ? "met" : "not met"}; tensors left behind: ${leaked}`);

  const jsonOut = process.argv.indexOf("--json");
  if (jsonOut >= 0) {
    fs.writeFileSync(process.argv[jsonOut + 1], JSON.stringify({
      config, prompt: PROMPT.length, tokens: TOKENS, threads: THREADS, rounds: ROUNDS, ms_per_token: ms, medians: m,
      torch: torchInfo, kernels_per_token: kernelsPerToken, load: [load0, load1],
    }, null, 1) + "\n");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
