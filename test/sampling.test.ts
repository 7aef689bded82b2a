import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import {
  applyTemperature, distinctN, filterMinP, filterTopK, filterTopP, greedy, repetitionPenalty,
  repetitionRate, sample, softmax,
} from "../lib/sampling";

// The chapter's example: after 今天的天气 the model gives 很好 .4, 一般 .3, 糟糕 .2, 其他 .1.
const WORDS = ["很好", "一般", "糟糕", "其他"];
const P = [0.4, 0.3, 0.2, 0.1];
const X = [P.map(Math.log)]; // logits [1, 4] whose softmax is P

// ---- obviously-correct slow versions (plain loops, float64) ----
function slowSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}
function kept(row: number[]): number[] {
  return row.map((x, i) => (x > -Infinity ? i : -1)).filter((i) => i >= 0);
}
function randRows(rng: Rng, B: number, V: number, scale = 3): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: V }, () => (rng.next() * 2 - 1) * scale));
}
// top-p by its definition: grow the set of most likely tokens until its mass reaches p
function slowTopPSet(row: number[], p: number): number[] {
  const probs = slowSoftmax(row);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]);
  const set: number[] = [];
  let mass = 0;
  for (const i of order) {
    set.push(i);
    mass += probs[i];
    if (mass >= p) break;
  }
  return set.sort((a, b) => a - b);
}

describe("softmax and greedy", () => {
  it("softmax matches the slow version, on arrays and on tensors", () => {
    const rows = randRows(new Rng(1), 3, 7);
    const a = softmax(rows);
    rows.forEach((row, b) => slowSoftmax(row).forEach((q, w) => expect(a[b][w]).toBeCloseTo(q, 14)));
    const t = softmax(tf.tensor2d(rows));
    expect(t).toBeInstanceOf(tf.Tensor);
    const ta = t.arraySync();
    rows.forEach((row, b) => slowSoftmax(row).forEach((q, w) => expect(ta[b][w]).toBeCloseTo(q, 6)));
    t.dispose();
  });

  it("greedy picks 很好 in the chapter's example, the first id on a tie, one id per row", () => {
    expect(WORDS[greedy(X)[0]]).toBe("很好");
    expect(greedy([[1, 3, 3, 0], [5, 1, 2, 9]])).toEqual([1, 3]);
  });
});

describe("temperature: P'(w) ∝ P(w)^{1/T}", () => {
  it("matches hand-computed values at T = 0.5 and T = 1.5", () => {
    // T = 0.5: P² = .16, .09, .04, .01, sum .30 -> 8/15, 3/10, 2/15, 1/30
    const cold = softmax(applyTemperature(X, 0.5))[0];
    [8 / 15, 0.3, 2 / 15, 1 / 30].forEach((q, w) => expect(cold[w]).toBeCloseTo(q, 12));
    // T = 1.5: P^{2/3} = .542884, .448140, .341995, .215443, sum 1.548463
    const hot = softmax(applyTemperature(X, 1.5))[0];
    [0.350595, 0.28941, 0.220861, 0.139134].forEach((q, w) => expect(hot[w]).toBeCloseTo(q, 6));
    // The cold distribution is sharper and the hot one flatter than P itself.
    expect(cold[0]).toBeGreaterThan(0.4);
    expect(hot[0]).toBeLessThan(0.4);
  });

  it("equals P^{1/T} renormalised on random logits", () => {
    const rows = randRows(new Rng(2), 2, 9);
    for (const T of [0.3, 1, 2.7]) {
      const got = softmax(applyTemperature(rows, T));
      rows.forEach((row, b) => {
        const p = slowSoftmax(row).map((q) => Math.pow(q, 1 / T));
        const s = p.reduce((a, c) => a + c, 0);
        p.forEach((q, w) => expect(got[b][w]).toBeCloseTo(q / s, 12));
      });
    }
  });

  it("T → 0 is greedy: sampling at T = 1e-3 always returns the argmax; T = 0 in sample is greedy", () => {
    const rows = randRows(new Rng(3), 50, 12);
    const arg = greedy(rows);
    for (let seed = 0; seed < 5; seed++) expect(sample(rows, { temperature: 1e-3, seed })).toEqual(arg);
    expect(sample(rows, { temperature: 0, seed: 1 })).toEqual(arg);
    // …while T = 1 does not (so the test above can fail)
    expect(sample(rows, { temperature: 1, seed: 1 })).not.toEqual(arg);
  });

  it("rejects T ≤ 0 with one sentence naming T", () => {
    expect(() => applyTemperature(X, 0)).toThrow(/^T must be a finite number > 0 .*got 0$/);
    expect(() => applyTemperature(X, -1)).toThrow(/got -1/);
    expect(() => applyTemperature(X, NaN)).toThrow(/got NaN/);
    expect(() => sample(X, { temperature: -0.5 })).toThrow(/temperature must be .* got -0.5/);
  });
});

describe("top-k", () => {
  it("k = 2 keeps 很好 and 一般 with 4/7 and 3/7 (the chapter's renormalisation)", () => {
    const q = softmax(filterTopK(X, 2))[0];
    expect(kept(filterTopK(X, 2)[0]).map((i) => WORDS[i])).toEqual(["很好", "一般"]);
    expect(q[0]).toBeCloseTo(4 / 7, 14);
    expect(q[1]).toBeCloseTo(3 / 7, 14);
    expect(q[2]).toBe(0);
    expect(q[3]).toBe(0);
  });

  it("keeps every logit tied with the k-th (as HF), clamps k to the vocabulary", () => {
    expect(kept(filterTopK([[1, 5, 3, 3, 0]], 2)[0])).toEqual([1, 2, 3]);
    expect(kept(filterTopK([[1, 5, 3, 3, 0]], 9)[0])).toEqual([0, 1, 2, 3, 4]);
    // −Infinity already there stays −Infinity
    expect(filterTopK([[-Infinity, 2, -Infinity]], 2)[0]).toEqual([-Infinity, 2, -Infinity]);
  });

  it("matches the slow version row by row; rows of a batch get different sets", () => {
    const rows = randRows(new Rng(4), 4, 10);
    const got = filterTopK(rows, 3);
    rows.forEach((row, b) => {
      const top = row.map((_, i) => i).sort((a, c) => row[c] - row[a]).slice(0, 3).sort((a, c) => a - c);
      expect(kept(got[b])).toEqual(top);
      top.forEach((i) => expect(got[b][i]).toBe(row[i])); // kept logits are untouched
    });
    expect(new Set(got.map((r) => kept(r).join())).size).toBeGreaterThan(1);
  });

  it("rejects k < 1 and non-integer k", () => {
    expect(() => filterTopK(X, 0)).toThrow(/^k must be an integer ≥ 1 .*got 0$/);
    expect(() => filterTopK(X, 2.5)).toThrow(/got 2.5/);
  });
});

describe("top-p (nucleus)", () => {
  it("the chapter's p = 0.9 sits on a floating-point boundary: float64 keeps 4 tokens, float32 keeps 3", () => {
    // Exact arithmetic: 很好+一般+糟糕 = .9 ≥ p, so the smallest nucleus is those three.
    // HF's rule removes the ascending prefix with cumulative mass ≤ 1 − p.
    // float64: 1 − 0.9 = 0.09999999999999998 < P(其他) = 0.10000000000000002 -> nothing removed.
    expect(1 - 0.9).toBe(0.09999999999999998);
    expect(softmax(X)[0][3]).toBe(0.10000000000000002);
    expect(kept(filterTopP(X, 0.9)[0]).map((i) => WORDS[i])).toEqual(WORDS);
    // float32 (a tensor, like torch.float32): 1 − p rounds to the same float32 as P(其他) -> 其他 removed.
    expect(Math.fround(1 - 0.9)).toBe(Math.fround(0.1));
    const t = tf.tensor2d(X);
    const f = filterTopP(t, 0.9);
    expect(kept(f.arraySync()[0]).map((i) => WORDS[i])).toEqual(["很好", "一般", "糟糕"]);
    t.dispose();
    f.dispose();
  });

  it("away from the boundary both precisions agree with the chapter: p = 0.75 -> 3 tokens, 0.5 -> 2, 0.3 -> 1", () => {
    const t = tf.tensor2d(X);
    for (const [p, n] of [[0.75, 3], [0.5, 2], [0.3, 1], [0.95, 4]] as const) {
      expect(kept(filterTopP(X, p)[0])).toEqual([0, 1, 2, 3].slice(0, n));
      const f = filterTopP(t, p);
      expect(kept(f.arraySync()[0])).toEqual([0, 1, 2, 3].slice(0, n));
      f.dispose();
    }
    t.dispose();
    const q = softmax(filterTopP(X, 0.75))[0];
    [4 / 9, 3 / 9, 2 / 9, 0].forEach((v, w) => expect(q[w]).toBeCloseTo(v, 14));
  });

  it("is the smallest set of most likely tokens with mass ≥ p (slow version, random logits)", () => {
    const rng = new Rng(5);
    const rows = randRows(rng, 40, 8);
    for (const p of [0.1, 0.5, 0.8, 0.93, 1]) {
      const got = filterTopP(rows, p);
      rows.forEach((row, b) => expect(kept(got[b])).toEqual(slowTopPSet(row, p)));
    }
    // different rows of one batch keep different numbers of tokens
    expect(new Set(filterTopP(rows, 0.8).map((r) => kept(r).length)).size).toBeGreaterThan(1);
  });

  it("minTokensToKeep keeps at least that many of the most likely tokens", () => {
    expect(kept(filterTopP(X, 0.1)[0])).toEqual([0]);
    expect(kept(filterTopP(X, 0.1, 3)[0])).toEqual([0, 1, 2]);
    expect(kept(filterTopP(X, 0.75, 2)[0])).toEqual([0, 1, 2]); // p already keeps more
  });

  it("keeps or removes tied logits together", () => {
    // P = [.25, .25, .25, .25]: any 2 tokens reach p = 0.5, but which two is arbitrary, so all stay.
    expect(kept(filterTopP([[0, 0, 0, 0]], 0.5)[0])).toEqual([0, 1, 2, 3]);
    // A tie below the nucleus goes as a block: .5, .2, .2, .1 with p = 0.55 keeps .5 and both .2s.
    expect(kept(filterTopP([[0.5, 0.2, 0.2, 0.1].map(Math.log)], 0.55)[0])).toEqual([0, 1, 2]);
    expect(kept(filterTopP([[0.5, 0.2, 0.2, 0.1].map(Math.log)], 0.45)[0])).toEqual([0]);
  });

  it("rejects p outside (0, 1] and a bad minTokensToKeep", () => {
    expect(() => filterTopP(X, 0)).toThrow(/^p must be in \(0, 1\] .*got 0$/);
    expect(() => filterTopP(X, 1.2)).toThrow(/got 1.2/);
    expect(() => filterTopP(X, 0.5, 0)).toThrow(/minTokensToKeep must be an integer ≥ 1, got 0/);
  });
});

describe("min-p and repetition penalty", () => {
  it("min-p keeps P(w) ≥ pBase · max P", () => {
    expect(kept(filterMinP(X, 0.6)[0])).toEqual([0, 1]); // threshold .24
    expect(kept(filterMinP(X, 0.3)[0])).toEqual([0, 1, 2]); // threshold .12
    expect(kept(filterMinP(X, 0)[0])).toEqual([0, 1, 2, 3]);
    const rows = randRows(new Rng(6), 5, 9);
    const got = filterMinP(rows, 0.2);
    rows.forEach((row, b) => {
      const q = slowSoftmax(row);
      const m = Math.max(...q);
      expect(kept(got[b])).toEqual(q.map((v, i) => (v >= 0.2 * m ? i : -1)).filter((i) => i >= 0));
    });
    expect(() => filterMinP(X, 1.5)).toThrow(/^pBase must be in \[0, 1\] .*got 1.5$/);
  });

  it("repetition penalty divides positive logits and multiplies negative ones, once per seen token", () => {
    const got = repetitionPenalty([[2, -2, 0, 1], [2, -2, 0, 1]], [[0, 1, 2, 0, 0], [3]], 2);
    expect(got).toEqual([[1, -4, 0, 1], [2, -2, 0, 0.5]]);
    const same = repetitionPenalty([[2, -2]], [[0, 1]], 1);
    expect(same).toEqual([[2, -2]]);
    expect(() => repetitionPenalty(X, [[0]], 0)).toThrow(/^penalty must be a finite number > 0 .*got 0$/);
    expect(() => repetitionPenalty(X, [[7]], 1.2)).toThrow(/previousIds\[0\] must hold token ids in \[0, 4\), got 7/);
    expect(() => repetitionPenalty(X, [[0], [1]], 1.2)).toThrow(/one list of token ids per row of logits \(1\)/);
  });
});

describe("sample", () => {
  it("is reproducible for a seed, different for another seed", () => {
    const rows = randRows(new Rng(7), 64, 10);
    expect(sample(rows, { seed: 3 })).toEqual(sample(rows, { seed: 3 }));
    expect(sample(rows, { seed: 3 })).not.toEqual(sample(rows, { seed: 4 }));
    // a shared Rng keeps drawing: two calls differ, and replaying the generator replays them
    const r1 = new Rng(9), r2 = new Rng(9);
    const a = [sample(rows, { rng: r1 }), sample(rows, { rng: r1 })];
    expect(a[0]).not.toEqual(a[1]);
    expect([sample(rows, { rng: r2 }), sample(rows, { rng: r2 })]).toEqual(a);
  });

  it("draws by inverse CDF on float64: token w exactly when F(w−1) ≤ u < F(w)", () => {
    const rows = randRows(new Rng(8), 200, 6);
    const got = sample(rows, { seed: 11 });
    const rng = new Rng(11);
    rows.forEach((row, b) => {
      const u = rng.next();
      const q = slowSoftmax(row);
      let F = 0, w = 0;
      for (; w < q.length; w++) { F += q[w]; if (u < F) break; }
      expect(got[b]).toBe(Math.min(w, q.length - 1));
    });
  });

  it("a tensor and an array of the same float32 logits give the same tokens", () => {
    const rows = randRows(new Rng(10), 30, 16).map((r) => r.map(Math.fround));
    const t = tf.tensor2d(rows);
    for (const o of [{}, { topK: 5 }, { temperature: 0.7, minP: 0.05 }]) {
      expect(sample(t, { ...o, seed: 5 })).toEqual(sample(rows, { ...o, seed: 5 }));
    }
    t.dispose();
  });

  it("frequencies follow the chapter's distribution; with top-k 2 only 很好 and 一般 appear (4/7, 3/7)", () => {
    const N = 20000;
    const rows = Array.from({ length: N }, () => X[0]);
    const count = (ids: number[]) => [0, 1, 2, 3].map((w) => ids.filter((i) => i === w).length / N);
    const plain = count(sample(rows, { seed: 1 }));
    P.forEach((q, w) => expect(Math.abs(plain[w] - q)).toBeLessThan(0.015));
    const k2 = count(sample(rows, { topK: 2, seed: 2 }));
    expect(Math.abs(k2[0] - 4 / 7)).toBeLessThan(0.015);
    expect(Math.abs(k2[1] - 3 / 7)).toBeLessThan(0.015);
    expect(k2[2] + k2[3]).toBe(0);
  });

  it("does not leak tensors", () => {
    const t = tf.tensor2d(randRows(new Rng(12), 4, 8));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      sample(t, { topP: 0.9, seed: i });
      greedy(t);
    }
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
  });
});

describe("bad logits", () => {
  it("name the argument and what it got", () => {
    expect(() => greedy([[0, NaN, 1]])).toThrow(/^logits must not contain NaN, got NaN at \[0,1\]$/);
    const t1 = tf.tensor1d([1, 2]);
    expect(() => greedy(t1 as unknown as tf.Tensor2D)).toThrow(/^logits must be \[batch, vocab\], got a tensor of shape \[2\]$/);
    t1.dispose();
    expect(() => greedy([1, 2] as unknown as number[][])).toThrow(/logits must be \[batch, vocab\] .*got an array of number/);
    expect(() => greedy([[1, 2], [3]])).toThrow(/row 1 has 1/);
    expect(() => sample([[-Infinity, -Infinity]])).toThrow(/row 0 is all −Infinity/);
    expect(() => greedy([[Infinity, 0]])).toThrow(/\+Infinity at \[0,0\]/);
  });
});

describe("diversity measures", () => {
  it("distinct-n pools sequences; repetition rate is within each sequence", () => {
    expect(distinctN([1, 2, 1, 2], 1)).toBe(0.5);
    expect(distinctN([1, 2, 1, 2], 2)).toBeCloseTo(2 / 3, 15); // 12, 21, 12
    expect(repetitionRate([1, 2, 1, 2], 2)).toBeCloseTo(1 / 3, 15);
    expect(distinctN([[1, 2], [1, 2]], 2)).toBe(0.5); // the second sample repeats the first
    expect(repetitionRate([[1, 2], [1, 2]], 2)).toBe(0); // but neither repeats itself
    expect(distinctN([[1, 2], [2, 1]], 3)).toBe(0); // no 3-grams
    expect(repetitionRate([7, 7, 7, 7, 7], 1)).toBeCloseTo(0.8, 15);
    expect(() => distinctN([1, 2], 0)).toThrow(/^n must be an integer ≥ 1 .*got 0$/);
  });
});
