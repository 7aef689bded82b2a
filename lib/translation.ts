// The chapter's translation task, done both ways: English -> French by an encoder-decoder (the
// source goes into the encoder, the target comes out of the decoder) and by a decoder-only model
// that reads one string "Translate English to French: <en> = <fr>" left to right (T5's task prefix,
// Raffel et al. 2020, written as a language-modelling prompt). Both models share one character
// vocabulary, are trained by lib/train.ts on the same pairs, and are scored on the same held-out
// sentences by exact match and chrF (Popović 2015).
//
// Tokens are words (and punctuation marks), not characters: our grammar's whole lexicon is under 300
// words, so a sentence is ~7 tokens instead of ~27 characters, and the models learn to translate in
// seconds rather than minutes (real translators use subword pieces, e.g. T5's 32k SentencePiece
// vocabulary, for the same reason). The character tokenizer is kept as an option for comparison.
//
// Shapes: B batch, S source length, T target length, W packed row width, V vocabulary.
import { tf, Rng, SEED } from "./tf";
import { Pair, loadPairs } from "./data";
import { CharTokenizer } from "./tokenizer";
import { DecoderConfig, KVCache, Params, countParams, decoderForward, disposeCache, emptyCache, initDecoder } from "./decoder";
import {
  EncoderDecoderConfig, countEncoderDecoderParams, greedyTranslate, initEncoderDecoder, seq2seqLoss,
} from "./encoderDecoder";
import { crossEntropy } from "./layers";
import { TrainResult, cached, train } from "./train";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** The chapter's instruction, T5's prefix for this task. */
export const PREFIX = "Translate English to French: ";
/** Between the English and the French in the decoder-only string; never inside a sentence. */
export const SEPARATOR = " = ";
/** Special tokens: padding, start of a target, end of a target (ids 0, 1, 2). */
export const SPECIALS = ["<pad>", "<bos>", "<eos>"];
export const PAD = 0;
export const BOS = 1;
export const EOS = 2;

// ───────────────────────────── words as tokens ─────────────────────────────

/** What a translation model needs from a tokenizer (CharTokenizer of lib/tokenizer.ts has it too). */
export interface Vocabulary {
  readonly vocab: string[];
  readonly vocabSize: number;
  encode(s: string): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecials?: boolean }): string;
}

/** Words and punctuation marks as tokens, the specials first. */
export class WordTokenizer implements Vocabulary {
  readonly vocab: string[];
  readonly vocabSize: number;
  readonly specials: string[];
  private readonly ids: Map<string, number>;

  // "L'arbre est là." -> ["L'", "arbre", "est", "là", "."]: a run of letters (with its elided
  // apostrophe), or any other single non-space character
  static split(s: string): string[] {
    need(typeof s === "string", `s must be a string, got ${typeof s}.`);
    return s.match(/\p{L}+'?|[^\s\p{L}]/gu) ?? [];
  }

  // vocab = specials ++ sorted distinct words of the texts
  // texts -> vocabSize = specials.length + number of distinct words
  constructor(texts: string[], options: { specials?: string[] } = {}) {
    need(Array.isArray(texts) && texts.every((t) => typeof t === "string"), `texts must be a list of strings, got ${typeof texts}.`);
    this.specials = [...(options.specials ?? [])];
    const words = new Set<string>();
    for (const t of texts) for (const w of WordTokenizer.split(t)) words.add(w);
    this.vocab = [...this.specials, ...[...words].sort()];
    this.vocabSize = this.vocab.length;
    this.ids = new Map(this.vocab.map((t, i) => [t, i]));
  }

  // s -> [id(w) for w in split(s)]
  // string -> number[] (an unknown word throws)
  encode(s: string): number[] {
    return WordTokenizer.split(s).map((w) => {
      const id = this.ids.get(w);
      if (id === undefined || id < this.specials.length)
        throw new Error(`s contains the word ${JSON.stringify(w)}, which is not in the vocabulary; build the tokenizer from texts that have it.`);
      return id;
    });
  }

  // ids -> words joined by spaces, none before punctuation or after an apostrophe (the inverse of split)
  // number[] -> string
  decode(ids: ArrayLike<number>, options: { skipSpecials?: boolean } = {}): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      need(Number.isInteger(id) && id >= 0 && id < this.vocabSize, `ids[${i}] must be an integer in [0, ${this.vocabSize}), got ${id}.`);
      if (options.skipSpecials && id < this.specials.length) continue;
      const w = this.vocab[id];
      if (s.length > 0 && !s.endsWith("'") && /^\p{L}/u.test(w)) s += " ";
      s += w;
    }
    return s;
  }
}

// ───────────────────────────── the task: vocabulary and lengths ─────────────────────────────

export interface TranslationTask {
  /** One vocabulary for English, French and the prompt (T5 too shares one vocabulary). */
  tokenizer: Vocabulary;
  train: Pair[];
  heldOut: Pair[];
  /** The longest English sentence (tokens): the encoder's padded length S. */
  srcLen: number;
  /** The longest French sentence + 1: targets are bos + y (input) and y + eos (output). */
  tgtLen: number;
  /** The longest "PREFIX en SEPARATOR fr" + eos: the decoder-only row width W. */
  lmLen: number;
}

// vocab = SPECIALS ++ sorted words (or characters) of (PREFIX, SEPARATOR, every en and fr)
// pairs, unit -> the task (tokenizer, the two splits, padded lengths in tokens)
export function translationTask(pairs: Pair[] = loadPairs(), options: { unit?: "word" | "char" } = {}): TranslationTask {
  need(Array.isArray(pairs) && pairs.length > 0, `pairs must be a non-empty list of {en, fr, split}, got ${Array.isArray(pairs) ? "an empty list" : typeof pairs}.`);
  const unit = options.unit ?? "word";
  need(unit === "word" || unit === "char", `options.unit must be "word" or "char", got ${JSON.stringify(unit)}.`);
  for (const p of pairs)
    need(!p.en.includes("=") && !p.fr.includes("="), `pairs must not contain "=" (the decoder-only separator), got ${JSON.stringify(p.en)} / ${JSON.stringify(p.fr)}.`);
  const texts = [PREFIX, SEPARATOR, ...pairs.map((p) => p.en), ...pairs.map((p) => p.fr)];
  const tokenizer: Vocabulary = unit === "word" ? new WordTokenizer(texts, { specials: SPECIALS }) : new CharTokenizer(texts, { specials: SPECIALS });
  const train = pairs.filter((p) => p.split === "train");
  const heldOut = pairs.filter((p) => p.split === "heldout");
  need(train.length > 0, "pairs must hold some with split \"train\", got none.");
  const longest = (f: (p: Pair) => number) => pairs.reduce((m, p) => Math.max(m, f(p)), 0);
  return {
    tokenizer, train, heldOut,
    srcLen: longest((p) => tokenizer.encode(p.en).length),
    tgtLen: longest((p) => tokenizer.encode(p.fr).length) + 1,
    lmLen: longest((p) => tokenizer.encode(lmPrompt(p.en) + p.fr).length) + 1,
  };
}

/** What the decoder-only model reads before it writes the French. */
export function lmPrompt(en: string): string {
  return PREFIX + en + SEPARATOR;
}

// ───────────────────────────── packed rows for lib/train.ts ─────────────────────────────
//
// lib/train.ts trains on batches of one int32 tensor [B, W]. A pair for the encoder-decoder is two
// sequences, so its row packs them side by side: the source padded to S, then the target padded
// to T + 1. The loss cuts the row back apart.

// row = [x_1 … x_m, pad …] (S) ++ [bos, y_1 … y_n, eos, pad …] (T + 1)
// pairs -> rows of width W = S + T + 1
export function seq2seqRows(task: TranslationTask, pairs: Pair[]): number[][] {
  const { tokenizer: tok, srcLen: S, tgtLen: T } = task;
  return pairs.map((p) => {
    const src = tok.encode(p.en), tgt = [BOS, ...tok.encode(p.fr), EOS];
    need(src.length <= S && tgt.length <= T + 1, `pair ${JSON.stringify(p.en)} is longer than the task's lengths S = ${S}, T = ${T}.`);
    return [...src, ...new Array(S - src.length).fill(PAD), ...tgt, ...new Array(T + 1 - tgt.length).fill(PAD)];
  });
}

// row = ids(PREFIX en SEPARATOR fr) ++ [eos, pad …]   (width W = task.lmLen)
// pairs -> rows of width W
export function prefixLmRows(task: TranslationTask, pairs: Pair[]): number[][] {
  const W = task.lmLen;
  return pairs.map((p) => {
    const ids = [...task.tokenizer.encode(lmPrompt(p.en) + p.fr), EOS];
    need(ids.length <= W, `pair ${JSON.stringify(p.en)} is longer than the task's row width W = ${W}.`);
    return [...ids, ...new Array(W - ids.length).fill(PAD)];
  });
}

// batch_b = rows[i_b], i_b ~ Uniform{0 … n−1} drawn from rng
// rows [n][W] -> a function returning a new [B, W] int32 batch per call
export function rowBatches(rows: number[][], batchSize: number, rng: Rng): () => tf.Tensor2D {
  need(Array.isArray(rows) && rows.length > 0, `rows must be a non-empty list of token rows, got ${Array.isArray(rows) ? "an empty list" : typeof rows}.`);
  need(Number.isInteger(batchSize) && batchSize >= 1, `batchSize must be a positive integer, got ${batchSize}.`);
  const W = rows[0].length;
  need(rows.every((r) => r.length === W), `rows must all have the same width ${W}.`);
  return () => {
    const buf = new Int32Array(batchSize * W);
    for (let b = 0; b < batchSize; b++) buf.set(rows[rng.int(rows.length)], b * W);
    return tf.tensor2d(buf, [batchSize, W], "int32");
  };
}

// ───────────────────────────── the two losses ─────────────────────────────

// the number of leading entries of each row that are not padding (padding only ever trails)
function lengths(rows: number[][]): number[] {
  return rows.map((r) => {
    let n = r.length;
    while (n > 0 && r[n - 1] === PAD) n--;
    return n;
  });
}

// L = −Σ_{b, t<len_b} log p(y_{b,t} | x_b, y_{b,<t}) / Σ_b len_b   (lib/encoderDecoder.ts seq2seqLoss)
// batch [B, S + T + 1] packed by seq2seqRows -> scalar (nats per target token, eos included)
export function packedSeq2seqLoss(params: Params, config: EncoderDecoderConfig, batch: tf.Tensor2D, srcLen: number): tf.Scalar {
  const [B, W] = batch.shape;
  const T = W - srcLen - 1;
  need(T >= 1, `batch must be [batch, srcLen + tgtLen + 1] rows from seq2seqRows (srcLen ${srcLen}), got shape [${batch.shape.join(",")}].`);
  const rows = batch.arraySync();
  const src = batch.slice([0, 0], [B, srcLen]);
  const tgtIn = batch.slice([0, srcLen], [B, T]);
  const tgtOut = batch.slice([0, srcLen + 1], [B, T]);
  const srcLengths = lengths(rows.map((r) => r.slice(0, srcLen)));
  // tgtIn = bos y, tgtOut = y eos: the real targets are len(bos y eos) − 1
  const tgtLengths = lengths(rows.map((r) => r.slice(srcLen))).map((n) => n - 1);
  return seq2seqLoss(params, config, src, tgtIn, tgtOut, { srcLengths, tgtLengths });
}

// w[b, t] = 1 if target ids[b, t+1] is scored: not padding, and (answerOnly) past the separator
// rows [B][W] -> weights [B·(W−1)] as plain numbers
export function prefixLmWeights(task: TranslationTask, rows: number[][], answerOnly: boolean): number[] {
  const sep = task.tokenizer.encode(SEPARATOR);
  const out: number[] = [];
  for (const r of rows) {
    const len = lengths([r])[0];
    // the answer starts right after the first SEPARATOR: its ids at j … j+|sep|−1
    let start = 1;
    if (answerOnly) {
      start = -1;
      for (let j = 0; j + sep.length <= len && start < 0; j++) if (sep.every((s, k) => r[j + k] === s)) start = j + sep.length;
      need(start > 0, `rows must hold the separator ${JSON.stringify(SEPARATOR)} (rows from prefixLmRows), got one without it.`);
    }
    for (let t = 1; t < r.length; t++) out.push(t >= start && t < len ? 1 : 0);
  }
  return out;
}

// L = −Σ_{b,t} w[b,t]·log p(ids[b,t+1] | ids[b,≤t]) / Σ w   (w from prefixLmWeights)
// batch [B, W] from prefixLmRows -> scalar (nats per scored token)
export function prefixLmLoss(params: Params, config: DecoderConfig, task: TranslationTask, batch: tf.Tensor2D, answerOnly: boolean): tf.Scalar {
  need(batch.rank === 2 && batch.shape[1] >= 2, `batch must be [batch, W] rows from prefixLmRows, got shape [${batch.shape.join(",")}].`);
  const [B, W] = batch.shape;
  const weights = tf.tensor1d(prefixLmWeights(task, batch.arraySync(), answerOnly));
  const { logits } = decoderForward(params, config, batch.slice([0, 0], [B, W - 1]));
  const targets = batch.slice([0, 1], [B, W - 1]).reshape([B * (W - 1)]) as tf.Tensor1D;
  return crossEntropy(logits.reshape([B * (W - 1), config.vocabSize]), targets, weights);
}

// ───────────────────────────── translating ─────────────────────────────

// y = greedy(encoder-decoder, x): the encoder reads each padded sentence once, the decoder writes until eos
// English sentences -> French sentences (one batch of all of them)
export function translateEncoderDecoder(params: Params, config: EncoderDecoderConfig, task: TranslationTask, sentences: string[]): string[] {
  need(Array.isArray(sentences) && sentences.length > 0, `sentences must be a non-empty list of English strings, got ${Array.isArray(sentences) ? "an empty list" : typeof sentences}.`);
  const ids = sentences.map((s) => task.tokenizer.encode(s));
  const S = Math.max(...ids.map((r) => r.length));
  need(S <= config.contextLength, `sentences must be at most ${config.contextLength} characters (contextLength), got one of ${S}.`);
  const src = tf.tensor2d(ids.map((r) => [...r, ...new Array(S - r.length).fill(PAD)]), [ids.length, S], "int32");
  const out = greedyTranslate(params, config, src, { bos: BOS, eos: EOS, maxLen: Math.min(task.tgtLen + 8, config.contextLength), srcLengths: ids.map((r) => r.length) });
  src.dispose();
  return out.map((r) => task.tokenizer.decode(r));
}

// y_t = argmax_v p(v | PREFIX x SEPARATOR y_<t) until eos: every row advances one position per step;
// while a row is still inside its prompt, its next prompt character is fed instead of the argmax
// (so prompts of different lengths run in one batch with no padding and one KV cache)
// English sentences -> French sentences
export function translateDecoderOnly(params: Params, config: DecoderConfig, task: TranslationTask, sentences: string[]): string[] {
  need(Array.isArray(sentences) && sentences.length > 0, `sentences must be a non-empty list of English strings, got ${Array.isArray(sentences) ? "an empty list" : typeof sentences}.`);
  const prompts = sentences.map((s) => task.tokenizer.encode(lmPrompt(s)));
  const B = prompts.length;
  const first = Math.min(...prompts.map((p) => p.length)); // every row is still in its prompt up to here
  const maxNew = task.tgtLen + 8;
  const last = Math.min(config.contextLength, Math.max(...prompts.map((p) => p.length)) + maxNew);
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  let cache: KVCache = emptyCache(config, B);
  let input = prompts.map((p) => p.slice(0, first));
  for (let pos = first; pos <= last && !done.every(Boolean); ) {
    const prev = cache;
    const step = tf.tidy(() => {
      const f = decoderForward(params, config, tf.tensor2d(input, [B, input[0].length], "int32"), { cache: prev });
      const T = input[0].length;
      const next = f.logits.slice([0, T - 1, 0], [B, 1, config.vocabSize]).reshape([B, config.vocabSize]).argMax(-1);
      return { next, k: f.cache!.k, v: f.cache!.v };
    });
    const next = Array.from(step.next.dataSync());
    step.next.dispose();
    cache = { k: step.k as tf.Tensor4D[], v: step.v as tf.Tensor4D[], length: pos };
    disposeCache(prev);
    if (pos === last) break;
    // position pos is next: a prompt character for rows still reading, else the argmax just made
    input = prompts.map((p, b) => {
      if (pos < p.length) return [p[pos]];
      if (!done[b]) {
        if (next[b] === EOS || out[b].length >= maxNew) done[b] = true;
        else out[b].push(next[b]);
      }
      return [next[b]];
    });
    pos++;
  }
  disposeCache(cache);
  return out.map((r) => task.tokenizer.decode(r));
}

// ───────────────────────────── scores ─────────────────────────────

// EM = (1/n) Σ_i [hyp_i = ref_i]   (the whole sentence, character for character)
// hyps, refs: n strings each -> a fraction in [0, 1]
export function exactMatch(hyps: string[], refs: string[]): number {
  checkHypsRefs(hyps, refs);
  return hyps.filter((h, i) => h === refs[i]).length / hyps.length;
}

function checkHypsRefs(hyps: string[], refs: string[]): void {
  need(Array.isArray(hyps) && Array.isArray(refs) && hyps.length === refs.length && hyps.length > 0,
    `hyps and refs must be non-empty lists of the same length, got ${Array.isArray(hyps) ? hyps.length : typeof hyps} and ${Array.isArray(refs) ? refs.length : typeof refs}.`);
}

// every character n-gram of s with spaces removed, counted   (chrF ignores whitespace)
function charNgrams(s: string, n: number): Map<string, number> {
  const chars = [...s.replace(/\s+/g, "")];
  const m = new Map<string, number>();
  for (let i = 0; i + n <= chars.length; i++) {
    const g = chars.slice(i, i + n).join("");
    m.set(g, (m.get(g) ?? 0) + 1);
  }
  return m;
}

// chrF_β = 100·(1+β²)·chrP·chrR / (β²·chrP + chrR), with chrP = mean_n P_n, chrR = mean_n R_n over the
// orders n = 1 … N that occur in both, P_n = matches_n / hyp n-grams, R_n = matches_n / ref n-grams,
// counts summed over the whole corpus (Popović 2015; sacreBLEU 2's corpus chrF, N = 6, β = 2)
// hyps, refs: n strings each -> a score in [0, 100]
export function chrF(hyps: string[], refs: string[], order = 6, beta = 2): number {
  checkHypsRefs(hyps, refs);
  need(Number.isInteger(order) && order >= 1, `order must be a positive integer, got ${order}.`);
  need(beta > 0, `beta must be positive, got ${beta}.`);
  let sumP = 0, sumR = 0, effective = 0;
  for (let n = 1; n <= order; n++) {
    let hypCount = 0, refCount = 0, match = 0;
    hyps.forEach((h, i) => {
      const hg = charNgrams(h, n), rg = charNgrams(refs[i], n);
      for (const c of hg.values()) hypCount += c;
      for (const [g, c] of rg) {
        refCount += c;
        match += Math.min(c, hg.get(g) ?? 0); // clipped: an n-gram matches at most as often as the reference has it
      }
    });
    if (hypCount > 0 && refCount > 0) {
      sumP += match / hypCount;
      sumR += match / refCount;
      effective++;
    }
  }
  if (effective === 0) return 0;
  const P = sumP / effective, R = sumR / effective, b2 = beta * beta;
  return P + R > 0 ? (100 * (1 + b2) * P * R) / (b2 * P + R) : 0;
}

// ───────────────────────────── compute per pair ─────────────────────────────

// C = S·(6·N_enc + 6·L_enc·S·D) + T·(6·N_dec + 6·L_dec·(T + S)·D)   (training FLOPs for one pair:
// Kaplan et al. 2020's 6N per token through the stack it passes, plus its attention scores;
// the decoder's queries attend to the T target keys and the S source keys)
// config, source length S, target length T -> FLOPs
export function encoderDecoderFlopsPerPair(config: EncoderDecoderConfig, srcLen: number, tgtLen: number): number {
  const { encoder, decoder } = countEncoderDecoderParams(config);
  const D = config.dModel;
  return srcLen * (6 * encoder + 6 * config.nEncoderLayers * srcLen * D) + tgtLen * (6 * decoder + 6 * config.nDecoderLayers * (tgtLen + srcLen) * D);
}

// C = n·(6·N + 6·L·n·D), n = the whole row (prompt + English + separator + French + eos):
// every token, source included, goes through every layer
// config, row length n -> FLOPs
export function decoderOnlyFlopsPerPair(config: DecoderConfig, rowLen: number): number {
  const N = countParams(config).nonEmbedding;
  return rowLen * (6 * N + 6 * config.nLayers * rowLen * config.dModel);
}

// ───────────────────────────── the book's two translators ─────────────────────────────

export interface Seq2SeqRecipe {
  model: Omit<EncoderDecoderConfig, "vocabSize">;
  steps: number;
  lr: number;
  batchSize: number;
  seed: number;
}

export interface PrefixLmRecipe {
  model: Omit<DecoderConfig, "vocabSize">;
  /** Loss on the French (and eos) only — the prompt is given, not predicted — or on every token. */
  answerOnly: boolean;
  steps: number;
  lr: number;
  batchSize: number;
  seed: number;
}

export interface Translator<C> { params: Params; config: C; history: TrainResult }

/** The encoder-decoder of notebook 02: 1 encoder + 1 decoder layer, d = 64. */
export const SEQ2SEQ_TRANSLATOR: Seq2SeqRecipe = {
  model: { contextLength: 16, dModel: 64, nEncoderLayers: 1, nDecoderLayers: 1, nHeads: 4, dFF: 256, positional: "learned" },
  steps: 300, lr: 5e-3, batchSize: 64, seed: SEED,
};

/**
 * The decoder-only at the same parameter count: 2 layers with dFF 320. Two decoder-only layers hold
 * 2·(4D² + 2·D·F) ≈ 116.6k parameters at F = 320; one encoder layer (4D² + 2·D·256) plus one decoder
 * layer with cross-attention (8D² + 2·D·256) hold ≈ 117.0k.
 */
export const PREFIX_TRANSLATOR: PrefixLmRecipe = {
  model: { contextLength: 32, dModel: 64, nLayers: 2, nHeads: 4, dFF: 320, positional: "learned" },
  answerOnly: true, steps: 300, lr: 5e-3, batchSize: 64, seed: SEED,
};

// θ* = argmin_θ L_seq2seq on the task's training pairs (AdamW, lib/train.ts), cached by the recipe
// task, recipe -> the trained encoder-decoder and its loss curves (held-out loss on held-out pairs)
export async function trainEncoderDecoderTranslator(task: TranslationTask, recipe: Seq2SeqRecipe,
  log?: (line: string) => void): Promise<Translator<EncoderDecoderConfig>> {
  const config: EncoderDecoderConfig = { ...recipe.model, vocabSize: task.tokenizer.vocabSize };
  need(task.srcLen <= config.contextLength && task.tgtLen <= config.contextLength,
    `recipe.model.contextLength must hold the longest source ${task.srcLen} and target ${task.tgtLen}, got ${config.contextLength}.`);
  const run = await cached({ what: "translator-seq2seq", version: 1, recipe, vocab: task.tokenizer.vocab, pairs: task.train.length }, () => {
    const params = initEncoderDecoder(config, recipe.seed);
    const W = task.srcLen + task.tgtLen + 1;
    const history = train(params, (p, batch) => packedSeq2seqLoss(p, config, batch, task.srcLen), {
      train: rowBatches(seq2seqRows(task, task.train), recipe.batchSize, new Rng(recipe.seed)),
      eval: task.heldOut.length ? rowBatches(seq2seqRows(task, task.heldOut), recipe.batchSize, new Rng(recipe.seed + 1)) : undefined,
    }, { steps: recipe.steps, lr: recipe.lr, batchSize: recipe.batchSize, seqLen: W - 1, seed: recipe.seed, log });
    return { params, history };
  });
  return { params: run.params, config, history: run.history };
}

// θ* = argmin_θ L_prefixLM on "PREFIX en SEPARATOR fr eos" rows of the training pairs, cached by the recipe
// task, recipe -> the trained decoder-only and its loss curves
export async function trainDecoderOnlyTranslator(task: TranslationTask, recipe: PrefixLmRecipe,
  log?: (line: string) => void): Promise<Translator<DecoderConfig>> {
  const config: DecoderConfig = { ...recipe.model, vocabSize: task.tokenizer.vocabSize };
  need(task.lmLen <= config.contextLength, `recipe.model.contextLength must hold the longest row ${task.lmLen}, got ${config.contextLength}.`);
  const run = await cached({ what: "translator-prefix-lm", version: 1, recipe, vocab: task.tokenizer.vocab, pairs: task.train.length }, () => {
    const params = initDecoder(config, recipe.seed);
    const history = train(params, (p, batch) => prefixLmLoss(p, config, task, batch, recipe.answerOnly), {
      train: rowBatches(prefixLmRows(task, task.train), recipe.batchSize, new Rng(recipe.seed)),
      eval: task.heldOut.length ? rowBatches(prefixLmRows(task, task.heldOut), recipe.batchSize, new Rng(recipe.seed + 1)) : undefined,
    }, { steps: recipe.steps, lr: recipe.lr, batchSize: recipe.batchSize, seqLen: task.lmLen - 1, seed: recipe.seed, log });
    return { params, history };
  });
  return { params: run.params, config, history: run.history };
}
