// Two ways to pre-train the same Transformer on unlabelled text.
//
// Causal LM (GPT; Radford et al. 2018): every position predicts the NEXT token from the tokens to its
// left — the causal mask hides the future. lmLoss in lib/decoder.ts is this objective; it scores
// every position, and the model it trains can write text left to right.
//
// Masked LM (BERT; Devlin et al. 2019): corrupt ~15% of the positions and predict the ORIGINAL token
// there, from both sides — no causal mask. It scores only the chosen positions; the model it trains
// fills blanks and encodes whole sentences, but has no left-to-right probability of a text.
//
// Here both run on the very same parameters as lib/decoder.ts (same names, same initDecoder): the
// only difference in the forward pass is `causal: false`. The masked model needs one token more, the
// mask symbol, so its config has vocabSize = V + 1 with [MASK] = V.
//
// Shapes: B batch, T positions, D = dModel, V vocabulary.
import { tf, Rng, SEED } from "./tf";
import { DecoderConfig, Params, TINY, checkConfig, decoderForward, initDecoder } from "./decoder";
import { embed, positionalEncoding, layerNorm, transformerBlock, crossEntropy } from "./layers";
import { TrainResult, batches, cached, train } from "./train";
import { corpusTokens } from "./languageModel";
import type { CorpusName } from "./data";
import type { Adapter } from "./decoder";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** BERT's masking recipe (Devlin et al. 2019, §3.1 and appendix C.2). */
export interface MaskOptions {
  /** The id of the [MASK] symbol (not a real token: the model's vocabulary is one larger than the text's). */
  maskId: number;
  /** Real tokens are 0 … vocabSize−1; a "random replacement" is drawn uniformly from them. */
  vocabSize: number;
  /** Fraction of the positions of a row to predict (0.15). */
  maskProb?: number;
  /** Of the chosen positions: fraction replaced by [MASK] (0.8) and by a random token (0.1); the rest stay. */
  replaceMask?: number;
  replaceRandom?: number;
}

export interface MaskedBatch {
  inputs: number[][]; // the corrupted text the model reads
  targets: number[][]; // the original text (what it must predict at the chosen positions)
  weights: number[][]; // 1 at the chosen positions, 0 elsewhere (only those are scored)
}

// chosen = n = max(1, round(p·T)) positions per row, uniform without replacement; at each chosen one
// u ~ U[0,1): u < 0.8 → [MASK], u < 0.9 → a uniform random real token, else unchanged
// ids [B][T] (plain numbers), rng -> { inputs, targets (= ids), weights } each [B][T]
export function maskTokens(ids: number[][], rng: Rng, options: MaskOptions): MaskedBatch {
  const { maskId, vocabSize } = options;
  const p = options.maskProb ?? 0.15;
  const pMask = options.replaceMask ?? 0.8;
  const pRandom = options.replaceRandom ?? 0.1;
  need(Array.isArray(ids) && ids.length >= 1 && ids.every((r) => Array.isArray(r) && r.length >= 1),
    `ids must be rows of token ids (number[][]), got ${Array.isArray(ids) ? `${ids.length} rows` : typeof ids}`);
  need(rng instanceof Rng, `rng must be an Rng (new Rng(seed) from lib/tf), got ${typeof rng}`);
  need(Number.isInteger(vocabSize) && vocabSize >= 1, `options.vocabSize must be a positive integer, got ${vocabSize}`);
  need(Number.isInteger(maskId) && maskId >= vocabSize, `options.maskId must be an id past the real tokens (≥ vocabSize ${vocabSize}), got ${maskId}`);
  need(p > 0 && p <= 1, `options.maskProb must be in (0, 1], got ${p}`);
  need(pMask >= 0 && pRandom >= 0 && pMask + pRandom <= 1, `options.replaceMask + replaceRandom must be fractions summing to ≤ 1, got ${pMask} + ${pRandom}`);
  const inputs: number[][] = [], targets: number[][] = [], weights: number[][] = [];
  for (const row of ids) {
    const T = row.length;
    row.forEach((id, t) => need(Number.isInteger(id) && id >= 0 && id < vocabSize, `ids must hold real token ids in [0, ${vocabSize}), got ${id} at position ${t}`));
    const n = Math.max(1, Math.round(p * T));
    // A partial Fisher–Yates shuffle: the first n entries of order are n distinct positions.
    const order = Array.from({ length: T }, (_, t) => t);
    for (let i = 0; i < n; i++) {
      const j = i + rng.int(T - i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const inp = row.slice();
    const w = new Array<number>(T).fill(0);
    for (const t of order.slice(0, n)) {
      w[t] = 1;
      const u = rng.next();
      // Why not always [MASK]: [MASK] never occurs in real text, so a model that only learned to
      // repair [MASK] would have nothing to do on clean input. Sometimes a wrong token, sometimes
      // the right one: the model must keep a good guess at EVERY position, not only at the masks.
      if (u < pMask) inp[t] = maskId;
      else if (u < pMask + pRandom) inp[t] = rng.int(vocabSize);
    }
    inputs.push(inp);
    targets.push(row.slice());
    weights.push(w);
  }
  return { inputs, targets, weights };
}

// h₀ = E[ids] + P;  h_l = Block_l(h_{l−1}) with NO causal mask (every position sees every other);  logits = LN_f(h_L)·Eᵀ
// ids [B,T] int32 -> logits [B,T,V] (the same parameters and names as decoderForward)
export function bidirectionalForward(params: Params, config: DecoderConfig, ids: tf.Tensor2D, options: { adapter?: Adapter } = {}): tf.Tensor3D {
  checkConfig(config);
  need(ids.rank === 2 && ids.dtype === "int32", `ids must be an int32 [batch, seq] tensor, got ${ids.dtype} shape [${ids.shape.join(",")}]`);
  const [B, T] = ids.shape;
  need(T >= 1 && T <= config.contextLength, `ids must hold 1..${config.contextLength} positions (contextLength), got shape [${B},${T}]`);
  const project = options.adapter && options.adapter.project ? options.adapter.project.bind(options.adapter) : undefined;
  const pos = positionalEncoding(config.positional, params["wpe"], 0, T, config.dModel, config.contextLength);
  let h = embed(params["wte"], ids).add(pos) as tf.Tensor3D;
  for (let l = 0; l < config.nLayers; l++) h = transformerBlock(params, `h${l}`, h, config.nHeads, { causal: false, project }).h;
  h = layerNorm(h, params["lnf.g"], params["lnf.b"]);
  return tf.matMul(h.reshape([B * T, config.dModel]), params["wte"], false, true).reshape([B, T, config.vocabSize]) as tf.Tensor3D;
}

// L = −(1/Σw) Σ_{b,t} w[b,t] · log p(targets[b,t] | inputs[b,:])   (cross-entropy over the chosen positions only, nats)
// inputs, targets [B,T] int32, weights [B,T] float32 (0/1) -> scalar
export function mlmLoss(params: Params, config: DecoderConfig, inputs: tf.Tensor2D, targets: tf.Tensor2D, weights: tf.Tensor2D): tf.Scalar {
  need(inputs.rank === 2, `inputs must be [batch, seq], got shape [${inputs.shape.join(",")}]`);
  const [B, T] = inputs.shape;
  need(targets.rank === 2 && targets.shape[0] === B && targets.shape[1] === T, `targets must be [${B}, ${T}] like inputs, got shape [${targets.shape.join(",")}]`);
  need(weights.rank === 2 && weights.shape[0] === B && weights.shape[1] === T, `weights must be [${B}, ${T}] like inputs, got shape [${weights.shape.join(",")}]`);
  const V = config.vocabSize - 1; // score the real tokens only: [MASK] (the last id) is never an answer
  const logits = bidirectionalForward(params, config, inputs).slice([0, 0, 0], [B, T, V]);
  return crossEntropy(logits.reshape([B * T, V]), targets.reshape([B * T]) as tf.Tensor1D, weights.reshape([B * T]) as tf.Tensor1D);
}

// FNV-1a over the ids: a batch's own fingerprint.
function hashIds(rows: number[][]): number {
  let h = 0x811c9dc5;
  for (const r of rows) for (const id of r) h = Math.imul(h ^ id, 0x01000193) >>> 0;
  return h;
}

// loss(params, batch) = mlmLoss on maskTokens(batch[:, :T]) with a mask drawn from Rng(seed ⊕ hash(batch))
// -> a loss for lib/train.ts's train(): batch [B, T+1] (its usual windows; the last column is unused)
// The mask is a fixed function of the text and the seed, so a fixed held-out batch is always masked
// the same way (its loss moves only because the model does), while training batches, all different,
// each get fresh masks (RoBERTa's "dynamic masking", Liu et al. 2019).
export function maskedLmObjective(config: DecoderConfig, options: MaskOptions & { seed?: number }): (params: Params, batch: tf.Tensor2D) => tf.Scalar {
  checkConfig(config);
  need(options.maskId < config.vocabSize, `options.maskId ${options.maskId} must be a row of the model's token table (vocabSize ${config.vocabSize}); give the masked model vocabSize = text vocabulary + 1`);
  const seed = options.seed ?? 42;
  return (params, batch) => {
    need(batch.rank === 2 && batch.shape[1] >= 2, `batch must be [batch, seq+1], got shape [${batch.shape.join(",")}]`);
    const [B, T1] = batch.shape;
    const rows = (batch.arraySync() as number[][]).map((r) => r.slice(0, T1 - 1));
    const m = maskTokens(rows, new Rng((seed ^ hashIds(rows)) >>> 0), options);
    return tf.tidy(() => mlmLoss(params, config,
      tf.tensor2d(m.inputs, [B, T1 - 1], "int32"), tf.tensor2d(m.targets, [B, T1 - 1], "int32"), tf.tensor2d(m.weights, [B, T1 - 1])));
  };
}

export interface BlankPrediction {
  predicted: number[]; // argmax id at each blank
  logProb: number[]; // log p(true id) at each blank (nats)
}

// logp [B, V] (the distribution at each row's blank) -> argmax and log p(true id) per row
function pick(logp: number[][], truth: number[]): BlankPrediction {
  const predicted: number[] = [], logProb: number[] = [];
  logp.forEach((row, b) => {
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    predicted.push(best);
    logProb.push(row[truth[b]]);
  });
  return { predicted, logProb };
}

// logits [B,T,V'] -> log-softmax over the first V tokens of row b at position at[b]: [B, V] (plain numbers)
function logProbsAt(logits: tf.Tensor3D, at: number[], V: number): number[][] {
  const [B, T, Vall] = logits.shape;
  const rows = tf.gather(logits.reshape([B * T, Vall]), tf.tensor1d(at.map((t, b) => b * T + t), "int32"));
  return tf.logSoftmax(rows.slice([0, 0], [B, V])).arraySync() as number[][];
}

function checkBlanks(rows: number[][], positions: number[], config: DecoderConfig, from: number): void {
  need(Array.isArray(rows) && rows.length >= 1 && rows.every((r) => r.length === rows[0].length),
    `rows must be equal-length rows of token ids, got ${Array.isArray(rows) ? rows.map((r) => r.length).join(",") : typeof rows}`);
  const T = rows[0].length;
  need(T <= config.contextLength, `rows must fit the context (${config.contextLength}), got length ${T}`);
  need(Array.isArray(positions) && positions.length === rows.length, `positions must give one blank per row (${rows.length}), got ${positions?.length}`);
  positions.forEach((t, b) => need(Number.isInteger(t) && t >= from && t < T, `positions[${b}] must be an integer in [${from}, ${T}), got ${t}`));
}

// fill the blank at rows[b][t_b] from BOTH sides: input = row with [MASK] at t_b, read softmax(logits[b, t_b])
// rows [B][T], positions [B] -> argmax and log p(true) over the real tokens 0 … realVocab−1
export function fillMasked(params: Params, config: DecoderConfig, rows: number[][], positions: number[], maskId: number): BlankPrediction {
  checkBlanks(rows, positions, config, 0);
  need(Number.isInteger(maskId) && maskId < config.vocabSize, `maskId must be a row of the token table (< ${config.vocabSize}), got ${maskId}`);
  const inputs = rows.map((r, b) => r.map((id, t) => (t === positions[b] ? maskId : id)));
  // Score over the real tokens only: the mask symbol is never the answer.
  const logp = tf.tidy(() => logProbsAt(bidirectionalForward(params, config, tf.tensor2d(inputs, undefined, "int32")), positions, maskId));
  return pick(logp, rows.map((r, b) => r[positions[b]]));
}

// fill the blank at rows[b][t_b] from the LEFT only: p(x_t | x_<t) = softmax(causal logits[b, t_b − 1])
// rows [B][T], positions [B] (≥ 1) -> argmax and log p(true)
export function fillCausal(params: Params, config: DecoderConfig, rows: number[][], positions: number[]): BlankPrediction {
  checkBlanks(rows, positions, config, 1);
  // The causal logits at t−1 are the prediction for t (and saw nothing at or after t).
  const logp = tf.tidy(() => logProbsAt(decoderForward(params, config, tf.tensor2d(rows, undefined, "int32")).logits, positions.map((t) => t - 1), config.vocabSize));
  return pick(logp, rows.map((r, b) => r[positions[b]]));
}

export interface MaskedRecipe {
  corpus: CorpusName;
  model: Omit<DecoderConfig, "vocabSize">;
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  maskProb: number;
  seed: number;
}

const { vocabSize: _unused, ...tinyShape } = TINY;

/**
 * The book's masked LM: TINY's shape (the overview's causal model, OVERVIEW_EN, has the same), read
 * in 16-character windows with 40% of the characters chosen. Why not BERT's 15% of 64: a masked
 * model learns only at the chosen positions, and first has to learn WHERE its neighbours are before
 * it can use them; at 15% of 64 it was still at the one-character-frequency level (≈ 3.3 nats) after
 * 400 steps, at 40% of 16 it passes the causal model at filling blanks within 600. Wettig et al.
 * (2023) found 40% better than 15% for BERT-large as well. A lower learning rate than the causal
 * model's 1e-2: at 1e-2 the masked model stalled at that level.
 */
export const MASKED_EN: MaskedRecipe = { corpus: "shakespeare", model: tinyShape, steps: 600, lr: 3e-3, batchSize: 32, seqLen: 16, maskProb: 0.4, seed: SEED };

export interface MaskedModel {
  params: Params;
  config: DecoderConfig; // vocabSize = the corpus's characters + 1
  maskId: number; // = the corpus's vocabulary size: the last row of the token table
  history: TrainResult;
  recipe: MaskedRecipe;
}

// θ* = argmin_θ mean over chosen positions of −log P_θ(x_t | corrupted window)  (maskedLmObjective, AdamW)
// recipe -> the trained bidirectional model, its [MASK] id and its loss curves (cached by the recipe)
export async function trainMaskedModel(recipe: MaskedRecipe, log?: (line: string) => void): Promise<MaskedModel> {
  const { tokenizer, train: trainIds, heldOut } = corpusTokens(recipe.corpus);
  const V = tokenizer.vocabSize;
  const config: DecoderConfig = { ...recipe.model, vocabSize: V + 1 };
  need(recipe.seqLen <= config.contextLength, `recipe.seqLen must be ≤ model.contextLength (${config.contextLength}), got ${recipe.seqLen}`);
  const objective = maskedLmObjective(config, { maskId: V, vocabSize: V, maskProb: recipe.maskProb, seed: recipe.seed });
  const run = await cached({ what: "masked-language-model", version: 1, recipe, vocabSize: V }, () => {
    const params = initDecoder(config, recipe.seed);
    const history = train(params, objective, {
      train: batches(trainIds, recipe.batchSize, recipe.seqLen, new Rng(recipe.seed)),
      eval: batches(heldOut, recipe.batchSize, recipe.seqLen, new Rng(recipe.seed + 1)),
    }, { steps: recipe.steps, lr: recipe.lr, batchSize: recipe.batchSize, seqLen: recipe.seqLen, seed: recipe.seed, log: log ?? (() => {}) });
    return { params, history };
  });
  return { params: run.params, config, maskId: V, history: run.history, recipe };
}
