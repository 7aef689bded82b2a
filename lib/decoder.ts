// The tiny decoder-only language model (GPT-2 style): token + position embeddings, nLayers pre-LN
// Transformer blocks with causal self-attention, a final LayerNorm, and an output head tied to the
// token embedding (logits = h·Eᵀ). It is trained to predict every next token at once.
//
// Shapes: B batch, T positions, D = dModel, V vocabulary, L layers, H heads, dh = D/H.
import { tf } from "./tf";
import { Params } from "./attention";
import { embed, positionalEncoding, layerNorm, transformerBlock, blockShapes, initParams, crossEntropy } from "./layers";

export type { Params } from "./attention";

export interface DecoderConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  dFF: number;
  positional: "learned" | "sinusoidal";
}

/** For tests and the overview notebook: trains in seconds. */
export const TINY: DecoderConfig = {
  vocabSize: 96, contextLength: 64, dModel: 64, nLayers: 2, nHeads: 4, dFF: 256, positional: "learned",
};

/** The one-minute model of the book. */
export const BASE: DecoderConfig = {
  vocabSize: 96, contextLength: 128, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512, positional: "learned",
};

/** Per layer: keys and values of every position so far, [B, H, length, dh]. */
export interface KVCache { k: tf.Tensor4D[]; v: tf.Tensor4D[]; length: number }

/** The sockets: how LoRA and life cards plug into the forward pass. Both methods are optional. */
export interface Adapter {
  /** After each linear map: name like "h0.attn.qkv", x its input [B,T,in], y its output [B,T,out]; returns y + delta. */
  project?(name: string, x: tf.Tensor, y: tf.Tensor): tf.Tensor;
  /** After block `layer`: h [B,T,D]; returns h + s·v. */
  residual?(layer: number, h: tf.Tensor): tf.Tensor;
}

export interface ForwardOptions { cache?: KVCache; adapter?: Adapter; attention?: boolean }

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** Throws one sentence if the config cannot build a model. */
export function checkConfig(config: DecoderConfig): void {
  checkTransformerConfig(config, ["vocabSize", "contextLength", "dModel", "nLayers", "nHeads", "dFF"]);
}

/** The checks every Transformer config shares: the named sizes are positive integers, heads divide d, a known positional kind. */
export function checkTransformerConfig<C extends { dModel: number; nHeads: number; positional: string }>(config: C, sizes: (keyof C)[]): void {
  for (const key of sizes) {
    const v = config[key];
    need(Number.isInteger(v) && (v as number) >= 1, `config.${String(key)} must be a positive integer, got ${v}`);
  }
  need(config.dModel % config.nHeads === 0,
    `config.nHeads must divide config.dModel ${config.dModel}, got ${config.nHeads}`);
  need(config.positional === "learned" || config.positional === "sinusoidal",
    `config.positional must be "learned" or "sinusoidal", got ${JSON.stringify(config.positional)}`);
}

// Every parameter's name and shape, in a fixed order (the order the initialiser draws seeds in).
export function decoderShapes(config: DecoderConfig): [string, number[]][] {
  checkConfig(config);
  const { vocabSize: V, contextLength: C, dModel: d, nLayers: L, dFF } = config;
  const s: [string, number[]][] = [["wte", [V, d]]];
  if (config.positional === "learned") s.push(["wpe", [C, d]]);
  for (let l = 0; l < L; l++) s.push(...blockShapes(`h${l}`, d, dFF));
  s.push(["lnf.g", [d]], ["lnf.b", [d]]);
  return s;
}

// θ ~ GPT-2 init (N(0, 0.02²); residual projections scaled by 1/√(2L); LayerNorm 1 and 0; biases 0)
// config, seed -> Params of tf.Variable named as in decoderShapes
export function initDecoder(config: DecoderConfig, seed = 42): Params {
  return initParams(decoderShapes(config), config.nLayers, seed);
}

// an empty cache: per layer k, v of shape [B, H, 0, dh]
// config, batch -> KVCache with length 0
export function emptyCache(config: DecoderConfig, batch: number): KVCache {
  checkConfig(config);
  need(Number.isInteger(batch) && batch >= 1, `batch must be a positive integer, got ${batch}`);
  const dh = config.dModel / config.nHeads;
  const k: tf.Tensor4D[] = [], v: tf.Tensor4D[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    k.push(tf.zeros([batch, config.nHeads, 0, dh]));
    v.push(tf.zeros([batch, config.nHeads, 0, dh]));
  }
  return { k, v, length: 0 };
}

/** Frees a cache's tensors (a generation loop disposes the previous step's cache). */
export function disposeCache(cache: KVCache): void {
  for (const t of [...cache.k, ...cache.v]) t.dispose();
}

// h₀ = E[ids] + P[pos];  h_l = Block_l(h_{l−1}) (causal);  logits = LN_f(h_L)·Eᵀ
// ids [B,T] int32 -> logits [B,T,V]; cache: ids are new tokens at positions cache.length..; weights [B,H,T,S] per layer
export function decoderForward(params: Params, config: DecoderConfig, ids: tf.Tensor2D, options: ForwardOptions = {}):
  { logits: tf.Tensor3D; cache?: KVCache; attention?: tf.Tensor4D[] } {
  checkConfig(config);
  need(ids.rank === 2 && ids.dtype === "int32",
    `ids must be an int32 [batch, seq] tensor, got ${ids.dtype} shape [${ids.shape.join(",")}]`);
  const [B, T] = ids.shape;
  need(T >= 1, `ids must hold at least one position, got shape [${B},${T}]`);
  const { cache, adapter } = options;
  const offset = cache ? cache.length : 0;
  if (cache) {
    need(cache.k.length === config.nLayers && cache.v.length === config.nLayers,
      `cache must hold ${config.nLayers} layers, got ${cache.k.length}`);
    need(cache.k[0].shape[0] === B, `cache must be for batch ${B} (the rows of ids), got batch ${cache.k[0].shape[0]}`);
  }
  need(offset + T <= config.contextLength,
    `ids must fit the context: ${offset} cached + ${T} new positions exceed contextLength ${config.contextLength}`);
  // Only bind the hooks that exist, so with no adapter not a line of adapter code runs.
  const project = adapter && adapter.project ? adapter.project.bind(adapter) : undefined;
  const residual = adapter && adapter.residual ? adapter.residual.bind(adapter) : undefined;

  const wte = params["wte"];
  need(wte !== undefined, `params must hold "wte" (did it come from initDecoder?)`);
  const pos = positionalEncoding(config.positional, params["wpe"], offset, T, config.dModel, config.contextLength);
  let h = embed(wte, ids).add(pos) as tf.Tensor3D; // [B,T,D]
  const ks: tf.Tensor4D[] = [], vs: tf.Tensor4D[] = [], weights: tf.Tensor4D[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const past = cache ? { k: cache.k[l], v: cache.v[l] } : undefined;
    const out = transformerBlock(params, `h${l}`, h, config.nHeads,
      { causal: true, past, project, returnWeights: options.attention });
    h = out.h;
    if (residual) h = residual(l, h) as tf.Tensor3D;
    if (cache) { ks.push(out.k); vs.push(out.v); }
    if (out.weights) weights.push(out.weights);
  }
  h = layerNorm(h, params["lnf.g"], params["lnf.b"]);
  // Tied head: the same table that turned ids into vectors scores every vector against every token.
  const logits = tf.matMul(h.reshape([B * T, config.dModel]), wte, false, true).reshape([B, T, config.vocabSize]) as tf.Tensor3D;
  const result: { logits: tf.Tensor3D; cache?: KVCache; attention?: tf.Tensor4D[] } = { logits };
  if (cache) result.cache = { k: ks, v: vs, length: offset + T };
  if (options.attention) result.attention = weights;
  return result;
}

// L = −(1/(B·T)) Σ_{b,t} log p(ids[b,t+1] | ids[b,≤t])   (mean next-token cross-entropy, nats)
// ids [B,T+1] int32 -> scalar
export function lmLoss(params: Params, config: DecoderConfig, ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Scalar {
  need(ids.rank === 2 && ids.shape[1] >= 2,
    `ids must be [batch, seq+1] with seq+1 ≥ 2 (inputs and their next tokens), got shape [${ids.shape.join(",")}]`);
  const [B, T1] = ids.shape;
  const T = T1 - 1;
  const inputs = ids.slice([0, 0], [B, T]);
  const targets = ids.slice([0, 1], [B, T]).reshape([B * T]) as tf.Tensor1D;
  const { logits } = decoderForward(params, config, inputs, { adapter: options.adapter });
  return crossEntropy(logits.reshape([B * T, config.vocabSize]), targets);
}

// N = L·(12D² + 13D) + 2D  (+ V·D token table + C·D learned positions)  when F = 4D;
// in general a layer holds 4D² + 2·D·F + 9D + F (qkv 3D²+3D, proj D²+D, mlp 2DF+F+D, two LayerNorms 4D)
export function countParams(config: DecoderConfig): { total: number; nonEmbedding: number } {
  checkConfig(config);
  const { vocabSize: V, contextLength: C, dModel: d, nLayers: L, dFF: F } = config;
  const perLayer = 4 * d * d + 2 * d * F + 9 * d + F;
  // nonEmbedding counts the blocks and the final LayerNorm (Kaplan et al. 2020 leave out only the
  // embedding tables; the tied head adds no parameters).
  const nonEmbedding = L * perLayer + 2 * d;
  const embedding = V * d + (config.positional === "learned" ? C * d : 0);
  return { total: nonEmbedding + embedding, nonEmbedding };
}

// C_train ≈ 6·N + 6·L·C·D per token (Kaplan et al. 2020: forward 2N + 2·L·n_ctx·d_attn, backward twice that)
// N = countParams(config).nonEmbedding, C = contextLength; the tied head's V·D matMul is not counted
export function flopsPerToken(config: DecoderConfig): number {
  const N = countParams(config).nonEmbedding;
  return 6 * N + 6 * config.nLayers * config.contextLength * config.dModel;
}
