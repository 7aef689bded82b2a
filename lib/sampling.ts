// Sampling strategies: how a language model turns its next-token scores into the next token.
//
// At every step the model gives one logit per vocabulary entry, x_w, and P(w) = softmax(x)_w.
// A strategy either picks a token deterministically (greedy, beam search) or reshapes P and draws
// from it (temperature, top-k, top-p, min-p, repetition penalty, then one random draw).
//
// Logits are [batch, vocab]: a tf.Tensor2D or a plain number[][]; every function returns the kind it
// was given. The filters work on the host in plain JavaScript, row by row, with the precision of
// their input: a tensor holds float32, so its arithmetic is rounded to float32 after every operation
// (Math.fround), as PyTorch computes on float32 logits; a number[][] is float64. That is why one
// boundary case (top-p below) keeps 3 tokens on a tensor and 4 on an array. The random draw itself
// is always float64 on the host, with an exp of our own (below), so given the same logits a seed
// gives the same tokens on every tfjs backend, in Node and in the browser, bit for bit.
//
// Semantics follow Hugging Face transformers' logits warpers (TemperatureLogitsWarper,
// TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor) and its
// beam search scorer; each function says where the two differ.
import { tf, Rng, SEED } from "./tf";
import { Adapter, DecoderConfig, KVCache, Params, decoderForward, emptyCache } from "./decoder";

/** Next-token scores, one row per sequence: [batch, vocab]. */
export type Logits = tf.Tensor2D | number[][];

// ---------------------------------------------------------------------------------------------
// Reading and writing logits (the edge of the library: check first, then compute)

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

type Round = (x: number) => number;
const exact: Round = (x) => x;

interface Rows { rows: number[][]; f32: boolean }

// logits -> plain rows (copies) and the precision to compute in
function readLogits(logits: Logits, name = "logits"): Rows {
  let rows: number[][];
  let f32: boolean;
  if (logits instanceof tf.Tensor) {
    need(logits.rank === 2, `${name} must be [batch, vocab], got a tensor of shape [${logits.shape.join(",")}]`);
    need(logits.dtype === "float32", `${name} must be a float32 tensor, got dtype ${logits.dtype}`);
    rows = (logits as tf.Tensor2D).arraySync();
    f32 = true;
  } else {
    need(Array.isArray(logits) && logits.length > 0 && logits.every((r) => Array.isArray(r)),
      `${name} must be [batch, vocab] (a tf.Tensor2D or number[][]), got ${describe(logits)}`);
    rows = logits.map((r) => r.slice());
    f32 = false;
  }
  need(rows.length >= 1 && rows[0].length >= 1, `${name} must be [batch, vocab] with batch, vocab ≥ 1, got [${rows.length},${rows.length ? rows[0].length : 0}]`);
  const V = rows[0].length;
  for (let b = 0; b < rows.length; b++) {
    need(rows[b].length === V, `${name} rows must all have vocab ${V} entries, row ${b} has ${rows[b].length}`);
    for (let w = 0; w < V; w++) {
      const x = rows[b][w];
      need(typeof x === "number" && !Number.isNaN(x), `${name} must not contain NaN, got ${x} at [${b},${w}]`);
      need(x !== Infinity, `${name} must be finite or −Infinity (a filtered token), got +Infinity at [${b},${w}]`);
    }
  }
  return { rows, f32 };
}

function describe(x: unknown): string {
  if (Array.isArray(x)) return x.length === 0 ? "an empty array" : `an array of ${typeof x[0]} (length ${x.length})`;
  return x === null ? "null" : typeof x;
}

// rows -> the kind the caller gave: a new float32 tensor, or the rows themselves
function same<L extends Logits>(like: L, rows: number[][]): L {
  if (like instanceof tf.Tensor) return tf.tensor2d(rows, [rows.length, rows[0].length], "float32") as L;
  return rows as L;
}

function checkRowHasMass(row: number[], b: number): void {
  need(row.some((x) => x > -Infinity), `logits row ${b} is all −Infinity: every token was filtered out`);
}

// ---------------------------------------------------------------------------------------------
// exp, the same in every JavaScript engine

// Math.exp is not required to be correctly rounded, and engines differ: V8 in Node 20 and in
// Chromium 156 disagree in the last bit for about 1 input in 10 on [−30, 0] (measured). + − × ÷ are
// exact IEEE 754 everywhere, so an exp built from them alone makes every probability, and so every
// drawn token, bit-identical in Node and in the browser (given the same logits).
const LN2_HI = 0.6931471803691238; // ln 2 split in two (Cody & Waite 1980): k·LN2_HI is exact for |k| < 2^20
const LN2_LO = 1.9082149292705877e-10;
const pow2Bits = new DataView(new ArrayBuffer(8));

function pow2(k: number): number { // 2^k for an integer k in [−1022, 1023], from its bits
  pow2Bits.setUint32(0, (k + 1023) << 20);
  pow2Bits.setUint32(4, 0);
  return pow2Bits.getFloat64(0);
}

// e^x = 2^k · e^r with k = round(x / ln 2), |r| ≤ ln2/2, e^r by Horner's form of its Taylor series to r^14/14!
// (relative error a few 1e-16, like Math.exp; x may be −Infinity)
export function exp(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x > 709.78) return Infinity;
  if (x < -745.2) return 0;
  const k = Math.round(x / Math.LN2);
  const r = (x - k * LN2_HI) - k * LN2_LO;
  let p = 1;
  for (let n = 14; n >= 1; n--) p = 1 + (p * r) / n;
  // 2^k in two steps when it is below the smallest normal float (results down to 5e-324)
  return k < -1022 ? p * pow2(k + 1022) * pow2(-1022) : k > 1023 ? p * pow2(k - 1) * 2 : p * pow2(k);
}

// ---------------------------------------------------------------------------------------------
// Softmax and greedy

// p_i = exp(x_i − max x) / Σ_j exp(x_j − max x), summed in the order of `order` (default: index order)
function softmaxRow(row: number[], r: Round, order?: number[]): number[] {
  let m = -Infinity;
  for (const x of row) if (x > m) m = x;
  const e = row.map((x) => r(exp(r(x - m))));
  let s = 0;
  if (order) for (const i of order) s = r(s + e[i]);
  else for (const v of e) s = r(s + v);
  return e.map((v) => r(v / s));
}

// P(w) = exp(x_w) / Σ_v exp(x_v)   (row-wise; max subtracted first so exp never overflows)
// logits [B,V] -> probabilities [B,V], same kind
export function softmax<L extends Logits>(logits: L): L {
  const { rows, f32 } = readLogits(logits);
  rows.forEach(checkRowHasMass);
  return same(logits, rows.map((row) => softmaxRow(row, f32 ? Math.fround : exact)));
}

// A comparator that also orders −Infinity (b − a would give NaN for two of them).
function descending(a: number, b: number): number {
  return a > b ? -1 : a < b ? 1 : 0;
}

function argmaxRow(row: number[]): number {
  let best = 0;
  for (let w = 1; w < row.length; w++) if (row[w] > row[best]) best = w; // first maximum wins a tie
  return best;
}

// w_t = argmax_w P(w | w_<t)   (ties: the lowest token id, like torch.argmax)
// logits [B,V] -> B token ids
export function greedy(logits: Logits): number[] {
  const { rows } = readLogits(logits);
  rows.forEach(checkRowHasMass);
  return rows.map(argmaxRow);
}

// ---------------------------------------------------------------------------------------------
// The warpers: each takes logits and returns logits, with removed tokens at −Infinity

function checkTemperature(T: number, name = "T"): void {
  need(typeof T === "number" && T > 0 && Number.isFinite(T),
    `${name} must be a finite number > 0 (T → 0 is greedy decoding: call greedy(logits)), got ${T}`);
}

function temperatureRow(row: number[], T: number, r: Round): number[] {
  const t = r(T); // torch casts the Python scalar to the tensor's dtype first
  return row.map((x) => r(x / t));
}

// P'(w) ∝ P(w)^{1/T}, i.e. x'_w = x_w / T   (T < 1 sharpens, T > 1 flattens, T → 0 is greedy)
// logits [B,V], T > 0 -> logits [B,V], same kind
export function applyTemperature<L extends Logits>(logits: L, T: number): L {
  checkTemperature(T);
  const { rows, f32 } = readLogits(logits);
  return same(logits, rows.map((row) => temperatureRow(row, T, f32 ? Math.fround : exact)));
}

function checkK(k: number): void {
  need(Number.isInteger(k) && k >= 1, `k must be an integer ≥ 1 (how many tokens top-k keeps), got ${k}`);
}

function topKRow(row: number[], k: number): number[] {
  const kk = Math.min(k, row.length); // k larger than the vocabulary keeps everything, as HF clamps it
  const kth = row.slice().sort(descending)[kk - 1];
  // Keep every logit ≥ the k-th largest: tied tokens stay together, so more than k may survive (HF too).
  return row.map((x) => (x >= kth ? x : -Infinity));
}

// V_k = the k tokens with the largest P(w);  P'(w) = P(w) / Σ_{v∈V_k} P(v) for w ∈ V_k, else 0
// logits [B,V], integer k ≥ 1 -> logits [B,V] with the rest at −Infinity (ties with the k-th all kept)
export function filterTopK<L extends Logits>(logits: L, k: number): L {
  checkK(k);
  const { rows } = readLogits(logits);
  return same(logits, rows.map((row) => topKRow(row, k)));
}

function checkP(p: number, minTokensToKeep: number): void {
  need(typeof p === "number" && p > 0 && p <= 1, `p must be in (0, 1] (the probability mass top-p keeps), got ${p}`);
  need(Number.isInteger(minTokensToKeep) && minTokensToKeep >= 1,
    `minTokensToKeep must be an integer ≥ 1, got ${minTokensToKeep}`);
}

// Why this is the chapter's rule: sort ascending and let C_j be the mass of the j least likely
// tokens. HF removes the tokens with C_j ≤ 1 − p. The removed mass is then ≤ 1 − p, so the kept mass
// is ≥ p; removing one token more would push the removed mass above 1 − p. So (in exact arithmetic)
// the kept tokens are the smallest set of most likely tokens with Σ P ≥ p.
//
// Floating point: the chapter's 很好 .4, 一般 .3, 糟糕 .2, 其他 .1 with p = 0.9 sits exactly on the
// boundary (.9 of mass in three tokens). In float64, 1 − 0.9 = 0.09999999999999998 and softmax gives
// P(其他) = 0.10000000000000002 (torch: ...03), so C_1 > 1 − p and all 4 tokens stay. In float32,
// torch casts 1 − p to float32, which rounds to 0.100000001490116, the very float32 that softmax
// gives for P(其他), so C_1 ≤ 1 − p and 其他 goes: 3 tokens stay. (Checked against torch 2.13 in
// both dtypes.) Summing .4 + .3 + .2 in float64 gives 0.8999999999999999 < 0.9, a third answer: any
// top-p on floats decides a tie at the boundary by rounding, so never put a threshold exactly there.
//
// Ties (equal logits) are kept or removed together: a tie block goes only when the mass up to and
// including the whole block is ≤ 1 − p. HF instead splits a tie by whatever order torch.sort leaves
// it in; without ties the two rules are the same.
function topPRow(row: number[], p: number, minTokensToKeep: number, r: Round): number[] {
  const V = row.length;
  const order = row.map((_, i) => i).sort((a, b) => -descending(row[a], row[b]) || a - b); // ascending logits
  const probs = softmaxRow(row, r, order); // summed in the sorted order, as HF's softmax of sorted logits
  const threshold = r(1 - p);
  const out = row.slice();
  let c = 0;
  let j = 0;
  while (j < V) {
    let end = j; // [j, end] is one block of equal logits
    while (end + 1 < V && row[order[end + 1]] === row[order[j]]) end++;
    for (let i = j; i <= end; i++) c = r(c + probs[order[i]]);
    const protectedByMin = end >= V - minTokensToKeep; // the minTokensToKeep most likely are never removed
    if (c <= threshold && !protectedByMin) for (let i = j; i <= end; i++) out[order[i]] = -Infinity;
    j = end + 1;
  }
  return out;
}

// V_p = the smallest set of most likely tokens with Σ_{w∈V_p} P(w) ≥ p;  P'(w) ∝ P(w) on V_p
// logits [B,V], p ∈ (0,1], minTokensToKeep ≥ 1 -> logits [B,V] with the rest at −Infinity
export function filterTopP<L extends Logits>(logits: L, p: number, minTokensToKeep = 1): L {
  checkP(p, minTokensToKeep);
  const { rows, f32 } = readLogits(logits);
  rows.forEach(checkRowHasMass);
  return same(logits, rows.map((row) => topPRow(row, p, minTokensToKeep, f32 ? Math.fround : exact)));
}

function checkPBase(pBase: number): void {
  need(typeof pBase === "number" && pBase >= 0 && pBase <= 1, `pBase must be in [0, 1] (min-p's fraction of the top probability), got ${pBase}`);
}

function minPRow(row: number[], pBase: number, r: Round): number[] {
  const probs = softmaxRow(row, r);
  let pMax = 0;
  for (const q of probs) if (q > pMax) pMax = q;
  const threshold = r(r(pBase) * pMax);
  return row.map((x, w) => (probs[w] < threshold ? -Infinity : x)); // the top token always stays (pBase ≤ 1)
}

// V_min = { w : P(w) ≥ pBase · max_v P(v) }   (min-p, Nguyen et al. 2024: the cut follows the model's confidence)
// logits [B,V], pBase ∈ [0,1] -> logits [B,V] with the rest at −Infinity
export function filterMinP<L extends Logits>(logits: L, pBase: number): L {
  checkPBase(pBase);
  const { rows, f32 } = readLogits(logits);
  rows.forEach(checkRowHasMass);
  return same(logits, rows.map((row) => minPRow(row, pBase, f32 ? Math.fround : exact)));
}

function checkPenalty(penalty: number): void {
  need(typeof penalty === "number" && penalty > 0 && Number.isFinite(penalty),
    `penalty must be a finite number > 0 (1 = none, > 1 discourages repeats), got ${penalty}`);
}

function checkIds(previousIds: number[][], B: number, V: number, name: string): void {
  need(Array.isArray(previousIds) && previousIds.length === B && previousIds.every((r) => Array.isArray(r)),
    `${name} must hold one list of token ids per row of logits (${B}), got ${describe(previousIds)}`);
  for (let b = 0; b < B; b++) {
    for (const id of previousIds[b]) {
      need(Number.isInteger(id) && id >= 0 && id < V, `${name}[${b}] must hold token ids in [0, ${V}), got ${id}`);
    }
  }
}

function penaltyRow(row: number[], ids: number[], penalty: number, r: Round): number[] {
  const out = row.slice();
  for (const id of new Set(ids)) { // each seen token once, however often it appeared
    const x = row[id];
    // Dividing a negative logit would raise it, so negative ones are multiplied: both move down.
    out[id] = x < 0 ? r(x * r(penalty)) : r(x / r(penalty));
  }
  return out;
}

// x'_w = x_w / θ if x_w ≥ 0 else x_w · θ, for every w already in the sequence   (Keskar et al. 2019, CTRL)
// logits [B,V], previousIds B lists of ids, θ > 0 -> logits [B,V]
export function repetitionPenalty<L extends Logits>(logits: L, previousIds: number[][], penalty: number): L {
  checkPenalty(penalty);
  const { rows, f32 } = readLogits(logits);
  checkIds(previousIds, rows.length, rows[0].length, "previousIds");
  return same(logits, rows.map((row, b) => penaltyRow(row, previousIds[b], penalty, f32 ? Math.fround : exact)));
}

// ---------------------------------------------------------------------------------------------
// Drawing a token

export interface SampleOptions {
  /** x / T before the filters; 0 means greedy decoding (the T → 0 limit). Default 1. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** A fresh Rng(seed) for this call (default SEED); ignored when rng is given. */
  seed?: number;
  /** A generator to keep drawing from across calls (generate passes its own). */
  rng?: Rng;
}

function checkSampleOptions(o: SampleOptions): void {
  if (o.temperature !== undefined) {
    need(typeof o.temperature === "number" && o.temperature >= 0 && Number.isFinite(o.temperature),
      `temperature must be a finite number ≥ 0 (0 means greedy), got ${o.temperature}`);
  }
  if (o.topK !== undefined) checkK(o.topK);
  if (o.topP !== undefined) checkP(o.topP, 1);
  if (o.minP !== undefined) checkPBase(o.minP);
  if (o.seed !== undefined) need(Number.isInteger(o.seed), `seed must be an integer, got ${o.seed}`);
}

// The warpers in Hugging Face's order: temperature, top-k, top-p, min-p.
function warpRow(row: number[], o: SampleOptions, r: Round): number[] {
  let x = row;
  if (o.temperature !== undefined && o.temperature !== 1) x = temperatureRow(x, o.temperature, r);
  if (o.topK !== undefined) x = topKRow(x, o.topK);
  if (o.topP !== undefined) x = topPRow(x, o.topP, 1, r);
  if (o.minP !== undefined) x = minPRow(x, o.minP, r);
  return x;
}

// Inverse CDF in float64: the first w with u·Σ_v e_v < Σ_{v≤w} e_v, where e_v = exp(x_v − max x).
// Tokens at −Infinity have e = 0 and can never be drawn.
function drawRow(row: number[], u: number): number {
  let m = -Infinity;
  for (const x of row) if (x > m) m = x;
  const e = row.map((x) => exp(x - m));
  let total = 0;
  for (const v of e) total += v;
  const target = u * total;
  let acc = 0;
  let last = 0;
  for (let w = 0; w < e.length; w++) {
    if (e[w] === 0) continue;
    acc += e[w];
    last = w;
    if (target < acc) return w;
  }
  return last; // only reached if rounding left acc a hair below target
}

// Rows of logits (already validated) -> one token per row, drawing one u ~ U[0,1) per row in row order
function pickRows(rows: number[][], f32: boolean, o: SampleOptions, rng: Rng): number[] {
  const r = f32 ? Math.fround : exact;
  return rows.map((row, b) => {
    checkRowHasMass(row, b);
    if (o.temperature === 0) return argmaxRow(row); // the filters below never remove the argmax
    const x = warpRow(row, o, r);
    return drawRow(x, rng.next());
  });
}

// w ~ P'(w), P' = softmax(minP(topP(topK(x / T))))  drawn by inverse CDF from u ~ U[0,1) (seeded)
// logits [B,V] -> B token ids
export function sample(logits: Logits, options: SampleOptions = {}): number[] {
  checkSampleOptions(options);
  const { rows, f32 } = readLogits(logits);
  const rng = options.rng ?? new Rng(options.seed ?? SEED);
  return pickRows(rows, f32, options, rng);
}

// ---------------------------------------------------------------------------------------------
// Diversity of generated text

function ngrams(tokens: number[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join(","));
  return out;
}

function checkTokens(tokens: number[] | number[][], n: number): number[][] {
  need(Number.isInteger(n) && n >= 1, `n must be an integer ≥ 1 (the n-gram length), got ${n}`);
  need(Array.isArray(tokens), `tokens must be token ids (number[]) or several sequences (number[][]), got ${describe(tokens)}`);
  const seqs = tokens.length > 0 && Array.isArray(tokens[0]) ? (tokens as number[][]) : [tokens as number[]];
  for (const s of seqs) {
    need(Array.isArray(s) && s.every((t) => typeof t === "number"),
      `tokens must be token ids (number[]) or several sequences (number[][]), got ${describe(s)}`);
  }
  return seqs;
}

// distinct-n = |unique n-grams| / |n-grams|, pooled over all sequences (Li et al. 2016); 0 if there are none
// tokens: one sequence number[] or several number[][] (n-grams never cross sequences) -> [0, 1]
export function distinctN(tokens: number[] | number[][], n: number): number {
  const seqs = checkTokens(tokens, n);
  const all = seqs.flatMap((s) => ngrams(s, n));
  return all.length === 0 ? 0 : new Set(all).size / all.length;
}

// rep-n = 1 − |unique n-grams| / |n-grams| within each sequence, averaged (Welleck et al. 2019); 0 if none
// tokens: one sequence number[] or several number[][] -> [0, 1] (one sequence: 1 − distinctN)
export function repetitionRate(tokens: number[] | number[][], n: number): number {
  const seqs = checkTokens(tokens, n);
  const rates = seqs.map((s) => {
    const g = ngrams(s, n);
    return g.length === 0 ? 0 : 1 - new Set(g).size / g.length;
  });
  return rates.reduce((a, b) => a + b, 0) / rates.length;
}

// ---------------------------------------------------------------------------------------------
// Generating text with the decoder

/** A decoder as lib/decoder.ts builds it: its parameters and its config. */
export interface LanguageModel { params: Params; config: DecoderConfig }

export interface GenerateOptions extends Omit<SampleOptions, "rng"> {
  maxNewTokens: number;
  /** θ of repetitionPenalty over every token of the sequence so far, prompt included (as HF). */
  repetitionPenalty?: number;
  /** Reuse the keys and values of past positions (default true); false recomputes the whole prefix each step. */
  useCache?: boolean;
  /** Plugged into every forward pass (LoRA, steering: lib/lora.ts). */
  adapter?: Adapter;
}

function checkPrompt(prompt: number[] | number[][], V: number, name = "prompt"): number[][] {
  const batch = Array.isArray(prompt) && prompt.length > 0 && Array.isArray(prompt[0]);
  const rows = batch ? (prompt as number[][]) : [prompt as number[]];
  need(Array.isArray(prompt) && rows.every((r) => Array.isArray(r) && r.length >= 1),
    `${name} must be token ids (number[]) or a batch of them (number[][]), each at least one token, got ${describe(prompt)}`);
  const T = rows[0].length;
  rows.forEach((r, b) => {
    need(r.length === T, `${name} rows must all have the same length ${T} (no padding here), row ${b} has ${r.length}`);
    r.forEach((id) => need(Number.isInteger(id) && id >= 0 && id < V, `${name} must hold token ids in [0, ${V}), got ${id} in row ${b}`));
  });
  return rows.map((r) => r.slice());
}

// One forward pass -> the logits of the last position [B,V] as plain rows, and the new cache.
function lastLogits(model: LanguageModel, ids: number[][], cache: KVCache | undefined, adapter: Adapter | undefined):
  { rows: number[][]; cache?: KVCache } {
  const { params, config } = model;
  // tf.tidy frees every intermediate tensor and keeps only the ones returned: the last logits and the cache.
  const out = tf.tidy(() => {
    const x = tf.tensor2d(ids, [ids.length, ids[0].length], "int32");
    const res = decoderForward(params, config, x, { cache, adapter });
    const T = ids[0].length;
    const last = res.logits.slice([0, T - 1, 0], [ids.length, 1, config.vocabSize]).reshape([ids.length, config.vocabSize]);
    return { last, k: res.cache ? res.cache.k : [], v: res.cache ? res.cache.v : [] };
  });
  const rows = (out.last as tf.Tensor2D).arraySync();
  out.last.dispose();
  const next = cache ? { k: out.k as tf.Tensor4D[], v: out.v as tf.Tensor4D[], length: cache.length + ids[0].length } : undefined;
  return { rows, cache: next };
}

function disposeOld(old: KVCache | undefined, keep: KVCache | undefined): void {
  if (!old) return;
  const kept = new Set(keep ? [...keep.k, ...keep.v] : []);
  for (const t of [...old.k, ...old.v]) if (!kept.has(t)) t.dispose();
}

// w_{t+1} ~ P'(· | w_≤t) repeated maxNewTokens times; with the KV cache only the new token is run each step
// prompt [T] or [B,T] token ids (equal lengths) -> [T + maxNewTokens] or [B, T + maxNewTokens] (prompt included, as HF)
//
// The model only ever sees the last contextLength tokens: a longer prompt is cropped from the left,
// and once prompt + generated tokens pass contextLength, every step recomputes the last
// contextLength tokens without the cache (learned positions are baked into the cached keys, so the
// window cannot slide), which makes those steps cost what they cost with useCache false.
// With the cache and without it the tokens are the same (the cache is only a saving).
export function generate(model: LanguageModel, prompt: number[][], options: GenerateOptions): number[][];
export function generate(model: LanguageModel, prompt: number[], options: GenerateOptions): number[];
export function generate(model: LanguageModel, prompt: number[] | number[][], options: GenerateOptions): number[] | number[][] {
  need(model !== null && typeof model === "object" && model.params !== undefined && model.config !== undefined,
    `model must be { params, config } from lib/decoder.ts, got ${describe(model)}`);
  const { config } = model;
  const { maxNewTokens, useCache = true, adapter } = options;
  need(Number.isInteger(maxNewTokens) && maxNewTokens >= 0, `maxNewTokens must be an integer ≥ 0, got ${maxNewTokens}`);
  checkSampleOptions(options);
  if (options.repetitionPenalty !== undefined) checkPenalty(options.repetitionPenalty);
  const seqs = checkPrompt(prompt, config.vocabSize);
  const B = seqs.length;
  const C = config.contextLength;
  const rng = new Rng(options.seed ?? SEED);
  let cache: KVCache | undefined;
  try {
    for (let step = 0; step < maxNewTokens; step++) {
      const len = seqs[0].length;
      let rows: number[][];
      if (!useCache || len > C) {
        disposeOld(cache, undefined);
        cache = undefined;
        rows = lastLogits(model, seqs.map((s) => s.slice(-C)), undefined, adapter).rows;
      } else {
        // first step: run the whole prompt into an empty cache; later: only the newest token
        const fresh = cache === undefined;
        const start = fresh ? emptyCache(config, B) : cache!;
        const ids = fresh ? seqs : seqs.map((s) => [s[len - 1]]);
        const out = lastLogits(model, ids, start, adapter);
        disposeOld(start, out.cache);
        cache = out.cache;
        rows = out.rows;
      }
      if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1) {
        const theta = options.repetitionPenalty;
        rows = rows.map((row, b) => penaltyRow(row, seqs[b], theta, Math.fround));
      }
      const next = pickRows(rows, true, options, rng);
      next.forEach((w, b) => seqs[b].push(w));
    }
  } finally {
    disposeOld(cache, undefined);
  }
  const batch = Array.isArray(prompt[0]);
  return batch ? seqs : seqs[0];
}

/** What beamSearch needs from a model: log-probabilities of the next token for each sequence. */
export type StepLogProbs = (sequences: number[][]) => Logits;

// log P(w | sequence) = log_softmax(decoder logits at the last position), on the last contextLength tokens
// model -> a StepLogProbs for beamSearch: sequences [n][t] (equal lengths) -> [n, V] (a plain array)
export function decoderLogProbs(model: LanguageModel, adapter?: Adapter): StepLogProbs {
  return (sequences) => {
    const C = model.config.contextLength;
    const rows = lastLogits(model, sequences.map((s) => s.slice(-C)), undefined, adapter).rows;
    return rows.map((row) => {
      // float64 log-softmax of the float32 logits: x − max − log Σ exp(x − max)
      let m = -Infinity;
      for (const x of row) if (x > m) m = x;
      let s = 0;
      for (const x of row) s += exp(x - m);
      const lse = m + Math.log(s);
      return row.map((x) => x - lse);
    });
  };
}

// float64 log-softmax of one row of float32 logits: x − max − log Σ exp(x − max)
function logSoftmaxRow(row: number[]): number[] {
  let m = -Infinity;
  for (const x of row) if (x > m) m = x;
  let s = 0;
  for (const x of row) s += exp(x - m);
  const lse = m + Math.log(s);
  return row.map((x) => x - lse);
}

// log P(x_t | x_{t−C}, …, x_{t−1}) for t = from … L−1, C = contextLength: the model's own log-probability
// of each token given the window generate saw (before any warper), as decoderLogProbs scores one prefix
// tokens [L] or [B,L] (equal lengths), 1 ≤ from < L -> [L − from] or [B, L − from] (nats, ≤ 0)
//
// −mean of it is the model's per-token loss of a text, e.g. of a continuation it generated itself
// ("how surprised is the model by its own output"). Positions t ≤ C share one forward pass over the
// first tokens; each later position needs its own window of the last C tokens (learned positions).
export function tokenLogProbs(model: LanguageModel, tokens: number[][], from: number, adapter?: Adapter): number[][];
export function tokenLogProbs(model: LanguageModel, tokens: number[], from: number, adapter?: Adapter): number[];
export function tokenLogProbs(model: LanguageModel, tokens: number[] | number[][], from: number, adapter?: Adapter): number[] | number[][] {
  need(model !== null && typeof model === "object" && model.params !== undefined && model.config !== undefined,
    `model must be { params, config } from lib/decoder.ts, got ${describe(model)}`);
  const { config } = model;
  const seqs = checkPrompt(tokens, config.vocabSize, "tokens");
  const L = seqs[0].length;
  need(Number.isInteger(from) && from >= 1 && from < L, `from must be an integer in [1, ${L}) (the first scored position; position 0 has no prefix), got ${from}`);
  const C = config.contextLength;
  const B = seqs.length;
  const out: number[][] = seqs.map(() => []);
  // 1. positions from … min(L−1, C), all read off one forward pass over the first min(L−1, C) tokens
  const head = Math.min(L - 1, C);
  if (from <= head) {
    const rows = tf.tidy(() => {
      const x = tf.tensor2d(seqs.map((s) => s.slice(0, head)), [B, head], "int32");
      const { logits } = decoderForward(model.params, config, x, { adapter });
      return logits.slice([0, from - 1, 0], [B, head - from + 1, config.vocabSize]).arraySync() as number[][][];
    });
    rows.forEach((posRows, b) => posRows.forEach((row, i) => out[b].push(logSoftmaxRow(row)[seqs[b][from + i]])));
  }
  // 2. positions past the context: one window of the last C tokens each, 64 windows a forward pass
  const late: { b: number; t: number }[] = [];
  for (let b = 0; b < B; b++) for (let t = Math.max(from, C + 1); t < L; t++) late.push({ b, t });
  for (let i = 0; i < late.length; i += 64) {
    const chunk = late.slice(i, i + 64);
    const rows = lastLogits(model, chunk.map(({ b, t }) => seqs[b].slice(t - C, t)), undefined, adapter).rows;
    chunk.forEach(({ b, t }, j) => out[b].push(logSoftmaxRow(rows[j])[seqs[b][t]]));
  }
  const batch = Array.isArray(tokens[0]);
  return batch ? out : out[0];
}

// ---------------------------------------------------------------------------------------------
// Beam search

export interface BeamOptions {
  numBeams: number;
  maxNewTokens: number;
  /** α in score = Σ log P / (generated length)^α; 0 ranks by total log-probability. Default 1 (HF's default). */
  lengthPenalty?: number;
  /** The end-of-sequence token: a beam that emits it is finished. */
  eosId?: number;
}

export interface Hypothesis {
  /** prompt + generated tokens (with eosId at the end when finished, as HF returns it) */
  tokens: number[];
  /** Σ log P of the generated tokens (eosId included) */
  logProb: number;
  /** logProb / (generated length)^lengthPenalty */
  score: number;
  finished: boolean;
}

function checkBeamOptions(o: BeamOptions): void {
  need(Number.isInteger(o.numBeams) && o.numBeams >= 1, `numBeams must be an integer ≥ 1, got ${o.numBeams}`);
  need(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1, `maxNewTokens must be an integer ≥ 1, got ${o.maxNewTokens}`);
  if (o.lengthPenalty !== undefined) {
    need(Number.isFinite(o.lengthPenalty), `lengthPenalty must be a finite number, got ${o.lengthPenalty}`);
  }
  if (o.eosId !== undefined) need(Number.isInteger(o.eosId) && o.eosId >= 0, `eosId must be a token id (an integer ≥ 0), got ${o.eosId}`);
}

// Keep the numBeams best finished hypotheses, best first (a later one must beat the worst strictly, as HF).
function addHypothesis(list: Hypothesis[], h: Hypothesis, numBeams: number): void {
  if (list.length >= numBeams && !(h.score > list[list.length - 1].score)) return;
  let i = list.length;
  while (i > 0 && list[i - 1].score < h.score) i--;
  list.splice(i, 0, h);
  if (list.length > numBeams) list.pop();
}

// y* = argmax over kept beams of Σ_t log P(y_t | y_<t) / |y|^α, keeping the numBeams best prefixes each step
// stepLogProbs(sequences [n][t]) -> [n, V];  prompt [T] -> hypotheses, best first (at most numBeams)
//
// Each step, every running beam is extended by every token; the 2·numBeams best extensions (by
// summed log-probability) are scanned in order: one ending in eosId becomes a finished hypothesis if
// it ranks among the first numBeams, the others fill the numBeams running beams (as HF's scorer).
// A hypothesis' length is the number of generated tokens, the eosId included; beams still running
// after maxNewTokens are finished there. The search stops early only when no running beam can beat
// the worst of numBeams finished ones any more (HF's early_stopping="never": the exact stop; HF's
// default stops on a heuristic instead). Ties go to the lower beam, then the lower token id, so
// numBeams = 1 is greedy decoding.
export function beamSearch(stepLogProbs: StepLogProbs, prompt: number[], options: BeamOptions): Hypothesis[] {
  checkBeamOptions(options);
  need(typeof stepLogProbs === "function", `stepLogProbs must be a function (sequences) => log-probabilities [n, vocab], got ${describe(stepLogProbs)}`);
  need(Array.isArray(prompt) && prompt.length >= 1 && prompt.every((t) => Number.isInteger(t) && t >= 0),
    `prompt must be token ids (number[], at least one), got ${describe(prompt)}`);
  const { numBeams, maxNewTokens, lengthPenalty = 1, eosId } = options;
  const alpha = lengthPenalty;
  let running: { tokens: number[]; logProb: number }[] = [{ tokens: prompt.slice(), logProb: 0 }];
  const finished: Hypothesis[] = [];
  let allNonPositive = true; // the early stop's bound assumes log-probabilities ≤ 0
  for (let t = 1; t <= maxNewTokens && running.length > 0; t++) {
    const given = stepLogProbs(running.map((b) => b.tokens.slice()));
    const { rows } = readLogits(given, "stepLogProbs(sequences)");
    if (given instanceof tf.Tensor) given.dispose();
    need(rows.length === running.length, `stepLogProbs(sequences) must return one row per sequence (${running.length}), got ${rows.length}`);
    const V = rows[0].length;
    if (eosId !== undefined) need(eosId < V, `eosId must be a token id below the vocabulary ${V}, got ${eosId}`);
    // candidates: each beam's 2·numBeams best tokens are enough to find the 2·numBeams best overall
    const cands: { beam: number; token: number; logProb: number }[] = [];
    rows.forEach((row, beam) => {
      if (row.some((x) => x > 0)) allNonPositive = false;
      const best = row.map((_, w) => w).sort((a, c) => descending(row[a], row[c]) || a - c).slice(0, 2 * numBeams);
      for (const w of best) if (row[w] > -Infinity) cands.push({ beam, token: w, logProb: running[beam].logProb + row[w] });
    });
    cands.sort((a, c) => descending(a.logProb, c.logProb) || a.beam - c.beam || a.token - c.token);
    const next: { tokens: number[]; logProb: number }[] = [];
    for (let rank = 0; rank < Math.min(cands.length, 2 * numBeams); rank++) {
      const c = cands[rank];
      const tokens = [...running[c.beam].tokens, c.token];
      if (c.token === eosId) {
        if (rank < numBeams) addHypothesis(finished, { tokens, logProb: c.logProb, score: c.logProb / Math.pow(t, alpha), finished: true }, numBeams);
      } else {
        next.push({ tokens, logProb: c.logProb });
        if (next.length === numBeams) break;
      }
    }
    running = next;
    if (t === maxNewTokens) {
      for (const b of running) addHypothesis(finished, { ...b, score: b.logProb / Math.pow(t, alpha), finished: false }, numBeams);
    } else if (allNonPositive && finished.length >= numBeams && running.length > 0) {
      // Sums only fall from here; the best a running beam can still reach is its sum over the most
      // favourable length: the longest (maxNewTokens) when α ≥ 0, the next one (t + 1) when α < 0.
      const bestSum = running[0].logProb;
      const bound = bestSum / Math.pow(alpha >= 0 ? maxNewTokens : t + 1, alpha);
      if (finished[finished.length - 1].score >= bound) break;
    }
  }
  return finished;
}
