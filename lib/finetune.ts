// Fine-tuning: adapt a pre-trained model to a target text, either by training every weight (full
// fine-tuning) or by training a low-rank update beside frozen weights (LoRA, lib/lora.ts), and
// account for what each costs.
//
// Both continue the pre-training objective (next-token cross-entropy, lmLoss) on the new text; they
// differ only in WHICH numbers the optimizer may change: all N of them, or the r·(in+out) of each
// adapted matrix. That choice sets the memory the optimizer needs and the size of what is saved.
import * as crypto from "crypto";
import { tf, Rng } from "./tf";
import { Adapter, DecoderConfig, Params, countParams, lmLoss } from "./decoder";
import { TrainResult, batches, cached, evalLoss, train } from "./train";
import { initLora, loraAdapter, loraParamCount } from "./lora";
import type { Recipe } from "./languageModel";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** What to train: every weight, or a LoRA of rank r (scale α/r) on the named projections. */
export type Adaptation = { kind: "full" } | { kind: "lora"; rank: number; alpha: number; targets: string[] };

export interface AdaptOptions {
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
}

export interface Adapted {
  how: Adaptation;
  /** full: every tuned weight; lora: only the adapter's A and B (the base stays as it was). */
  params: Params;
  trainable: number;
  heldOutLoss: number;
  history: TrainResult;
}

/** The pre-trained model to start from: its weights, its config, and the recipe that names it in the cache. */
export interface BaseModel {
  params: Params;
  config: DecoderConfig;
  recipe: Recipe;
}

// fp32 training memory of the trained numbers: 4 bytes each for the weight, its gradient, and
// AdamW's two moments m and v -> 16·N bytes (frozen weights need only their 4·N_frozen for the forward)
export function trainingBytes(trainable: number): { weights: number; gradients: number; adam: number; total: number } {
  need(Number.isInteger(trainable) && trainable >= 0, `trainable must be a count of parameters (an integer ≥ 0), got ${trainable}`);
  return { weights: 4 * trainable, gradients: 4 * trainable, adam: 8 * trainable, total: 16 * trainable };
}

// L = mean next-token cross-entropy on `nBatches` fixed windows of the tokens (drawn with Rng(seed))
// params, config, tokens -> nats; with an adapter, the adapted model's loss
export function textLoss(params: Params, config: DecoderConfig, tokens: ArrayLike<number>,
  options: { adapter?: Adapter; batchSize?: number; seqLen?: number; seed?: number; nBatches?: number } = {}): number {
  const { batchSize = 16, seqLen = 64, seed = 1, nBatches = 8, adapter } = options;
  const draw = batches(Array.from(tokens), batchSize, seqLen, new Rng(seed));
  const fixed = Array.from({ length: nBatches }, draw);
  try {
    return evalLoss(params, (p, b) => lmLoss(p, config, b, { adapter }), fixed);
  } finally {
    tf.dispose(fixed);
  }
}

// The adapter to plug in for an adapted model (none for a full fine-tune, whose params ARE the model).
export function adapterOf(adapted: Adapted): Adapter | undefined {
  const how = adapted.how;
  return how.kind === "lora" ? loraAdapter(adapted.params, { alpha: how.alpha, rank: how.rank }) : undefined;
}

// x_b = tokens[s_b .. s_b + T] with s_b drawn uniformly from `starts` (each window begins where a
// record begins: an instruction-tuning example starts at position 0, as a question does when asked)
// tokens [n], starts -> a function returning a new [B, T+1] int32 batch per call
export function batchesAt(tokens: ArrayLike<number>, starts: number[], batchSize: number, seqLen: number, rng: Rng): () => tf.Tensor2D {
  need(Array.isArray(starts) && starts.length >= 1 && starts.every((s) => Number.isInteger(s) && s >= 0 && s + seqLen + 1 <= tokens.length),
    `starts must be offsets s with s + seqLen + 1 ≤ ${tokens.length} (the tokens' length), got ${Array.isArray(starts) ? starts.find((s) => !(s + seqLen + 1 <= tokens.length)) : typeof starts}`);
  return () => {
    const buf = new Int32Array(batchSize * (seqLen + 1));
    for (let b = 0; b < batchSize; b++) {
      const s = starts[rng.int(starts.length)];
      for (let t = 0; t <= seqLen; t++) buf[b * (seqLen + 1) + t] = tokens[s + t];
    }
    return tf.tensor2d(buf, [batchSize, seqLen + 1], "int32");
  };
}

function digest(tokens: ArrayLike<number>): string {
  return crypto.createHash("sha256").update(Buffer.from(Int32Array.from(tokens).buffer)).digest("hex").slice(0, 16);
}

// sha256 over every tensor's name, shape and bytes, in name order
function weightsDigest(params: Params): string {
  const h = crypto.createHash("sha256");
  for (const name of Object.keys(params).sort()) {
    const t = params[name];
    const data = t.dataSync() as Float32Array | Int32Array;
    h.update(`${name}[${t.shape.join(",")}]`).update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest("hex").slice(0, 16);
}

// θ' = argmin mean −log P_θ'(x_{t+1} | x_≤t) over the target text, from θ₀ = base, training only
// `how`'s numbers (AdamW, warm-up + cosine, lib/train.ts); cached by (base recipe, data, how, options)
// -> the tuned numbers, how many there are, the held-out loss on the target (textLoss with seqLen) and the curve
export async function adapt(base: BaseModel, data: { train: ArrayLike<number>; heldOut: ArrayLike<number>; starts?: number[] }, how: Adaptation,
  options: AdaptOptions): Promise<Adapted> {
  need(base !== null && typeof base === "object" && base.params !== undefined && base.recipe !== undefined,
    `base must be a trained model { params, config, recipe } (from trainLanguageModel), got ${typeof base}`);
  need(how !== null && (how.kind === "full" || how.kind === "lora"), `how must be { kind: "full" } or { kind: "lora", rank, alpha, targets }, got ${JSON.stringify(how)}`);
  need(data.train.length > options.seqLen + 1 && data.heldOut.length > options.seqLen + 1,
    `data.train and data.heldOut must each hold more than seqLen + 1 = ${options.seqLen + 1} tokens, got ${data.train.length} and ${data.heldOut.length}`);
  const { config } = base;
  const starts = data.starts;
  // The base is named by its recipe AND its weights: a base retrained by other code under the same
  // recipe is another starting point, so it must not reuse this run.
  const key = { what: "adapt", version: 1, base: base.recipe, weights: weightsDigest(base.params), vocabSize: config.vocabSize, train: digest(data.train), heldOut: digest(data.heldOut),
    starts: starts ? digest(starts) : undefined, how, options };
  const run = await cached(key, () => {
    const rng = new Rng(options.seed);
    const loader = { train: starts ? batchesAt(data.train, starts, options.batchSize, options.seqLen, rng) : batches(Array.from(data.train), options.batchSize, options.seqLen, rng) };
    const schedule = { steps: options.steps, lr: options.lr, batchSize: options.batchSize, seqLen: options.seqLen, seed: options.seed, log: () => {} };
    if (how.kind === "full") {
      // Fresh variables over the same data: the updates replace the copies' buffers, never the base's.
      const tuned: Params = {};
      for (const [n, t] of Object.entries(base.params)) tuned[n] = tf.variable(t, true);
      const history = train(tuned, (p, b) => lmLoss(p, config, b), loader, schedule);
      return { params: tuned, history, heldOutLoss: textLoss(tuned, config, data.heldOut, { seqLen: options.seqLen }) };
    }
    const lora = initLora(config, { rank: how.rank, alpha: how.alpha, targets: how.targets, seed: options.seed });
    const names = Object.keys(lora);
    const loss = (p: Params, b: tf.Tensor2D) => {
      const own: Params = {};
      for (const n of names) own[n] = p[n];
      return lmLoss(p, config, b, { adapter: loraAdapter(own, { alpha: how.alpha, rank: how.rank }) });
    };
    // No weight decay on the adapter: decay would pull A·B toward 0, i.e. back toward the base model.
    const history = train({ ...base.params, ...lora }, loss, loader, { ...schedule, trainable: names, weightDecay: 0 });
    return { params: lora, history, heldOutLoss: textLoss(base.params, config, data.heldOut, { seqLen: options.seqLen, adapter: loraAdapter(lora, { alpha: how.alpha, rank: how.rank }) }) };
  });
  const trainable = how.kind === "full" ? countParams(config).total : loraParamCount(config, { rank: how.rank, targets: how.targets }).lora;
  return { how, params: run.params, trainable, heldOutLoss: run.heldOutLoss, history: run.history };
}

// t(how) = median over rounds of (time of `steps` training steps) / steps, after one untimed round;
// the adaptations take turns within each round, so a busy moment of the machine falls on all of them
// -> milliseconds per training step, one per adaptation (nothing trained is kept)
export function stepTimes(base: BaseModel, tokens: ArrayLike<number>, hows: Adaptation[],
  options: { batchSize: number; seqLen: number; steps?: number; rounds?: number; seed?: number }): number[] {
  const { batchSize, seqLen, steps = 5, rounds = 4, seed = 1 } = options;
  need(Array.isArray(hows) && hows.length >= 1, `hows must be a non-empty list of adaptations, got ${JSON.stringify(hows)}`);
  need(Number.isInteger(rounds) && rounds >= 1 && Number.isInteger(steps) && steps >= 1, `options.rounds and options.steps must be positive integers, got ${rounds} and ${steps}`);
  const { config } = base;
  const once = (how: Adaptation): number => {
    const loader = { train: batches(Array.from(tokens), batchSize, seqLen, new Rng(seed)) };
    const schedule = { steps, lr: 1e-4, batchSize, seqLen, log: () => {} };
    let own: Params;
    let result: TrainResult;
    if (how.kind === "full") {
      own = {};
      for (const [n, t] of Object.entries(base.params)) own[n] = tf.variable(t, true);
      result = train(own, (p, b) => lmLoss(p, config, b), loader, schedule);
    } else {
      own = initLora(config, { rank: how.rank, alpha: how.alpha, targets: how.targets, seed });
      const names = Object.keys(own);
      const loss = (p: Params, b: tf.Tensor2D) => {
        const mine: Params = {};
        for (const n of names) mine[n] = p[n];
        return lmLoss(p, config, b, { adapter: loraAdapter(mine, { alpha: how.alpha, rank: how.rank }) });
      };
      result = train({ ...base.params, ...own }, loss, loader, { ...schedule, trainable: names, weightDecay: 0 });
    }
    tf.dispose(Object.values(own));
    return (1000 * result.seconds) / steps;
  };
  hows.forEach(once); // warm-up: the first steps of a new shape pay one-off costs
  const times = hows.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) hows.forEach((how, i) => times[i].push(once(how)));
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor((t.length - 1) / 2)]);
}
