// The pieces a Transformer is stacked from: token embeddings, positional encodings, LayerNorm,
// the position-wise MLP, and the pre-LN block that wires them around attention with residuals.
//
// Shapes: B batch, T positions, D model width, V vocabulary, F the MLP's hidden width (dFF).
import { tf, Rng } from "./tf";
import { Params, Project, MultiHeadOptions, linear, multiHeadAttention, param } from "./attention";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

// E[ids]: row ids[b,t] of the embedding table
// table [V,D], ids [B,T] int32 -> [B,T,D]
export function embed(table: tf.Tensor, ids: tf.Tensor2D): tf.Tensor3D {
  need(table.rank === 2, `table must be [vocab, width], got shape [${table.shape.join(",")}]`);
  need(ids.rank === 2 && ids.dtype === "int32", `ids must be an int32 [batch, seq] tensor, got ${ids.dtype} shape [${ids.shape.join(",")}]`);
  return tf.gather(table, ids) as tf.Tensor3D;
}

const sinusoidCache = new Map<string, Float32Array>();

// PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D))   (Vaswani et al. 2017)
// n positions, width D -> [n, D] (a plain constant: nothing to learn)
export function sinusoidalPositions(n: number, dModel: number): tf.Tensor2D {
  need(Number.isInteger(n) && n >= 1, `n must be a positive integer (number of positions), got ${n}`);
  need(Number.isInteger(dModel) && dModel >= 1, `dModel must be a positive integer, got ${dModel}`);
  const key = `${n},${dModel}`;
  let pe = sinusoidCache.get(key);
  if (pe === undefined) {
    pe = new Float32Array(n * dModel);
    for (let p = 0; p < n; p++) {
      for (let j = 0; j < dModel; j++) {
        const i2 = j - (j % 2); // 2i: each sin/cos pair shares one frequency
        const angle = p / Math.pow(10000, i2 / dModel);
        pe[p * dModel + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
      }
    }
    if (sinusoidCache.size > 64) sinusoidCache.clear();
    sinusoidCache.set(key, pe);
  }
  return tf.tensor2d(pe, [n, dModel]);
}

// P[offset .. offset+T): learned rows of "wpe", or the sinusoids for those positions
// -> [T, D], added to the token embeddings (broadcast over the batch)
export function positionalEncoding(kind: "learned" | "sinusoidal", wpe: tf.Tensor | undefined,
  offset: number, t: number, dModel: number, contextLength: number): tf.Tensor2D {
  need(offset + t <= contextLength,
    `positions ${offset}..${offset + t - 1} must be below the context length ${contextLength}; use at most ${contextLength} tokens`);
  if (kind === "learned") {
    need(wpe !== undefined, `learned positions need a "wpe" tensor in params`);
    return (wpe as tf.Tensor).slice([offset, 0], [t, dModel]) as tf.Tensor2D;
  }
  const all = sinusoidalPositions(offset + t, dModel);
  return offset === 0 ? all : all.slice([offset, 0], [t, dModel]);
}

const LN_EPS = 1e-5;

// tf.customGrad's argument type (its inputs are typed as a loose list; ours are named).
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

// Forward and a hand-written backward in ~10 ops instead of autodiff's ~25: on tfjs-node each op
// costs 100–300 µs whatever its size, so fewer ops is where the speed is.
const layerNormCore = tf.customGrad(((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  const mean = x.mean(-1, true);
  const xc = x.sub(mean);
  const rstd = xc.square().mean(-1, true).add(LN_EPS).rsqrt();
  const xhat = xc.mul(rstd);
  save([xhat, rstd, g]);
  return {
    value: xhat.mul(g).add(b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xh, rs, gg] = saved;
      const dxhat = dy.mul(gg);
      // dx = rstd · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), the standard LayerNorm backward
      const dx = dxhat.sub(dxhat.mean(-1, true)).sub(xh.mul(dxhat.mul(xh).mean(-1, true))).mul(rs);
      const axes = Array.from({ length: dy.rank - 1 }, (_, i) => i);
      return [dx, dy.mul(xh).sum(axes), dy.sum(axes)];
    },
  };
}) as unknown as CustomGradFn);

// LN(x) = g ⊙ (x − μ)/√(σ² + ε) + b, μ and σ² over the last axis, ε = 1e-5
// x [..., D], g [D], b [D] -> [..., D]
export function layerNorm<T extends tf.Tensor>(x: T, g: tf.Tensor, b: tf.Tensor): T {
  const D = x.shape[x.rank - 1];
  need(g.rank === 1 && g.shape[0] === D && b.rank === 1 && b.shape[0] === D,
    `g and b must be [${D}] to match x [${x.shape.join(",")}], got [${g.shape.join(",")}] and [${b.shape.join(",")}]`);
  return layerNormCore(x, g, b) as T;
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

const geluCore = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  // x*x*x, not pow(x, 3): TF's Pow is many times slower than two multiplies.
  const x2 = x.mul(x);
  const t = tf.tanh(x.add(x2.mul(x).mul(GELU_A)).mul(GELU_C));
  save([x, x2, t]);
  return {
    value: x.mul(t.add(1)).mul(0.5),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, xx, th] = saved;
      // d/dx = ½(1 + t) + ½·x·(1 − t²)·c·(1 + 3a·x²)
      const inner = xx.mul(3 * GELU_A).add(1).mul(xs).mul(th.square().neg().add(1)).mul(0.5 * GELU_C);
      return [dy.mul(th.add(1).mul(0.5).add(inner))];
    },
  };
}) as unknown as CustomGradFn);

// GELU(x) ≈ ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))   (Hendrycks & Gimpel 2016, the tanh form GPT-2 uses)
// any shape -> same shape
export function gelu<T extends tf.Tensor>(x: T): T {
  return geluCore(x) as T;
}

// MLP(x) = GELU(x·W_fc + b_fc)·W_proj + b_proj   ("<prefix>.fc.w" [D,F], "<prefix>.proj.w" [F,D])
// x [B,T,D] -> [B,T,D]
export function mlp(params: Params, prefix: string, x: tf.Tensor3D, project?: Project): tf.Tensor3D {
  let hidden = linear(x, param(params, `${prefix}.fc.w`), param(params, `${prefix}.fc.b`));
  if (project) hidden = project(`${prefix}.fc`, x, hidden);
  const act = gelu(hidden);
  let out = linear(act, param(params, `${prefix}.proj.w`), param(params, `${prefix}.proj.b`));
  if (project) out = project(`${prefix}.proj`, act, out);
  return out as tf.Tensor3D;
}

export interface BlockOptions {
  /** Additive self-attention mask (paddingMask) broadcastable to [B,H,T,S]. */
  mask?: tf.Tensor;
  /** Causal self-attention (decoders). */
  causal?: boolean;
  /** KV cache of earlier positions for the self-attention. */
  past?: { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Cross-attention (the encoder-decoder's decoder): the encoder output, or its projected keys/values. */
  memory?: tf.Tensor3D;
  crossKV?: { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Additive mask on the cross-attention keys (the source's padding). */
  memoryMask?: tf.Tensor;
  returnWeights?: boolean;
  project?: Project;
}

export interface BlockOutput {
  h: tf.Tensor3D;
  /** All self-attention keys/values [B,H,S,dh], to keep as the next step's cache. */
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  weights?: tf.Tensor4D;
  crossWeights?: tf.Tensor4D;
}

// Pre-LN block (GPT-2): h = x + Attn(LN₁(x));  [h = h + CrossAttn(LN₂(h), memory)];  out = h + MLP(LN(h))
// params "<prefix>.ln1.g/b", "<prefix>.attn.*", ["<prefix>.ln2.g/b", "<prefix>.xattn.*" with cross],
// then the MLP's LayerNorm ("ln2", or "ln3" with cross) and "<prefix>.mlp.*"; x [B,T,D] -> h [B,T,D]
export function transformerBlock(params: Params, prefix: string, x: tf.Tensor3D, nHeads: number,
  options: BlockOptions = {}): BlockOutput {
  const p = (n: string) => param(params, `${prefix}.${n}`);
  const self: MultiHeadOptions = { mask: options.mask, causal: options.causal, past: options.past,
    returnWeights: options.returnWeights, project: options.project };
  const a = multiHeadAttention(params, `${prefix}.attn`, layerNorm(x, p("ln1.g"), p("ln1.b")), nHeads, self);
  let h = x.add(a.out) as tf.Tensor3D;
  const cross = options.memory !== undefined || options.crossKV !== undefined;
  let crossWeights: tf.Tensor4D | undefined;
  if (cross) {
    const c = multiHeadAttention(params, `${prefix}.xattn`, layerNorm(h, p("ln2.g"), p("ln2.b")), nHeads, {
      memory: options.memory, kv: options.crossKV, mask: options.memoryMask,
      returnWeights: options.returnWeights, project: options.project });
    h = h.add(c.out) as tf.Tensor3D;
    crossWeights = c.weights;
  }
  const ln = cross ? "ln3" : "ln2";
  h = h.add(mlp(params, `${prefix}.mlp`, layerNorm(h, p(`${ln}.g`), p(`${ln}.b`)), options.project)) as tf.Tensor3D;
  const out: BlockOutput = { h, k: a.k, v: a.v };
  if (a.weights) out.weights = a.weights;
  if (crossWeights) out.crossWeights = crossWeights;
  return out;
}

// The shapes of one block's parameters (initialisation and counting share this list).
// cross adds "ln3" and the cross-attention "xattn.q/kv/proj".
export function blockShapes(prefix: string, dModel: number, dFF: number, cross = false): [string, number[]][] {
  const d = dModel;
  const s: [string, number[]][] = [
    [`${prefix}.ln1.g`, [d]], [`${prefix}.ln1.b`, [d]],
    [`${prefix}.attn.qkv.w`, [d, 3 * d]], [`${prefix}.attn.qkv.b`, [3 * d]],
    [`${prefix}.attn.proj.w`, [d, d]], [`${prefix}.attn.proj.b`, [d]],
    [`${prefix}.ln2.g`, [d]], [`${prefix}.ln2.b`, [d]],
  ];
  if (cross) {
    s.push([`${prefix}.xattn.q.w`, [d, d]], [`${prefix}.xattn.q.b`, [d]],
      [`${prefix}.xattn.kv.w`, [d, 2 * d]], [`${prefix}.xattn.kv.b`, [2 * d]],
      [`${prefix}.xattn.proj.w`, [d, d]], [`${prefix}.xattn.proj.b`, [d]],
      [`${prefix}.ln3.g`, [d]], [`${prefix}.ln3.b`, [d]]);
  }
  s.push([`${prefix}.mlp.fc.w`, [d, dFF]], [`${prefix}.mlp.fc.b`, [dFF]],
    [`${prefix}.mlp.proj.w`, [dFF, d]], [`${prefix}.mlp.proj.b`, [d]]);
  return s;
}

// GPT-2 initialisation: weights ~ N(0, 0.02²), the projections that write into the residual stream
// ("attn.proj", "xattn.proj", "mlp.proj") ~ N(0, (0.02/√(2·nLayers))²) so the stream's variance does
// not grow with depth; biases and LayerNorm shifts 0, LayerNorm gains 1.
// shapes [(name, shape)], nLayers (for the residual scale), seed -> Params of tf.Variable
export function initParams(shapes: [string, number[]][], nLayers: number, seed: number): Params {
  const rng = new Rng(seed);
  const params: Params = {};
  for (const [name, shape] of shapes) {
    let value: tf.Tensor;
    if (name.endsWith(".g")) value = tf.ones(shape);
    else if (name.endsWith(".b")) value = tf.zeros(shape);
    else {
      const residual = /\.(attn|xattn|mlp)\.proj\.w$/.test(name);
      const std = residual ? 0.02 / Math.sqrt(2 * nLayers) : 0.02;
      value = tf.randomNormal(shape, 0, std, "float32", rng.seed());
    }
    params[name] = tf.variable(value, true);
    value.dispose();
  }
  return params;
}

// CE = −(1/Σw) Σᵢ wᵢ · log softmax(logitsᵢ)[targetᵢ]   (nats; w = 1 everywhere if no weights)
// logits [N,V], targets [N] int32, weights [N] (0 = ignore) -> scalar
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights?: tf.Tensor1D): tf.Scalar {
  need(logits.rank === 2, `logits must be [rows, vocab], got shape [${logits.shape.join(",")}]`);
  need(targets.rank === 1 && targets.shape[0] === logits.shape[0],
    `targets must be [${logits.shape[0]}] to match logits, got shape [${targets.shape.join(",")}]`);
  const V = logits.shape[1];
  const onehot = tf.oneHot(targets, V);
  // tf.losses.softmaxCrossEntropy has the fused gradient softmax − onehot (one op-chain, no log of 0)
  const perRow = tf.losses.softmaxCrossEntropy(onehot, logits, undefined, 0, tf.Reduction.NONE) as tf.Tensor1D;
  if (weights === undefined) return perRow.mean() as tf.Scalar;
  return perRow.mul(weights).sum().div(weights.sum().maximum(1)) as tf.Scalar;
}
