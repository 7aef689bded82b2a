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
// is always float64 on the host, so a seed gives the same tokens on every tfjs backend, in Node and
// in the browser.
//
// Semantics follow Hugging Face transformers' logits warpers (TemperatureLogitsWarper,
// TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor) and its
// beam search scorer; each function says where the two differ.
import { tf, Rng, SEED } from "./tf";

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
function same<T extends Logits>(like: T, rows: number[][]): T {
  if (like instanceof tf.Tensor) return tf.tensor2d(rows, [rows.length, rows[0].length], "float32") as T;
  return rows as T;
}

function checkRowHasMass(row: number[], b: number): void {
  need(row.some((x) => x > -Infinity), `logits row ${b} is all −Infinity: every token was filtered out`);
}

// ---------------------------------------------------------------------------------------------
// Softmax and greedy

// p_i = exp(x_i − max x) / Σ_j exp(x_j − max x), summed in the order of `order` (default: index order)
function softmaxRow(row: number[], r: Round, order?: number[]): number[] {
  let m = -Infinity;
  for (const x of row) if (x > m) m = x;
  const e = row.map((x) => r(Math.exp(r(x - m))));
  let s = 0;
  if (order) for (const i of order) s = r(s + e[i]);
  else for (const v of e) s = r(s + v);
  return e.map((v) => r(v / s));
}

// P(w) = exp(x_w) / Σ_v exp(x_v)   (row-wise; max subtracted first so exp never overflows)
// logits [B,V] -> probabilities [B,V], same kind
export function softmax<T extends Logits>(logits: T): T {
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
export function applyTemperature<T extends Logits>(logits: T, T: number): T {
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
export function filterTopK<T extends Logits>(logits: T, k: number): T {
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
export function filterTopP<T extends Logits>(logits: T, p: number, minTokensToKeep = 1): T {
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
export function filterMinP<T extends Logits>(logits: T, pBase: number): T {
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
export function repetitionPenalty<T extends Logits>(logits: T, previousIds: number[][], penalty: number): T {
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
  const e = row.map((x) => Math.exp(x - m));
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
