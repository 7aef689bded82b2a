// Attention: every token asks a question (query), every token offers a label (key) and a content
// (value); a token's output is the average of the values, weighted by how well its query matches
// each key. Multi-head attention runs H of these side by side on slices of the model width.
//
// Shapes: B batch, H heads, T query positions, S key positions, d or dh the per-head width,
// D = H·dh the model width. Masks are *additive*: 0 where attention is allowed, MASKED (-1e9)
// where it is not, added to the scores before the softmax.
import { tf } from "./tf";

/** A model's parameters: a plain object of named tensors. Weights are stored [in, out]: y = x·W + b. */
export type Params = { [name: string]: tf.Tensor };

/** The hook a forward pass calls after a linear map, so an adapter can add its delta: returns y' . */
export type Project = (name: string, x: tf.Tensor, y: tf.Tensor) => tf.Tensor;

/**
 * The value added to a masked score. We use a large finite number, not -Infinity: a row whose keys
 * are all masked then gets uniform weights (every score is equally -1e9) instead of NaN (−∞ − (−∞)),
 * and 1e9 is so far below any real score that exp() of a masked entry underflows to exactly 0.
 */
export const MASKED = -1e9;

function shapeOf(t: tf.Tensor): string {
  return `[${t.shape.join(",")}]`;
}

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

// y = x·W + b on the last axis
// x [..., in], w [in, out], b [out] -> y [..., out]
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  need(w.rank === 2, `w must be [in, out], got shape ${shapeOf(w)}`);
  const [din, dout] = w.shape;
  need(x.shape[x.rank - 1] === din, `x must end in the weight's input width ${din}, got shape ${shapeOf(x)}`);
  // tfjs's matMul gradient does not reduce a broadcast batch dimension, so we flatten to 2-D.
  const flat = x.rank === 2 ? x : x.reshape([-1, din]);
  let y = tf.matMul(flat, w);
  if (b !== undefined) y = y.add(b);
  return x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), dout]);
}

// Memoised JS masks: building one is a loop, uploading it is one op.
const causalCache = new Map<string, Float32Array>();

// M[i, j] = 0 if j ≤ i + (s − t) else −1e9   (query i sits at absolute position s − t + i)
// t queries, s keys (s ≥ t; s > t when earlier keys come from a KV cache) -> [t, s]
export function causalMask(t: number, s: number): tf.Tensor2D {
  need(Number.isInteger(t) && t >= 1, `t must be a positive integer (number of queries), got ${t}`);
  need(Number.isInteger(s) && s >= t, `s must be an integer ≥ t = ${t} (number of keys), got ${s}`);
  const key = `${t},${s}`;
  let m = causalCache.get(key);
  if (m === undefined) {
    m = new Float32Array(t * s);
    const offset = s - t;
    for (let i = 0; i < t; i++) for (let j = i + offset + 1; j < s; j++) m[i * s + j] = MASKED;
    if (causalCache.size > 256) causalCache.clear();
    causalCache.set(key, m);
  }
  return tf.tensor2d(m, [t, s]);
}

// M[b, 0, 0, j] = 0 if j < lengths[b] else −1e9   (keys past a row's length are padding)
// lengths [B] (numbers), s keys -> [B, 1, 1, s], broadcasts over heads and queries
export function paddingMask(lengths: ArrayLike<number>, s: number): tf.Tensor4D {
  need(Number.isInteger(s) && s >= 1, `s must be a positive integer (number of keys), got ${s}`);
  const n = lengths.length;
  need(n >= 1, `lengths must hold one length per batch row, got an empty list`);
  const m = new Float32Array(n * s);
  for (let b = 0; b < n; b++) {
    const len = lengths[b];
    need(Number.isInteger(len) && len >= 0 && len <= s, `lengths[${b}] must be an integer in [0, ${s}], got ${len}`);
    for (let j = len; j < s; j++) m[b * s + j] = MASKED;
  }
  return tf.tensor4d(m, [n, 1, 1, s]);
}

// Sparse patterns (Child et al. 2019): each query sees O(w) keys instead of O(T), so a kernel that
// skips the masked blocks does O(T·w) work. Here they are ordinary additive masks: our dense
// attention still computes every score, so they show *which* entries a sparse kernel would skip.

// M[i, j] = 0 if 0 ≤ (s − t + i) − j < window else −1e9   (a sliding window: the last `window` keys, itself included)
// t queries, window ≥ 1, s keys (default t) -> [t, s]
export function localMask(t: number, window: number, s: number = t): tf.Tensor2D {
  need(Number.isInteger(t) && t >= 1, `t must be a positive integer (number of queries), got ${t}`);
  need(Number.isInteger(window) && window >= 1, `window must be a positive integer (keys each query sees), got ${window}`);
  need(Number.isInteger(s) && s >= t, `s must be an integer ≥ t = ${t} (number of keys), got ${s}`);
  return sparseMask(t, s, (back) => back < window);
}

// M[i, j] = 0 if δ = (s − t + i) − j ≥ 0 and (δ < stride or δ mod stride = 0) else −1e9
// (Child et al.'s strided pattern, both halves in one mask: the last `stride` keys, then every stride-th)
// t queries, stride ≥ 1, s keys (default t) -> [t, s]
export function stridedMask(t: number, stride: number, s: number = t): tf.Tensor2D {
  need(Number.isInteger(t) && t >= 1, `t must be a positive integer (number of queries), got ${t}`);
  need(Number.isInteger(stride) && stride >= 1, `stride must be a positive integer, got ${stride}`);
  need(Number.isInteger(s) && s >= t, `s must be an integer ≥ t = ${t} (number of keys), got ${s}`);
  return sparseMask(t, s, (back) => back < stride || back % stride === 0);
}

// keep(δ) decides a causal entry by how far back the key is, δ = (s − t + i) − j ≥ 0
function sparseMask(t: number, s: number, keep: (back: number) => boolean): tf.Tensor2D {
  const m = new Float32Array(t * s).fill(MASKED);
  const offset = s - t;
  for (let i = 0; i < t; i++) for (let j = 0; j <= i + offset; j++) if (keep(i + offset - j)) m[i * s + j] = 0;
  return tf.tensor2d(m, [t, s]);
}

// dist_h = mean over b, i of Σ_j w[b,h,i,j] · |(s − t + i) − j|   (how far back a head looks, in positions)
// weights [B,H,T,S] (query i at absolute position S − T + i) -> [H]
export function meanAttentionDistance(weights: tf.Tensor4D): tf.Tensor1D {
  need(weights.rank === 4, `weights must be [batch, heads, queries, keys], got shape ${shapeOf(weights)}`);
  const [, , T, S] = weights.shape;
  need(S >= T, `weights must have at least as many keys as queries (S ≥ T), got shape ${shapeOf(weights)}`);
  return tf.tidy(() => {
    const query = tf.range(S - T, S, 1, "float32").reshape([T, 1]);
    const key = tf.range(0, S, 1, "float32").reshape([1, S]);
    const distance = query.sub(key).abs(); // [T, S], broadcasts over batch and heads
    return weights.mul(distance).sum(-1).mean([0, 2]) as tf.Tensor1D;
  });
}

export interface AttentionOptions {
  /** Additive mask broadcastable to [B, H, T, S] (paddingMask, causalMask, or a sum of them). */
  mask?: tf.Tensor;
  /** Add causalMask(T, S): query i sees keys up to its own position. */
  causal?: boolean;
  /** Also return the attention weights [B, H, T, S]. */
  returnWeights?: boolean;
}

// softmax(Q·Kᵀ/√d + M)·V
// q [B,H,T,d], k [B,H,S,d], v [B,H,S,dv] -> out [B,H,T,dv], weights [B,H,T,S]
export function scaledDotProductAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: AttentionOptions = {},
): { out: tf.Tensor4D; weights?: tf.Tensor4D } {
  need(q.rank === 4, `q must be [batch, heads, seq, dim], got shape ${shapeOf(q)}`);
  need(k.rank === 4, `k must be [batch, heads, seq, dim], got shape ${shapeOf(k)}`);
  need(v.rank === 4, `v must be [batch, heads, seq, dim], got shape ${shapeOf(v)}`);
  const [B, H, T, d] = q.shape;
  const S = k.shape[2];
  need(k.shape[0] === B && k.shape[1] === H && k.shape[3] === d,
    `k must be [${B}, ${H}, S, ${d}] to match q ${shapeOf(q)}, got shape ${shapeOf(k)}`);
  need(v.shape[0] === B && v.shape[1] === H && v.shape[2] === S,
    `v must be [${B}, ${H}, ${S}, dv] to match k ${shapeOf(k)}, got shape ${shapeOf(v)}`);
  // Scale q (T·d numbers) rather than the scores (T·S): same result, and it keeps the score
  // variance ≈ 1 so the softmax does not saturate as d grows.
  let scores = tf.matMul(q.mul(1 / Math.sqrt(d)), k, false, true); // [B,H,T,S]
  let mask = options.mask;
  if (mask !== undefined) {
    need(mask.rank <= 4 && mask.shape[mask.rank - 1] === S,
      `mask must broadcast to [${B}, ${H}, ${T}, ${S}], got shape ${shapeOf(mask)}`);
  }
  if (options.causal) mask = mask === undefined ? causalMask(T, S) : mask.add(causalMask(T, S));
  if (mask !== undefined) scores = scores.add(mask);
  const weights = tf.softmax(scores) as tf.Tensor4D; // softmax over the last axis (keys)
  const out = tf.matMul(weights, v) as tf.Tensor4D;
  return options.returnWeights ? { out, weights } : { out };
}

// [B, T, H·dh] -> reshape [B, T, H, dh] -> transpose -> [B, H, T, dh]
// x [B,T,D], nHeads H (D divisible by H) -> [B,H,T,D/H]
export function splitHeads(x: tf.Tensor3D, nHeads: number): tf.Tensor4D {
  need(x.rank === 3, `x must be [batch, seq, width], got shape ${shapeOf(x)}`);
  const [B, T, D] = x.shape;
  need(Number.isInteger(nHeads) && nHeads >= 1 && D % nHeads === 0,
    `nHeads must divide the width ${D}, got ${nHeads}`);
  return x.reshape([B, T, nHeads, D / nHeads]).transpose([0, 2, 1, 3]);
}

// the inverse of splitHeads: concatenate the heads back along the width
// x [B,H,T,dh] -> [B,T,H·dh]
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  need(x.rank === 4, `x must be [batch, heads, seq, dim], got shape ${shapeOf(x)}`);
  const [B, H, T, dh] = x.shape;
  return x.transpose([0, 2, 1, 3]).reshape([B, T, H * dh]);
}

export interface MultiHeadOptions extends AttentionOptions {
  /** Cross-attention: the sequence to attend to (the encoder's output) [B, S, D]. */
  memory?: tf.Tensor3D;
  /** Cross-attention with keys and values already projected (see crossKeysValues): skips `memory`. */
  kv?: { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Self-attention KV cache: keys and values of earlier positions [B, H, t, dh], prepended. */
  past?: { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Adapter hook called after each linear map with its name ("<prefix>.qkv", "<prefix>.proj"). */
  project?: Project;
}

// Cross-attention keys and values from the encoder's output, computed once per source sentence:
// [K | V] = memory·W_kv + b_kv, memory [B,S,D], W_kv [D,2D] -> k, v [B,H,S,dh]
export function crossKeysValues(params: Params, prefix: string, memory: tf.Tensor3D, nHeads: number,
  project?: Project): { k: tf.Tensor4D; v: tf.Tensor4D } {
  need(memory.rank === 3, `memory must be [batch, seq, width], got shape ${shapeOf(memory)}`);
  let kv = linear(memory, param(params, `${prefix}.kv.w`), param(params, `${prefix}.kv.b`)) as tf.Tensor3D;
  if (project) kv = project(`${prefix}.kv`, memory, kv) as tf.Tensor3D;
  const [k, v] = splitFused(kv, 2, nHeads);
  return { k, v };
}

export function param(params: Params, name: string): tf.Tensor {
  const t = params[name];
  if (t === undefined) throw new Error(`params must hold a tensor named "${name}", but it has no such key`);
  return t;
}

// Split a fused projection [B, T, n·D] into n tensors [B, H, T, dh] with 3 ops (reshape, transpose,
// split) instead of 3n. Column c·D + h·dh + i of the fused output is head h, slot i of part c.
function splitFused(y: tf.Tensor3D, n: number, nHeads: number): tf.Tensor4D[] {
  const [B, T, nD] = y.shape;
  const dh = nD / n / nHeads;
  need(Number.isInteger(dh), `nHeads must divide the width ${nD / n}, got ${nHeads}`);
  const heads = y.reshape([B, T, n * nHeads, dh]).transpose([0, 2, 1, 3]); // [B, nH, T, dh]
  return tf.split(heads, n, 1) as tf.Tensor4D[];
}

// MultiHead(x) = Concat_h(softmax(Q_h K_hᵀ/√dh + M) V_h)·W_o + b_o
// self-attention: [Q|K|V] = x·W_qkv + b_qkv with one fused matMul, W_qkv [D,3D] ("<prefix>.qkv.w");
// cross-attention: Q = x·W_q + b_q ("<prefix>.q.w" [D,D]), [K|V] = memory·W_kv + b_kv ("<prefix>.kv.w" [D,2D]);
// x [B,T,D] -> out [B,T,D]; k, v [B,H,S,dh] (all keys, for a cache); weights [B,H,T,S]
export function multiHeadAttention(
  params: Params, prefix: string, x: tf.Tensor3D, nHeads: number, options: MultiHeadOptions = {},
): { out: tf.Tensor3D; k: tf.Tensor4D; v: tf.Tensor4D; weights?: tf.Tensor4D } {
  need(x.rank === 3, `x must be [batch, seq, width], got shape ${shapeOf(x)}`);
  const project = options.project;
  let q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D;
  if (options.memory !== undefined || options.kv !== undefined) {
    let qy = linear(x, param(params, `${prefix}.q.w`), param(params, `${prefix}.q.b`)) as tf.Tensor3D;
    if (project) qy = project(`${prefix}.q`, x, qy) as tf.Tensor3D;
    q = splitHeads(qy, nHeads);
    ({ k, v } = options.kv ?? crossKeysValues(params, prefix, options.memory as tf.Tensor3D, nHeads, project));
  } else {
    let qkv = linear(x, param(params, `${prefix}.qkv.w`), param(params, `${prefix}.qkv.b`)) as tf.Tensor3D;
    if (project) qkv = project(`${prefix}.qkv`, x, qkv) as tf.Tensor3D;
    [q, k, v] = splitFused(qkv, 3, nHeads);
    if (options.past !== undefined && options.past.k.shape[2] > 0) {
      k = tf.concat([options.past.k, k], 2);
      v = tf.concat([options.past.v, v], 2);
    }
  }
  const att = scaledDotProductAttention(q, k, v, options);
  const merged = mergeHeads(att.out);
  let out = linear(merged, param(params, `${prefix}.proj.w`), param(params, `${prefix}.proj.b`)) as tf.Tensor3D;
  if (project) out = project(`${prefix}.proj`, merged, out) as tf.Tensor3D;
  return att.weights ? { out, k, v, weights: att.weights } : { out, k, v };
}
