// The tiny encoder-decoder (T5 style, Raffel et al. 2020): an encoder reads the whole source with
// bidirectional self-attention (every source token sees every other, padding masked out); a decoder
// writes the target left to right with causal self-attention, and in every layer cross-attends to the
// encoder's output. Built from the same blocks as the decoder-only model; one token table serves the
// source, the target and the tied output head. (T5's relative position bias is replaced by the same
// absolute positions the decoder-only model uses.)
//
// Shapes: B batch, S source positions, T target positions, D = dModel, V vocabulary, H heads.
import { tf } from "./tf";
import { Params, paddingMask, crossKeysValues } from "./attention";
import { embed, positionalEncoding, layerNorm, transformerBlock, blockShapes, initParams, crossEntropy } from "./layers";
import { KVCache, checkTransformerConfig } from "./decoder";

export interface EncoderDecoderConfig {
  vocabSize: number;
  /** The longest source and the longest target (each). */
  contextLength: number;
  dModel: number;
  nEncoderLayers: number;
  nDecoderLayers: number;
  nHeads: number;
  dFF: number;
  positional: "learned" | "sinusoidal";
}

/** For tests and the architectures notebook. */
export const TINY_SEQ2SEQ: EncoderDecoderConfig = {
  vocabSize: 64, contextLength: 48, dModel: 64, nEncoderLayers: 2, nDecoderLayers: 2, nHeads: 4, dFF: 256,
  positional: "learned",
};

/** The decoder's self-attention cache plus the cross-attention keys/values of the encoded source. */
export interface Seq2SeqCache {
  self: KVCache;
  /** Per decoder layer, the projected encoder output [B,H,S,dh]: empty until the first call fills it. */
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  /** The source's padding mask [B,1,1,S], kept with the cross keys. */
  memoryMask?: tf.Tensor4D;
}

export interface Seq2SeqOptions {
  /** Real length of each source row; positions past it are padding (masked as keys everywhere). */
  srcLengths?: number[];
  cache?: Seq2SeqCache;
  attention?: boolean;
}

export interface Seq2SeqAttention { encoder: tf.Tensor4D[]; self: tf.Tensor4D[]; cross: tf.Tensor4D[] }

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

function checkConfig(config: EncoderDecoderConfig): void {
  checkTransformerConfig(config, ["vocabSize", "contextLength", "dModel", "nEncoderLayers", "nDecoderLayers", "nHeads", "dFF"]);
}

function checkIds(name: string, ids: tf.Tensor2D, maxLen: number): void {
  need(ids.rank === 2 && ids.dtype === "int32",
    `${name} must be an int32 [batch, seq] tensor, got ${ids.dtype} shape [${ids.shape.join(",")}]`);
  need(ids.shape[1] >= 1 && ids.shape[1] <= maxLen,
    `${name} must hold 1..${maxLen} positions (contextLength), got shape [${ids.shape.join(",")}]`);
}

// Names and shapes: "wte" [V,D]; "enc.wpe", "dec.wpe" [C,D] (learned only); "enc.h{l}.*" as in the
// decoder-only model; "dec.h{l}.*" add "ln3" and the cross-attention "xattn.q" [D,D], "xattn.kv" [D,2D],
// "xattn.proj" [D,D]; "enc.lnf", "dec.lnf".
export function encoderDecoderShapes(config: EncoderDecoderConfig): [string, number[]][] {
  checkConfig(config);
  const { vocabSize: V, contextLength: C, dModel: d, dFF } = config;
  const s: [string, number[]][] = [["wte", [V, d]]];
  if (config.positional === "learned") s.push(["enc.wpe", [C, d]], ["dec.wpe", [C, d]]);
  for (let l = 0; l < config.nEncoderLayers; l++) s.push(...blockShapes(`enc.h${l}`, d, dFF));
  s.push(["enc.lnf.g", [d]], ["enc.lnf.b", [d]]);
  for (let l = 0; l < config.nDecoderLayers; l++) s.push(...blockShapes(`dec.h${l}`, d, dFF, true));
  s.push(["dec.lnf.g", [d]], ["dec.lnf.b", [d]]);
  return s;
}

// θ ~ GPT-2 init: N(0, 0.02²), residual projections scaled by 1/√(2·L) with L the deeper stack
// config, seed -> Params of tf.Variable
export function initEncoderDecoder(config: EncoderDecoderConfig, seed = 42): Params {
  return initParams(encoderDecoderShapes(config), Math.max(config.nEncoderLayers, config.nDecoderLayers), seed);
}

// memory = LN(Block_L(… Block_1(E[src] + P) …)), bidirectional self-attention with the padding masked
// srcIds [B,S] int32, srcLengths [B] -> memory [B,S,D] (rows past a length hold junk nobody attends to)
export function encode(params: Params, config: EncoderDecoderConfig, srcIds: tf.Tensor2D,
  srcLengths?: number[], attention?: tf.Tensor4D[]): tf.Tensor3D {
  checkConfig(config);
  checkIds("srcIds", srcIds, config.contextLength);
  const [B, S] = srcIds.shape;
  need(srcLengths === undefined || srcLengths.length === B,
    `srcLengths must hold one length per source row (${B}), got ${srcLengths?.length}`);
  const mask = srcLengths ? paddingMask(srcLengths, S) : undefined;
  const pos = positionalEncoding(config.positional, params["enc.wpe"], 0, S, config.dModel, config.contextLength);
  let h = embed(params["wte"], srcIds).add(pos) as tf.Tensor3D;
  for (let l = 0; l < config.nEncoderLayers; l++) {
    const out = transformerBlock(params, `enc.h${l}`, h, config.nHeads, { mask, returnWeights: attention !== undefined });
    h = out.h;
    if (attention && out.weights) attention.push(out.weights);
  }
  return layerNorm(h, params["enc.lnf.g"], params["enc.lnf.b"]);
}

// an empty cache for `batch` rows: no target positions yet, no encoded source yet
export function emptySeq2SeqCache(config: EncoderDecoderConfig, batch: number): Seq2SeqCache {
  checkConfig(config);
  const dh = config.dModel / config.nHeads;
  const k: tf.Tensor4D[] = [], v: tf.Tensor4D[] = [];
  for (let l = 0; l < config.nDecoderLayers; l++) {
    k.push(tf.zeros([batch, config.nHeads, 0, dh]));
    v.push(tf.zeros([batch, config.nHeads, 0, dh]));
  }
  return { self: { k, v, length: 0 }, cross: [] };
}

// y = LN(DecBlock_L(… (E[tgt] + P) …))·Eᵀ, DecBlock = causal self-attn, cross-attn to memory, MLP
// srcIds [B,S], tgtIn [B,T] int32 -> logits [B,T,V]; with a cache, tgtIn holds the new target tokens only,
// the encoder runs on the first call and later calls reuse its cross keys/values (srcIds then unused)
export function encoderDecoderForward(params: Params, config: EncoderDecoderConfig, srcIds: tf.Tensor2D,
  tgtIn: tf.Tensor2D, options: Seq2SeqOptions = {}):
  { logits: tf.Tensor3D; cache?: Seq2SeqCache; attention?: Seq2SeqAttention } {
  checkConfig(config);
  checkIds("tgtIn", tgtIn, config.contextLength);
  const [B, T] = tgtIn.shape;
  const { cache } = options;
  const att: Seq2SeqAttention | undefined = options.attention ? { encoder: [], self: [], cross: [] } : undefined;
  const offset = cache ? cache.self.length : 0;
  need(offset + T <= config.contextLength,
    `tgtIn must fit the context: ${offset} cached + ${T} new positions exceed contextLength ${config.contextLength}`);

  // The source side: encode now, or reuse the cached cross keys/values.
  let cross: { k: tf.Tensor4D; v: tf.Tensor4D }[] | undefined;
  let memory: tf.Tensor3D | undefined;
  let memoryMask: tf.Tensor4D | undefined;
  if (cache && cache.cross.length === config.nDecoderLayers) {
    cross = cache.cross;
    memoryMask = cache.memoryMask;
  } else {
    need(srcIds.shape[0] === B, `srcIds must have the ${B} rows of tgtIn, got shape [${srcIds.shape.join(",")}]`);
    memory = encode(params, config, srcIds, options.srcLengths, att?.encoder);
    memoryMask = options.srcLengths ? paddingMask(options.srcLengths, srcIds.shape[1]) : undefined;
    if (cache) {
      cross = [];
      for (let l = 0; l < config.nDecoderLayers; l++)
        cross.push(crossKeysValues(params, `dec.h${l}.xattn`, memory, config.nHeads));
    }
  }

  const pos = positionalEncoding(config.positional, params["dec.wpe"], offset, T, config.dModel, config.contextLength);
  let h = embed(params["wte"], tgtIn).add(pos) as tf.Tensor3D;
  const ks: tf.Tensor4D[] = [], vs: tf.Tensor4D[] = [];
  for (let l = 0; l < config.nDecoderLayers; l++) {
    const out = transformerBlock(params, `dec.h${l}`, h, config.nHeads, {
      causal: true,
      past: cache ? { k: cache.self.k[l], v: cache.self.v[l] } : undefined,
      memory: cross ? undefined : memory,
      crossKV: cross ? cross[l] : undefined,
      memoryMask,
      returnWeights: att !== undefined,
    });
    h = out.h;
    ks.push(out.k);
    vs.push(out.v);
    if (att && out.weights) att.self.push(out.weights);
    if (att && out.crossWeights) att.cross.push(out.crossWeights);
  }
  h = layerNorm(h, params["dec.lnf.g"], params["dec.lnf.b"]);
  const logits = tf.matMul(h.reshape([B * T, config.dModel]), params["wte"], false, true)
    .reshape([B, T, config.vocabSize]) as tf.Tensor3D;
  const result: { logits: tf.Tensor3D; cache?: Seq2SeqCache; attention?: Seq2SeqAttention } = { logits };
  if (cache) result.cache = { self: { k: ks, v: vs, length: offset + T }, cross: cross!, memoryMask };
  if (att) result.attention = att;
  return result;
}

// weights w[b,t] = 1 if t < lengths[b] else 0 (padding ignored), flattened -> [B·T]
function lengthWeights(lengths: number[], B: number, T: number): tf.Tensor1D {
  need(lengths.length === B, `tgtLengths must hold one length per target row (${B}), got ${lengths.length}`);
  const w = new Float32Array(B * T);
  lengths.forEach((len, b) => {
    need(Number.isInteger(len) && len >= 0 && len <= T, `tgtLengths[${b}] must be an integer in [0, ${T}], got ${len}`);
    w.fill(1, b * T, b * T + len);
  });
  return tf.tensor1d(w);
}

// L = −Σ_{b,t<len_b} log p(tgtOut[b,t] | src_b, tgtIn[b,≤t]) / Σ_b len_b   (nats per real target token)
// src [B,S], tgtIn [B,T], tgtOut [B,T] int32 (tgtIn shifted: BOS + y, tgtOut: y + EOS) -> scalar
export function seq2seqLoss(params: Params, config: EncoderDecoderConfig, src: tf.Tensor2D, tgtIn: tf.Tensor2D,
  tgtOut: tf.Tensor2D, options: { srcLengths?: number[]; tgtLengths?: number[] } = {}): tf.Scalar {
  checkIds("tgtOut", tgtOut, config.contextLength);
  need(tgtOut.shape[0] === tgtIn.shape[0] && tgtOut.shape[1] === tgtIn.shape[1],
    `tgtOut must have tgtIn's shape [${tgtIn.shape.join(",")}], got [${tgtOut.shape.join(",")}]`);
  const [B, T] = tgtIn.shape;
  const { logits } = encoderDecoderForward(params, config, src, tgtIn, { srcLengths: options.srcLengths });
  const weights = options.tgtLengths ? lengthWeights(options.tgtLengths, B, T) : undefined;
  return crossEntropy(logits.reshape([B * T, config.vocabSize]), tgtOut.reshape([B * T]) as tf.Tensor1D, weights);
}

// y_t = argmax_v p(v | src, y_<t), y_0 = bos, until eos or maxLen tokens; the encoder runs once
// srcIds [B,S] -> per row the generated ids (without bos, stopping before eos)
export function greedyTranslate(params: Params, config: EncoderDecoderConfig, srcIds: tf.Tensor2D,
  options: { bos: number; eos: number; maxLen: number; srcLengths?: number[] }): number[][] {
  const { bos, eos, maxLen } = options;
  need(Number.isInteger(maxLen) && maxLen >= 1 && maxLen <= config.contextLength,
    `maxLen must be an integer in [1, ${config.contextLength}] (contextLength), got ${maxLen}`);
  for (const [name, id] of [["bos", bos], ["eos", eos]] as const)
    need(Number.isInteger(id) && id >= 0 && id < config.vocabSize, `${name} must be a token id in [0, ${config.vocabSize}), got ${id}`);
  const B = srcIds.shape[0];
  const out: number[][] = Array.from({ length: B }, () => []);
  const done = new Array<boolean>(B).fill(false);
  let next = new Array<number>(B).fill(bos);
  let cache = emptySeq2SeqCache(config, B);
  for (let step = 0; step < maxLen && !done.every(Boolean); step++) {
    const prev = cache;
    let ids!: tf.Tensor;
    tf.tidy(() => {
      const f = encoderDecoderForward(params, config, srcIds, tf.tensor2d(next, [B, 1], "int32"),
        { cache: prev, srcLengths: options.srcLengths });
      ids = tf.keep(f.logits.reshape([B, config.vocabSize]).argMax(-1));
      cache = f.cache!;
      // the new cache outlives this step's tidy
      for (const t of [...cache.self.k, ...cache.self.v, ...cache.cross.flatMap((c) => [c.k, c.v])]) tf.keep(t);
      if (cache.memoryMask) tf.keep(cache.memoryMask);
    });
    next = Array.from(ids.dataSync());
    ids.dispose();
    // free the previous step's self-attention cache (the cross keys are shared across steps)
    for (const t of [...prev.self.k, ...prev.self.v]) t.dispose();
    next.forEach((id, b) => {
      if (done[b]) return;
      if (id === eos) done[b] = true;
      else out[b].push(id);
    });
  }
  for (const t of [...cache.self.k, ...cache.self.v]) t.dispose();
  for (const c of cache.cross) { c.k.dispose(); c.v.dispose(); }
  cache.memoryMask?.dispose();
  return out;
}

// encoder layer 4D² + 2DF + 9D + F (as in the decoder-only model); decoder layer adds cross-attention
// 4D² + 4D and a third LayerNorm 2D: 8D² + 2DF + 15D + F; + 2D per final LayerNorm; + V·D (+ 2·C·D learned)
export function countEncoderDecoderParams(config: EncoderDecoderConfig):
  { total: number; nonEmbedding: number; encoder: number; decoder: number } {
  checkConfig(config);
  const { vocabSize: V, contextLength: C, dModel: d, dFF: F } = config;
  const encoder = config.nEncoderLayers * (4 * d * d + 2 * d * F + 9 * d + F) + 2 * d;
  const decoder = config.nDecoderLayers * (8 * d * d + 2 * d * F + 15 * d + F) + 2 * d;
  const embedding = V * d + (config.positional === "learned" ? 2 * C * d : 0);
  return { total: encoder + decoder + embedding, nonEmbedding: encoder + decoder, encoder, decoder };
}

// C_train ≈ 6·(N_enc + N_dec) + 6·C·D·(L_enc + 2·L_dec) per target token, for a source as long as the
// target (both C): Kaplan et al.'s 6N plus the attention scores (encoder self, decoder self and cross)
export function encoderDecoderFlopsPerToken(config: EncoderDecoderConfig): number {
  const { nonEmbedding } = countEncoderDecoderParams(config);
  return 6 * nonEmbedding + 6 * config.contextLength * config.dModel * (config.nEncoderLayers + 2 * config.nDecoderLayers);
}
