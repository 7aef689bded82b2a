import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import { decoderForward, initDecoder, type DecoderConfig } from "../lib/decoder";
import { bidirectionalForward, fillCausal, fillMasked, maskedLmObjective, maskTokens, mlmLoss, trainMaskedModel, MASKED_EN } from "../lib/objectives";

process.env.BOOK_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "objectives-cache-"));

const V = 9; // real tokens 0..8; [MASK] = 9
const CFG: DecoderConfig = { vocabSize: V + 1, contextLength: 12, dModel: 8, nLayers: 2, nHeads: 2, dFF: 16, positional: "learned" };
const CAUSAL: DecoderConfig = { ...CFG, vocabSize: V };

function randomRows(n: number, T: number, seed: number): number[][] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => r.int(V)));
}

// log-softmax of one row over its first n entries, in float64
function logSoftmax(row: number[], n: number): number[] {
  const xs = row.slice(0, n);
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
}

describe("maskTokens (BERT's 15% with 80/10/10)", () => {
  it("chooses exactly max(1, round(p·T)) positions per row and changes nothing else", () => {
    const rows = randomRows(50, 12, 1);
    for (const p of [0.15, 0.4, 0.01]) {
      const m = maskTokens(rows, new Rng(2), { maskId: V, vocabSize: V, maskProb: p });
      expect(m.targets).toEqual(rows);
      m.weights.forEach((w, b) => {
        expect(w.reduce((a, x) => a + x, 0)).toBe(Math.max(1, Math.round(p * 12)));
        w.forEach((x, t) => { if (x === 0) expect(m.inputs[b][t]).toBe(rows[b][t]); });
      });
    }
  });

  it("replaces 80% of the chosen by [MASK], 10% by a random token, keeps 10% (counted over many rows)", () => {
    const rows = randomRows(4000, 10, 3);
    const m = maskTokens(rows, new Rng(4), { maskId: V, vocabSize: V, maskProb: 0.2 });
    let chosen = 0, masked = 0, changed = 0;
    m.weights.forEach((w, b) => w.forEach((x, t) => {
      if (!x) return;
      chosen++;
      if (m.inputs[b][t] === V) masked++;
      else if (m.inputs[b][t] !== rows[b][t]) changed++;
    }));
    expect(chosen).toBe(8000);
    expect(masked / chosen).toBeCloseTo(0.8, 1);
    // a random replacement equals the original with probability 1/V: 0.1·(V−1)/V of the chosen change
    expect(changed / chosen).toBeGreaterThan(0.1 * (V - 1) / V - 0.015);
    expect(changed / chosen).toBeLessThan(0.1 * (V - 1) / V + 0.015);
  });

  it("is a function of the rng's seed", () => {
    const rows = randomRows(5, 12, 5);
    expect(maskTokens(rows, new Rng(7), { maskId: V, vocabSize: V })).toEqual(maskTokens(rows, new Rng(7), { maskId: V, vocabSize: V }));
    expect(maskTokens(rows, new Rng(7), { maskId: V, vocabSize: V })).not.toEqual(maskTokens(rows, new Rng(8), { maskId: V, vocabSize: V }));
  });

  it("refuses a mask id inside the vocabulary, ids outside it, and bad fractions, in one sentence", () => {
    expect(() => maskTokens([[1, 2]], new Rng(1), { maskId: 3, vocabSize: V })).toThrow(/options.maskId must be an id past the real tokens/);
    expect(() => maskTokens([[1, 12]], new Rng(1), { maskId: V, vocabSize: V })).toThrow(/ids must hold real token ids in \[0, 9\), got 12 at position 1/);
    expect(() => maskTokens([[1, 2]], new Rng(1), { maskId: V, vocabSize: V, replaceMask: 0.95, replaceRandom: 0.1 })).toThrow(/summing to ≤ 1/);
    expect(() => maskTokens([], new Rng(1), { maskId: V, vocabSize: V })).toThrow(/ids must be rows of token ids/);
  });
});

describe("the bidirectional forward", () => {
  const params = initDecoder(CFG, 11);

  it("is the decoder's computation without the causal mask: equal for one position, and later tokens change earlier outputs", () => {
    const one = tf.tensor2d([[3]], undefined, "int32");
    const a = bidirectionalForward(params, CFG, one).arraySync();
    const b = decoderForward(params, CFG, one).logits.arraySync();
    expect(a).toEqual(b);
    const x1 = tf.tensor2d([[1, 2, 3, 4, 5]], undefined, "int32");
    const x2 = tf.tensor2d([[1, 2, 3, 4, 6]], undefined, "int32"); // only the last token differs
    const bi = (x: tf.Tensor2D) => (bidirectionalForward(params, CFG, x).arraySync() as number[][][])[0][0];
    const ca = (x: tf.Tensor2D) => (decoderForward(params, CFG, x).logits.arraySync() as number[][][])[0][0];
    expect(bi(x1)).not.toEqual(bi(x2));
    expect(ca(x1)).toEqual(ca(x2));
  });

  it("mlmLoss is the mean cross-entropy over the chosen positions only, over the real tokens (a loop over plain arrays)", () => {
    const rows = randomRows(3, 7, 12);
    const m = maskTokens(rows, new Rng(13), { maskId: V, vocabSize: V, maskProb: 0.3 });
    const inputs = tf.tensor2d(m.inputs, undefined, "int32");
    const got = mlmLoss(params, CFG, inputs, tf.tensor2d(m.targets, undefined, "int32"), tf.tensor2d(m.weights)).dataSync()[0];
    const logits = bidirectionalForward(params, CFG, inputs).arraySync() as number[][][];
    let sum = 0, n = 0;
    m.weights.forEach((w, b) => w.forEach((x, t) => {
      if (!x) return;
      sum -= logSoftmax(logits[b][t], V)[m.targets[b][t]];
      n++;
    }));
    expect(got).toBeCloseTo(sum / n, 5);
  });

  it("maskedLmObjective masks a batch the same way every time (a fixed held-out batch), and leaks no tensors", () => {
    const loss = maskedLmObjective(CFG, { maskId: V, vocabSize: V, seed: 3 });
    const batch = tf.tensor2d(randomRows(4, 9, 14), undefined, "int32"); // [B, T+1]: the last column unused
    const l1 = loss(params, batch);
    const before = tf.memory().numTensors;
    const l2 = loss(params, batch);
    expect(l2.dataSync()[0]).toBe(l1.dataSync()[0]);
    l2.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const other = tf.tensor2d(randomRows(4, 9, 15), undefined, "int32");
    expect(loss(params, other).dataSync()[0]).not.toBe(l1.dataSync()[0]);
    expect(() => maskedLmObjective(CAUSAL, { maskId: V, vocabSize: V })).toThrow(/must be a row of the model's token table/);
  });
});

describe("filling blanks", () => {
  const mlm = initDecoder(CFG, 21);
  const clm = initDecoder(CAUSAL, 22);
  const rows = randomRows(5, 8, 23);
  const positions = [1, 3, 7, 4, 2];

  it("the causal model reads only the left: the same as running the prefix alone", () => {
    const got = fillCausal(clm, CAUSAL, rows, positions);
    rows.forEach((r, b) => {
      const t = positions[b];
      const prefix = tf.tensor2d([r.slice(0, t)], undefined, "int32");
      const last = (decoderForward(clm, CAUSAL, prefix).logits.arraySync() as number[][][])[0][t - 1];
      const lp = logSoftmax(last, V);
      expect(got.logProb[b]).toBeCloseTo(lp[r[t]], 4);
      expect(got.predicted[b]).toBe(lp.indexOf(Math.max(...lp)));
    });
  });

  it("the masked model reads both sides of [MASK], scored over the real tokens (a loop over plain arrays)", () => {
    const got = fillMasked(mlm, CFG, rows, positions, V);
    rows.forEach((r, b) => {
      const t = positions[b];
      const input = r.map((id, s) => (s === t ? V : id));
      const logits = (bidirectionalForward(mlm, CFG, tf.tensor2d([input], undefined, "int32")).arraySync() as number[][][])[0][t];
      const lp = logSoftmax(logits, V);
      expect(got.logProb[b]).toBeCloseTo(lp[r[t]], 4);
      expect(got.predicted[b]).toBe(lp.indexOf(Math.max(...lp)));
    });
  });

  it("leaks no tensors and refuses blanks outside the rows", () => {
    const before = tf.memory().numTensors;
    fillMasked(mlm, CFG, rows, positions, V);
    fillCausal(clm, CAUSAL, rows, positions);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => fillCausal(clm, CAUSAL, rows, [0, 1, 1, 1, 1])).toThrow(/positions\[0\] must be an integer in \[1, 8\), got 0/);
    expect(() => fillMasked(mlm, CFG, rows, [1, 2], V)).toThrow(/positions must give one blank per row \(5\), got 2/);
  });
});

describe("trainMaskedModel", () => {
  it("trains a few steps on the corpus, the last id is [MASK], and a second call is the cached run", async () => {
    const recipe = { ...MASKED_EN, model: { ...MASKED_EN.model, dModel: 8, dFF: 16, nHeads: 2, nLayers: 1 }, steps: 3, batchSize: 2 };
    const a = await trainMaskedModel(recipe);
    expect(a.maskId).toBe(a.config.vocabSize - 1);
    expect(a.params["wte"].shape).toEqual([a.config.vocabSize, 8]);
    expect(a.history.steps).toEqual([1, 2, 3]);
    const b = await trainMaskedModel(recipe);
    expect(b.history).toEqual(a.history);
    expect(Array.from(b.params["wte"].dataSync())).toEqual(Array.from(a.params["wte"].dataSync()));
  });
});
