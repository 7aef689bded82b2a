// Training a language model: draw batches of token windows, take a gradient step with AdamW on a
// warm-up + cosine learning-rate schedule, clip the gradient, watch the held-out loss, and keep the
// result in a run cache so a notebook trains once and reruns instantly.
//
// Speed on tfjs-node is set by the number of ops, not their size (each costs ~50–300 µs). A
// per-tensor Adam would run ~15 ops for each of the ~50 tensors of a model, more than the model's
// own backward pass; so the optimizer flattens every gradient into ONE vector and runs Adam's
// arithmetic once on it (~25 ops per step whatever the model), then cuts the result back into the
// named tensors.
import * as fs from "fs";
import * as path from "path";
import * as crypto from "crypto";
import { tf, Rng } from "./tf";
import type { Params } from "./decoder";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

const positiveInt = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 1;

// ───────────────────────────── data ─────────────────────────────

// x_b = tokens[s_b .. s_b + T],  s_b ~ Uniform{0, a, 2a, …} ≤ n − T − 1 drawn from rng (a window of T+1 tokens:
// inputs x[:, :T], targets x[:, 1:]);  tokens [n] -> a function returning a new [B, T+1] int32 batch per call
// align a (default 1: any start) makes every window start on a record boundary when records have length a
export function batches(tokens: Int32Array | number[], batchSize: number, seqLen: number, rng: Rng, align = 1): () => tf.Tensor2D {
  need(tokens != null && typeof tokens.length === "number", `tokens must be an Int32Array or number[] of token ids, got ${typeof tokens}`);
  need(positiveInt(batchSize), `batchSize must be a positive integer, got ${batchSize}`);
  need(positiveInt(seqLen), `seqLen must be a positive integer, got ${seqLen}`);
  need(tokens.length >= seqLen + 1,
    `tokens must hold at least seqLen + 1 = ${seqLen + 1} ids to cut one window, got ${tokens.length}`);
  need(rng instanceof Rng, `rng must be an Rng (new Rng(seed) from lib/tf), got ${typeof rng}`);
  need(positiveInt(align), `align must be a positive integer, got ${align}`);
  const starts = Math.floor((tokens.length - seqLen - 1) / align) + 1; // s/a ∈ [0, ⌊(n − T − 1)/a⌋]
  return () => {
    const buf = new Int32Array(batchSize * (seqLen + 1));
    for (let b = 0; b < batchSize; b++) {
      const s = align * rng.int(starts);
      for (let t = 0; t <= seqLen; t++) buf[b * (seqLen + 1) + t] = tokens[s + t];
    }
    return tf.tensor2d(buf, [batchSize, seqLen + 1], "int32");
  };
}

// ───────────────────────────── schedule ─────────────────────────────

export interface Schedule { steps: number; lr: number; warmup?: number; minLr?: number }

/** Defaults: warm up over the first 10% of the steps, decay to a tenth of the peak (Hoffmann et al. 2022). */
export function scheduleDefaults(s: Schedule): { warmup: number; minLr: number } {
  return { warmup: s.warmup ?? Math.round(0.1 * s.steps), minLr: s.minLr ?? s.lr / 10 };
}

// η(s) = η·s/W for s ≤ W;  then η_min + ½(η − η_min)(1 + cos(π·(s − W)/(S − W)))   (s = 1 … S)
// update number s, {steps S, lr η, warmup W, minLr η_min} -> the learning rate of update s
export function learningRate(step: number, schedule: Schedule): number {
  const { steps, lr } = schedule;
  const { warmup, minLr } = scheduleDefaults(schedule);
  need(positiveInt(steps), `steps must be a positive integer, got ${steps}`);
  need(Number.isInteger(step) && step >= 1 && step <= steps, `step must be an integer in 1..${steps}, got ${step}`);
  // Warm-up: Adam's second moment v starts at 0 and its estimate is poor for the first few hundred
  // updates; small steps until it settles avoid an early blow-up (Liu et al. 2020, "RAdam").
  if (step <= warmup) return (lr * step) / warmup;
  if (steps === warmup) return lr;
  // Cosine decay (Loshchilov & Hutter 2017, "SGDR"): large steps while far from a minimum, small
  // ones at the end, where the loss keeps falling as the noise of the updates shrinks.
  const progress = (step - warmup) / (steps - warmup);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

// ───────────────────────────── clipping ─────────────────────────────

// ‖g‖ = √(Σ_i Σ_j g_ij²) over all tensors;  g_i ← g_i · min(1, c / (‖g‖ + 1e-6))
// grads: tensors of any shapes, maxNorm c -> the same shapes, and ‖g‖ before clipping (scalar)
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: tf.Scalar } {
  need(Array.isArray(grads) && grads.length >= 1, `grads must be a non-empty list of tensors, got ${grads}`);
  need(typeof maxNorm === "number" && maxNorm > 0, `maxNorm must be a positive number, got ${maxNorm}`);
  return tf.tidy(() => {
    // One norm over all tensors together (not per tensor): clipping scales the whole step, so its
    // direction is kept and only a rare huge step (a bad batch, a loss spike) is shortened.
    const squares = grads.map((g) => tf.sum(tf.square(g)));
    const norm = tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares)) as tf.Scalar;
    if (maxNorm === Infinity) return { grads: grads.map((g) => g.clone()), norm };
    const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
    return { grads: grads.map((g) => tf.mul(g, scale)), norm };
  });
}

// ───────────────────────────── AdamW ─────────────────────────────

export interface AdamWOptions {
  beta1?: number; // 0.9
  beta2?: number; // 0.95 (GPT-3, Brown et al. 2020; 0.999 is Adam's default, slower to follow v)
  eps?: number; // 1e-8
  weightDecay?: number; // 0.1 (GPT-3)
  clip?: number; // global gradient norm cap; Infinity = no clipping
}

/** The optimizer's state: every trained tensor flattened and laid end to end in one vector [N]. */
export interface AdamWState {
  names: string[];
  shapes: number[][];
  sizes: number[];
  theta: tf.Variable; // [N] the parameters themselves, flat; params[name] are slices of it after each step
  m: tf.Variable; // [N] first moment (running mean of g)
  v: tf.Variable; // [N] second moment (running mean of g²)
  decay: tf.Tensor1D | null; // [N] 1 where weight decay applies, 0 where not; null: 1 everywhere
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
}

/**
 * Which tensors are decayed: matrices (rank ≥ 2: every projection, and the embedding tables, which
 * are a matrix of the tied output head too), not vectors (biases, LayerNorm gains and shifts).
 * Decay pulls a weight towards 0; for a LayerNorm gain 0 is not "no effect" (1 is), so decaying it
 * fights the normalisation, and biases are too few to overfit with. GPT-2/nanoGPT draw the same line.
 */
export function decays(shape: number[]): boolean {
  return shape.length >= 2;
}

// state for AdamW over params[names]: θ (flat copy), m = v = 0, t = 0
// params (tf.Variable values for every name), names -> AdamWState (dispose with disposeAdamW)
export function adamw(params: Params, names: string[], options: AdamWOptions = {}): AdamWState {
  need(Array.isArray(names) && names.length >= 1, `names must be a non-empty list of parameter names, got ${JSON.stringify(names)}`);
  for (const n of names) {
    const p = params[n];
    need(p !== undefined, `trainable name "${n}" is not in params (it has ${Object.keys(params).slice(0, 8).join(", ")}${Object.keys(params).length > 8 ? ", …" : ""})`);
    need(p instanceof tf.Variable, `params["${n}"] must be a tf.Variable to be trained (make it with tf.variable(t)), got a plain tensor`);
    need(p.dtype === "float32", `params["${n}"] must be float32 to be trained, got ${p.dtype}`);
  }
  need(new Set(names).size === names.length, `names must not repeat a parameter, got ${JSON.stringify(names)}`);
  const beta1 = options.beta1 ?? 0.9, beta2 = options.beta2 ?? 0.95, eps = options.eps ?? 1e-8;
  const weightDecay = options.weightDecay ?? 0.1, clip = options.clip ?? Infinity;
  need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, `beta1 and beta2 must be in [0, 1), got ${beta1} and ${beta2}`);
  need(eps > 0, `eps must be positive, got ${eps}`);
  need(weightDecay >= 0, `weightDecay must be ≥ 0, got ${weightDecay}`);
  need(clip > 0, `clip must be a positive number (or Infinity for none), got ${clip}`);
  const shapes = names.map((n) => params[n].shape.slice());
  const sizes = names.map((n) => params[n].size);
  const N = sizes.reduce((a, b) => a + b, 0);
  const flags = shapes.map(decays);
  let decay: tf.Tensor1D | null = null;
  if (!flags.every((f) => f)) {
    const mask = new Float32Array(N);
    let o = 0;
    names.forEach((_, i) => {
      if (flags[i]) mask.fill(1, o, o + sizes[i]);
      o += sizes[i];
    });
    decay = tf.tensor1d(mask);
  }
  const theta = tf.tidy(() => tf.variable(tf.concat(names.map((n) => params[n].reshape([-1]))), false));
  const m = tf.tidy(() => tf.variable(tf.zeros([N]), false));
  const v = tf.tidy(() => tf.variable(tf.zeros([N]), false));
  return { names, shapes, sizes, theta, m, v, decay, step: 0, beta1, beta2, eps, weightDecay, clip };
}

// g ← clip(g);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)
// θ ← θ·(1 − η·λ·mask) − η·m̂/(√v̂ + ε)   (decoupled decay, Loshchilov & Hutter 2019)
// state, params (updated in place), grads {name: tensor like params[name]}, lr η -> ‖g‖ before clipping (scalar)
export function adamwUpdate(state: AdamWState, params: Params, grads: Params, lr: number): tf.Scalar {
  need(typeof lr === "number" && Number.isFinite(lr) && lr >= 0, `lr must be a finite number ≥ 0, got ${lr}`);
  for (let i = 0; i < state.names.length; i++) {
    const g = grads[state.names[i]];
    need(g !== undefined && g.size === state.sizes[i],
      `grads["${state.names[i]}"] must be a tensor of shape [${state.shapes[i].join(",")}], got ${g === undefined ? "nothing" : `[${g.shape.join(",")}]`}`);
  }
  state.step += 1;
  const { beta1: b1, beta2: b2, eps, weightDecay: wd, step: t } = state;
  return tf.tidy(() => {
    // (a reshape is an op too: vectors — half the tensors of a model — are concatenated as they are)
    const g = tf.concat(state.names.map((n) => (grads[n].rank === 1 ? grads[n] : grads[n].reshape([-1]))));
    const g2 = tf.square(g);
    const norm = tf.sqrt(tf.sum(g2)) as tf.Scalar;
    // Clipping multiplies g by s = min(1, c/(‖g‖ + 1e-6)) (as clipByGlobalNorm does); s is folded
    // into the scalars that multiply g and g² below, which saves two passes over the vector.
    const s = state.clip === Infinity ? 1 : tf.minimum(1, tf.div(state.clip, tf.add(norm, 1e-6)));
    const m = tf.add(tf.mul(state.m, b1), tf.mul(g, tf.mul(s, 1 - b1)));
    const v = tf.add(tf.mul(state.v, b2), tf.mul(g2, tf.mul(tf.square(s), 1 - b2)));
    // The bias corrections folded into two scalars: η·m̂/(√v̂ + ε) = (η·√c₂/c₁)·m/(√v + ε·√c₂),
    // c₁ = 1−β₁ᵗ, c₂ = 1−β₂ᵗ (the same number, two vector ops fewer). Early on m and v are
    // averages over few gradients padded with the zeros they started at; dividing by c undoes that.
    const c1 = 1 - Math.pow(b1, t), c2 = Math.sqrt(1 - Math.pow(b2, t));
    const update = tf.mul(tf.div(m, tf.add(tf.sqrt(v), eps * c2)), (lr * c2) / c1);
    // Decoupled weight decay: shrink θ directly, not through the gradient, so the decay is not
    // divided by √v̂ (Adam + L2 decays weights with large gradients less — AdamW's point).
    let theta: tf.Tensor = state.theta;
    if (wd > 0 && lr > 0) {
      theta = state.decay === null ? tf.mul(theta, 1 - lr * wd) : tf.mul(theta, tf.sub(1, tf.mul(state.decay, lr * wd)));
    }
    theta = tf.sub(theta, update);
    state.m.assign(m);
    state.v.assign(v);
    state.theta.assign(theta);
    const pieces = tf.split(theta, state.sizes);
    state.names.forEach((n, i) => (params[n] as tf.Variable).assign(state.shapes[i].length === 1 ? pieces[i] : pieces[i].reshape(state.shapes[i])));
    return norm;
  });
}

/** Frees the optimizer's vectors (train() does this at the end). */
export function disposeAdamW(state: AdamWState): void {
  state.theta.dispose();
  state.m.dispose();
  state.v.dispose();
  if (state.decay) state.decay.dispose();
}

// ───────────────────────────── one step, a loss on held-out data ─────────────────────────────

// L = loss(θ; batch), g = ∂L/∂θ for the names the optimizer trains, then one AdamW update
// batch [B, T+1] -> L (a scalar the caller disposes); params are updated in place
export function trainStep(params: Params, loss: (params: Params, batch: tf.Tensor2D) => tf.Scalar,
  batch: tf.Tensor2D, state: AdamWState, lr: number): tf.Scalar {
  return tf.tidy(() => {
    const vars = state.names.map((n) => params[n] as tf.Variable);
    // Only the listed variables get gradients; every other tensor in params is a constant here
    // (that is how LoRA and life cards train their own few tensors on a frozen base).
    const { value, grads } = tf.variableGrads(() => loss(params, batch), vars);
    const named: Params = {};
    state.names.forEach((n, i) => (named[n] = grads[vars[i].name] ?? tf.zerosLike(vars[i])));
    adamwUpdate(state, params, named, lr);
    return value;
  });
}

// L_eval = (1/K) Σ_k loss(θ; batch_k), no gradients
// batches: a function drawing a [B, T+1] batch (called K = nBatches times; each batch disposed), or a fixed list (kept) -> nats
export function evalLoss(params: Params, loss: (params: Params, batch: tf.Tensor2D) => tf.Scalar,
  batchFn: (() => tf.Tensor2D) | tf.Tensor2D[], nBatches = 4): number {
  const fixed = Array.isArray(batchFn);
  const K = fixed ? (batchFn as tf.Tensor2D[]).length : nBatches;
  need(fixed || typeof batchFn === "function", `batchFn must be a function returning a batch, or a list of batches, got ${typeof batchFn}`);
  need(positiveInt(K), `nBatches must be a positive integer, got ${K}`);
  const losses: tf.Scalar[] = [];
  for (let k = 0; k < K; k++) {
    // One tidy per batch, so only one forward pass's activations are alive at a time.
    losses.push(tf.tidy(() => loss(params, fixed ? (batchFn as tf.Tensor2D[])[k] : (batchFn as () => tf.Tensor2D)())));
  }
  const mean = tf.tidy(() => tf.div(tf.addN(losses), K));
  const value = mean.dataSync()[0];
  tf.dispose([...losses, mean]);
  return value;
}

// ───────────────────────────── the training loop ─────────────────────────────

export interface TrainOptions {
  steps: number;
  lr: number; // peak learning rate
  warmup?: number; // updates of linear warm-up; default 10% of steps
  minLr?: number; // the cosine ends here; default lr/10
  weightDecay?: number; // AdamW λ on matrices; default 0.1
  clip?: number; // global gradient norm cap; default 1.0 (GPT-3)
  batchSize: number;
  seqLen: number;
  evalEvery?: number; // held-out loss every so many steps (and at the end); default = logEvery
  evalBatches?: number; // held-out batches, drawn once and reused at every evaluation; default 4
  logEvery?: number; // a progress line every so many steps (and at the end); default steps/10
  seed?: number; // train draws no random numbers itself (the data functions own their Rng); recorded for the run cache key
  trainable?: string[]; // names to train; default all
  log?: (line: string) => void; // default console.log
}

export interface TrainResult { steps: number[]; trainLoss: number[]; evalSteps: number[]; evalLoss: number[]; seconds: number }

// θ ← AdamW(θ, ∂loss(θ; batch_s)/∂θ, η(s)) for s = 1 … steps, batch_s = data.train()
// loss(params, batch [B, T+1]) -> scalar; params are trained in place -> the loss of every step and the held-out curve
export function train(params: Params, loss: (params: Params, batch: tf.Tensor2D) => tf.Scalar,
  data: { train: () => tf.Tensor2D; eval?: () => tf.Tensor2D }, options: TrainOptions): TrainResult {
  need(params !== null && typeof params === "object", `params must be an object of named tensors, got ${params}`);
  need(typeof loss === "function", `loss must be a function (params, batch) => scalar, got ${typeof loss}`);
  need(data !== null && typeof data === "object" && typeof data.train === "function",
    `data must be { train: () => batch, eval?: () => batch }, got ${data === null ? "null" : typeof data}`);
  const o = options;
  need(o !== null && typeof o === "object", `options must be an object with steps, lr, batchSize, seqLen`);
  need(positiveInt(o.steps), `options.steps must be a positive integer, got ${o.steps}`);
  need(typeof o.lr === "number" && o.lr > 0 && Number.isFinite(o.lr), `options.lr must be a positive number, got ${o.lr}`);
  need(positiveInt(o.batchSize), `options.batchSize must be a positive integer, got ${o.batchSize}`);
  need(positiveInt(o.seqLen), `options.seqLen must be a positive integer, got ${o.seqLen}`);
  const { warmup, minLr } = scheduleDefaults(o);
  need(Number.isInteger(warmup) && warmup >= 0 && warmup <= o.steps, `options.warmup must be an integer in 0..steps (${o.steps}), got ${warmup}`);
  need(minLr >= 0 && minLr <= o.lr, `options.minLr must be in [0, lr = ${o.lr}], got ${minLr}`);
  const logEvery = o.logEvery ?? Math.max(1, Math.round(o.steps / 10));
  const evalEvery = o.evalEvery ?? logEvery;
  need(positiveInt(logEvery), `options.logEvery must be a positive integer, got ${logEvery}`);
  need(positiveInt(evalEvery), `options.evalEvery must be a positive integer, got ${evalEvery}`);
  const log = o.log ?? ((line: string) => console.log(line));
  const names = o.trainable ?? Object.keys(params);

  const state = adamw(params, names, { weightDecay: o.weightDecay ?? 0.1, clip: o.clip ?? 1.0 });
  // The held-out batches are drawn once: every evaluation then scores the same text, so the curve
  // moves because the model changed, not because the batches did.
  const evalSet = data.eval ? Array.from({ length: o.evalBatches ?? 4 }, () => checkBatch(data.eval!(), o, "eval")) : null;
  const result: TrainResult = { steps: [], trainLoss: [], evalSteps: [], evalLoss: [], seconds: 0 };
  const start = Date.now();
  let pending: tf.Scalar[] = [];
  try {
    for (let s = 1; s <= o.steps; s++) {
      const batch = data.train();
      if (s === 1) checkBatch(batch, o, "train");
      pending.push(trainStep(params, loss, batch, state, learningRate(s, { steps: o.steps, lr: o.lr, warmup, minLr })));
      batch.dispose();
      const logNow = s % logEvery === 0 || s === o.steps;
      const evalNow = evalSet !== null && (s % evalEvery === 0 || s === o.steps);
      if (!logNow && !evalNow) continue;
      // The only read-back from the backend: the losses of the steps since the last line, at once.
      const stacked = tf.stack(pending);
      const values = Array.from(stacked.dataSync());
      tf.dispose([stacked, ...pending]);
      values.forEach((l, i) => result.steps.push(s - values.length + 1 + i));
      result.trainLoss.push(...values);
      pending = [];
      const window = values.reduce((a, b) => a + b, 0) / values.length;
      if (!Number.isFinite(window)) throw new Error(`the training loss became ${window} by step ${s}; lower options.lr (${o.lr}) or set options.clip`);
      let line = `step ${s}/${o.steps}  loss ${window.toFixed(3)}`;
      if (evalNow) {
        const e = evalLoss(params, loss, evalSet as tf.Tensor2D[]);
        result.evalSteps.push(s);
        result.evalLoss.push(e);
        line += `  eval ${e.toFixed(3)}`;
      }
      if (logNow) log(`${line}  ${((Date.now() - start) / 1000).toFixed(1)} s`);
    }
  } finally {
    tf.dispose(pending);
    if (evalSet) tf.dispose(evalSet);
    disposeAdamW(state);
  }
  result.seconds = (Date.now() - start) / 1000;
  return result;
}

function checkBatch(batch: tf.Tensor2D, o: TrainOptions, which: string): tf.Tensor2D {
  need(batch instanceof tf.Tensor && batch.rank === 2 && batch.shape[0] === o.batchSize && batch.shape[1] === o.seqLen + 1,
    `data.${which}() must return [batchSize, seqLen + 1] = [${o.batchSize}, ${o.seqLen + 1}], got ${batch instanceof tf.Tensor ? `[${batch.shape.join(",")}]` : typeof batch}`);
  return batch;
}

// ───────────────────────────── checkpoints ─────────────────────────────
//
// The file layout is safetensors' (Hugging Face): 8 bytes little-endian header length n, n bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}} padded with spaces, then the raw
// little-endian tensor bytes end to end. Python's `safetensors.numpy.load_file` reads these files.

const DTYPES: { [tfjs: string]: string } = { float32: "F32", int32: "I32" };

// file = [u64 n][header JSON, n bytes][tensor bytes]
// params {name: float32 | int32 tensor} -> a file (its folder is created)
export function saveParams(params: Params, file: string): void {
  need(params !== null && typeof params === "object", `params must be an object of named tensors, got ${params}`);
  const header: { [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } } = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(params)) {
    need(t instanceof tf.Tensor, `params["${name}"] must be a tensor, got ${typeof t}`);
    need(DTYPES[t.dtype] !== undefined, `params["${name}"] must be float32 or int32 to be saved, got ${t.dtype}`);
    const data = t.dataSync() as Float32Array | Int32Array;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype: DTYPES[t.dtype], shape: t.shape.slice(), data_offsets: [offset, offset + bytes.length] };
    chunks.push(Buffer.from(bytes)); // a copy: dataSync's array may be the backend's own buffer
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // keep the tensor bytes 8-aligned
  const head = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([len, head, ...chunks]));
}

// the inverse of saveParams
// a file -> Params of tf.Variable (like initDecoder, so a loaded model can keep training)
export function loadParams(file: string): Params {
  need(fs.existsSync(file), `file must be a saved params file, but ${file} does not exist`);
  const buf = fs.readFileSync(file);
  need(buf.length >= 8, `file ${file} is not a params file (${buf.length} bytes, shorter than its 8-byte header length)`);
  const n = Number(buf.readBigUInt64LE(0));
  need(n > 0 && 8 + n <= buf.length, `file ${file} is not a params file (its header length ${n} does not fit its ${buf.length} bytes)`);
  let header: { [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } };
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  } catch {
    throw new Error(`file ${file} is not a params file (its header is not JSON)`);
  }
  const base = 8 + n;
  const params: Params = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const dtype = h.dtype === "F32" ? "float32" : h.dtype === "I32" ? "int32" : null;
    need(dtype !== null, `file ${file} holds "${name}" as ${h.dtype}; only F32 and I32 are supported`);
    const [begin, end] = h.data_offsets;
    const size = h.shape.reduce((a, b) => a * b, 1);
    need(end - begin === 4 * size && base + end <= buf.length, `file ${file} is damaged: "${name}" [${h.shape.join(",")}] needs ${4 * size} bytes at ${begin}..${end}`);
    // Copy into a fresh, aligned ArrayBuffer (a Buffer's byteOffset need not be a multiple of 4).
    const raw = new Uint8Array(end - begin);
    raw.set(buf.subarray(base + begin, base + end));
    const values = dtype === "float32" ? new Float32Array(raw.buffer) : new Int32Array(raw.buffer);
    const t = tf.tensor(values, h.shape, dtype as "float32" | "int32");
    params[name] = tf.variable(t, true);
    t.dispose();
  }
  return params;
}

// ───────────────────────────── the run cache ─────────────────────────────

// The key's JSON with every object's keys sorted, so {a, b} and {b, a} are the same run.
export function stableJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : stableJSON(v))).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as { [k: string]: unknown };
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJSON(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function isParams(value: unknown): value is Params {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const vals = Object.values(value as object);
  return vals.length > 0 && vals.every((t) => t instanceof tf.Tensor);
}

// The repository root: lib/.. (through the notebooks' lib symlink too), else the nearest folder
// above the working directory that has a package.json.
export function repoRoot(): string {
  const tries: string[] = [];
  try {
    tries.push(path.join(fs.realpathSync(__dirname), ".."));
  } catch {
    // __dirname may be virtual in a notebook kernel; the working directory still works
  }
  for (let d = process.cwd(); ; d = path.dirname(d)) {
    tries.push(d);
    if (path.dirname(d) === d) break;
  }
  return tries.find((d) => fs.existsSync(path.join(d, "package.json"))) ?? process.cwd();
}

/** The folder of one cached run: $BOOK_CACHE (or <repo>/.cache/runs) / 16 hex digits of sha256(key). */
export function cacheDir(key: object): string {
  const root = process.env.BOOK_CACHE ? path.resolve(process.env.BOOK_CACHE) : path.join(repoRoot(), ".cache", "runs");
  const hash = crypto.createHash("sha256").update(stableJSON(key)).digest("hex").slice(0, 16);
  return path.join(root, hash);
}

// result = stored(key) if the run was cached, else compute() (then stored under key)
// key: a JSON object naming everything the run depends on (config, options, data, seed, a version)
export async function cached<T>(key: object, compute: () => T | Promise<T>): Promise<T> {
  need(key !== null && typeof key === "object", `key must be an object describing the run (config, options, seed), got ${key}`);
  need(typeof compute === "function", `compute must be a function returning the run's result, got ${typeof compute}`);
  const dir = cacheDir(key);
  const meta = path.join(dir, "result.json");
  if (process.env.BOOK_NO_CACHE !== "1" && fs.existsSync(meta)) return readEntry(dir) as T;

  const value = await compute();
  // What is stored: every top-level field that is a Params object goes to <field>.safetensors (the
  // result itself, if it is one), the rest to result.json. A hit and a miss return the same thing:
  // the JSON part round-trips, the tensors are saved bit for bit.
  const root = isParams(value);
  const tensorFields = root ? [] : value !== null && typeof value === "object" && !Array.isArray(value)
    ? Object.keys(value as object).filter((k) => isParams((value as { [k: string]: unknown })[k])) : [];
  let json: unknown = root ? null : value;
  if (tensorFields.length > 0) {
    const rest: { [k: string]: unknown } = { ...(value as object) };
    for (const k of tensorFields) delete rest[k];
    json = rest;
  }
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  fs.mkdirSync(tmp, { recursive: true });
  if (root) saveParams(value as unknown as Params, path.join(tmp, "params.safetensors"));
  for (const k of tensorFields) saveParams((value as { [k: string]: Params })[k], path.join(tmp, `${k}.safetensors`));
  const text = json === undefined ? "null" : JSON.stringify(json);
  fs.writeFileSync(path.join(tmp, "key.json"), stableJSON(key) + "\n");
  fs.writeFileSync(path.join(tmp, "result.json"), JSON.stringify({ root, tensorFields, value: JSON.parse(text ?? "null") }) + "\n");
  // Written aside and renamed into place: an interrupted run never leaves a half entry behind.
  fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.renameSync(tmp, dir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process stored the same run first
  }
  if (root) return value;
  if (tensorFields.length === 0) return JSON.parse(text ?? "null") as T;
  const out = JSON.parse(text) as { [k: string]: unknown };
  for (const k of tensorFields) out[k] = (value as { [k: string]: unknown })[k];
  return out as T;
}

function readEntry(dir: string): unknown {
  const { root, tensorFields, value } = JSON.parse(fs.readFileSync(path.join(dir, "result.json"), "utf8"));
  if (root) return loadParams(path.join(dir, "params.safetensors"));
  for (const k of tensorFields as string[]) value[k] = loadParams(path.join(dir, `${k}.safetensors`));
  return value;
}
