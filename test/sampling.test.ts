import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import {
  applyTemperature, beamSearch, decoderLogProbs, distinctN, exp, filterMinP, filterTopK, filterTopP, generate, greedy,
  LanguageModel, repetitionPenalty, repetitionRate, sample, softmax, tokenLogProbs,
} from "../lib/sampling";
import { Adapter, DecoderConfig, Params, decoderForward, initDecoder, lmLoss } from "../lib/decoder";

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

describe("exp from + − × ÷ (the same bits in every JavaScript engine)", () => {
  it("is within one ulp or so of Math.exp over the whole range, exact at 0, 0 at −Infinity", () => {
    const rng = new Rng(13);
    let worst = 0;
    for (let i = 0; i < 20000; i++) {
      const x = i % 2 ? (rng.next() * 2 - 1) * 40 : -rng.next() * 700; // normal results (subnormals hold fewer bits)
      worst = Math.max(worst, Math.abs(exp(x) - Math.exp(x)) / Math.exp(x));
    }
    expect(worst).toBeLessThan(4.5e-16); // 2 ulp
    expect(exp(0)).toBe(1);
    expect(exp(-Infinity)).toBe(0);
    expect(exp(-745)).toBe(5e-324); // the smallest subnormal, as Math.exp
    expect(exp(710)).toBe(Infinity);
    expect(Math.abs(exp(709) / Math.exp(709) - 1)).toBeLessThan(4.5e-16);
  });
});

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

// ---- generation with a small random decoder ----
const CFG: DecoderConfig = { vocabSize: 13, contextLength: 10, dModel: 16, nLayers: 2, nHeads: 2, dFF: 32, positional: "learned" };

// A random model with a peaked next-token distribution (the token table scaled up), so greedy has no near-ties.
function makeModel(seed: number): LanguageModel {
  const params: Params = { ...initDecoder(CFG, seed) };
  params["wte"] = tf.mul(params["wte"], 40);
  return { params, config: CFG };
}
function freeModel(m: LanguageModel): void {
  Object.values(m.params).forEach((t) => t.dispose());
}
// The slow version of generate: the whole (cropped) prefix every step, then one pick per row.
function slowLogits(m: LanguageModel, seqs: number[][], adapter?: Adapter): number[][] {
  return tf.tidy(() => {
    const win = seqs.map((s) => s.slice(-m.config.contextLength));
    const { logits } = decoderForward(m.params, m.config, tf.tensor2d(win, [win.length, win[0].length], "int32"), { adapter });
    const T = win[0].length;
    return (logits.slice([0, T - 1, 0], [win.length, 1, m.config.vocabSize]).reshape([win.length, -1]) as tf.Tensor2D).arraySync();
  });
}

describe("generate", () => {
  const model = makeModel(21);

  it("greedy decoding equals argmax of a full forward pass each step, with and without the KV cache", () => {
    const prompt = [[1, 2, 3], [4, 4, 0]];
    const seqs = prompt.map((r) => r.slice());
    for (let i = 0; i < 6; i++) greedy(slowLogits(model, seqs)).forEach((w, b) => seqs[b].push(w));
    expect(generate(model, prompt, { maxNewTokens: 6, temperature: 0 })).toEqual(seqs);
    expect(generate(model, prompt, { maxNewTokens: 6, temperature: 0, useCache: false })).toEqual(seqs);
    // a batch row gives what that prompt gives alone
    expect(generate(model, prompt[1], { maxNewTokens: 6, temperature: 0 })).toEqual(seqs[1]);
    expect(new Set(seqs.map((s) => s.slice(3).join())).size).toBe(2);
  });

  it("sampling equals the slow loop that draws from one seeded Rng; cache on/off agree; seeds reproduce", () => {
    const prompt = [[5, 6], [7, 8], [9, 10]];
    const o = { maxNewTokens: 7, temperature: 1.3, topK: 8, topP: 0.95, repetitionPenalty: 1.5, seed: 4 };
    const rng = new Rng(4);
    const seqs = prompt.map((r) => r.slice());
    for (let i = 0; i < 7; i++) {
      const x = repetitionPenalty(tf.tensor2d(slowLogits(model, seqs)), seqs, 1.5);
      sample(x, { ...o, rng }).forEach((w, b) => seqs[b].push(w));
      x.dispose();
    }
    const got = generate(model, prompt, o);
    expect(got).toEqual(seqs);
    expect(generate(model, prompt, { ...o, useCache: false })).toEqual(got);
    expect(generate(model, prompt, o)).toEqual(got);
    expect(generate(model, prompt, { ...o, seed: 5 })).not.toEqual(got);
  });

  it("crops a prompt longer than the context from the left and slides past the context", () => {
    const C = CFG.contextLength;
    const long = Array.from({ length: C + 4 }, (_, i) => (i * 5) % CFG.vocabSize);
    const got = generate(model, long, { maxNewTokens: 5, temperature: 0 }) as number[];
    expect(got.slice(0, long.length)).toEqual(long); // the prompt comes back whole
    const fromWindow = generate(model, long.slice(-C), { maxNewTokens: 5, temperature: 0 }) as number[];
    expect(got.slice(long.length)).toEqual(fromWindow.slice(C));
    // crossing the context during generation: cache and no cache still agree with the slow loop
    const short = long.slice(0, C - 2);
    const seqs = [short.slice()];
    for (let i = 0; i < 6; i++) seqs[0].push(greedy(slowLogits(model, seqs))[0]);
    expect(generate(model, short, { maxNewTokens: 6, temperature: 0 })).toEqual(seqs[0]);
    expect(generate(model, short, { maxNewTokens: 6, temperature: 0, useCache: false })).toEqual(seqs[0]);
  });

  it("passes the adapter to every forward pass; leaks no tensors", () => {
    const shift = tf.tensor1d(Array.from({ length: CFG.dModel }, (_, i) => (i % 3) - 1));
    const adapter: Adapter = { residual: (layer, h) => (layer === 1 ? tf.add(h, tf.mul(shift, 3)) : h) };
    const prompt = [3, 1, 4];
    const seqs = [prompt.slice()];
    for (let i = 0; i < 5; i++) seqs[0].push(greedy(slowLogits(model, seqs, adapter))[0]);
    const before = tf.memory().numTensors;
    expect(generate(model, prompt, { maxNewTokens: 5, temperature: 0, adapter })).toEqual(seqs[0]);
    expect(generate(model, prompt, { maxNewTokens: 5, temperature: 0 })).not.toEqual(seqs[0]);
    generate(model, [prompt, prompt], { maxNewTokens: 12, topP: 0.9 });
    expect(tf.memory().numTensors).toBe(before);
    shift.dispose();
  });

  it("rejects bad prompts and options in one sentence", () => {
    expect(() => generate(model, [[1, 2], [3]], { maxNewTokens: 2 })).toThrow(/^prompt rows must all have the same length 2 .*row 1 has 1$/);
    expect(() => generate(model, [1, 99], { maxNewTokens: 2 })).toThrow(/prompt must hold token ids in \[0, 13\), got 99/);
    expect(() => generate(model, [1], { maxNewTokens: -1 })).toThrow(/^maxNewTokens must be an integer ≥ 0, got -1$/);
    expect(() => generate(model, [1], { maxNewTokens: 1, topK: 0 })).toThrow(/^k must be/);
    expect(() => generate(model, [1], { maxNewTokens: 1, repetitionPenalty: -2 })).toThrow(/^penalty must be/);
    expect(generate(model, [1, 2], { maxNewTokens: 0 })).toEqual([1, 2]);
  });
});

describe("beam search", () => {
  // tokens 0 = A, 1 = B, 2 = EOS; after any other prefix the next token is uniform
  const TABLE: Record<string, number[]> = {
    "9": [0.5, 0.1, 0.4],
    "9,0": [0.8, 0.1, 0.1],
    "9,0,0": [0.1, 0.1, 0.8],
  };
  const calls: number[] = [];
  const step = (seqs: number[][]) => {
    calls.push(seqs.length);
    return seqs.map((s) => (TABLE[s.join()] ?? [1 / 3, 1 / 3, 1 / 3]).map(Math.log));
  };

  it("finds a better sequence than greedy when the best first token is a trap (no EOS, α = 0)", () => {
    // after A: .3/.3/.4, after B: .9/.05/.05. Greedy: A then EOS-less best .4 -> .24; beam 2: B, A -> .36.
    const trap = (seqs: number[][]) => seqs.map((s) => {
      const key = s.slice(1).join();
      const p = key === "" ? [0.6, 0.4, 0] : key === "0" ? [0.3, 0.3, 0.4] : key === "1" ? [0.9, 0.05, 0.05] : [1 / 3, 1 / 3, 1 / 3];
      return p.map(Math.log);
    });
    const g = beamSearch(trap, [9], { numBeams: 1, maxNewTokens: 2, lengthPenalty: 0 });
    expect(g[0].tokens).toEqual([9, 0, 2]);
    expect(g[0].logProb).toBeCloseTo(Math.log(0.24), 12);
    const b = beamSearch(trap, [9], { numBeams: 2, maxNewTokens: 2, lengthPenalty: 0 });
    expect(b[0].tokens).toEqual([9, 1, 0]);
    expect(b[0].logProb).toBeCloseTo(Math.log(0.36), 12);
    expect(b[1].logProb).toBeCloseTo(Math.log(0.24), 12); // second best: A, EOS (token 2 is no EOS here)
  });

  it("scores finished hypotheses by Σ log P / (generated length incl. EOS)^α, as HF", () => {
    // worked by hand: finished [EOS] (.4, length 1) and [A, A, EOS] (.8·.5·.8 = .32, length 3);
    // still running at the end: [A, A, A] and [A, A, B] (.04 each, length 3)
    const o = { numBeams: 2, maxNewTokens: 3, eosId: 2 };
    const total = beamSearch(step, [9], { ...o, lengthPenalty: 0 });
    expect(total.map((h) => h.tokens)).toEqual([[9, 2], [9, 0, 0, 2]]);
    expect(total[0].score).toBeCloseTo(Math.log(0.4), 12);
    expect(total[1].score).toBeCloseTo(Math.log(0.32), 12);
    const perToken = beamSearch(step, [9], { ...o, lengthPenalty: 1 });
    expect(perToken.map((h) => h.tokens)).toEqual([[9, 0, 0, 2], [9, 2]]);
    expect(perToken[0].score).toBeCloseTo(Math.log(0.32) / 3, 12);
    expect(perToken[0].logProb).toBeCloseTo(Math.log(0.32), 12);
    expect(perToken.every((h) => h.finished)).toBe(true);
    const wide = beamSearch(step, [9], { ...o, numBeams: 4, lengthPenalty: 1 });
    expect(wide.some((h) => !h.finished && h.tokens.length === 4)).toBe(true);
    expect(wide.map((h) => h.score)).toEqual([...wide.map((h) => h.score)].sort((a, c) => c - a));
  });

  it("width 1 is greedy: on the hand-made table with EOS, and on a decoder", () => {
    expect(beamSearch(step, [9], { numBeams: 1, maxNewTokens: 3, eosId: 2, lengthPenalty: 0 })[0].tokens).toEqual([9, 0, 0, 2]);
    const model = makeModel(22);
    const prompt = [2, 7, 1];
    const g = generate(model, prompt, { maxNewTokens: 8, temperature: 0 });
    const b = beamSearch(decoderLogProbs(model), prompt, { numBeams: 1, maxNewTokens: 8 });
    expect(b[0].tokens).toEqual(g);
    expect(b.length).toBe(1);
    freeModel(model);
  });

  it("stops as soon as no running beam can beat the finished ones", () => {
    // after the prompt EOS has probability .9 for every beam, and every later step too
    const eosy = (seqs: number[][]) => seqs.map(() => [0.05, 0.05, 0.9].map(Math.log));
    calls.length = 0;
    const counted = (seqs: number[][]) => { calls.push(1); return eosy(seqs); };
    const h = beamSearch(counted, [9], { numBeams: 2, maxNewTokens: 50, eosId: 2, lengthPenalty: 0 });
    expect(h[0].tokens).toEqual([9, 2]);
    expect(calls.length).toBeLessThan(5);
  });

  it("an EOS ranked below the first numBeams candidates does not become a hypothesis (as HF)", () => {
    // tokens A B C EOS(3). Step 2 ranks A·EOS .25 (finished), A·A .20, B·EOS .15 (rank 2 ≥ numBeams:
    // dropped), B·A .09; step 3 is uniform, so A·A·A ends at .05 — below the dropped .15, which must not come back.
    const T: Record<string, number[]> = { "9": [0.5, 0.3, 0.2, 0], "9,0": [0.4, 0.1, 0, 0.5], "9,1": [0.3, 0.2, 0, 0.5] };
    const f = (seqs: number[][]) => seqs.map((s) => (T[s.join()] ?? [0.25, 0.25, 0.25, 0.25]).map(Math.log));
    const h = beamSearch(f, [9], { numBeams: 2, maxNewTokens: 3, eosId: 3, lengthPenalty: 0 });
    expect(h.map((x) => x.tokens)).toEqual([[9, 0, 3], [9, 0, 0, 0]]);
    expect(h[1].logProb).toBeCloseTo(Math.log(0.05), 12);
  });

  it("does not stop early while a long running beam can still win under α = 1", () => {
    // EOS .6 at once (score log .6 ≈ −0.51), or A .4 then A .99 each step: after 10 tokens the
    // running beam scores (log .4 + 9 log .99)/10 ≈ −0.10 and wins.
    const f = (seqs: number[][]) => seqs.map((s) => (s.length === 1 ? [0.4, 0, 0.6] : [0.99, 0, 0.01]).map(Math.log));
    const h = beamSearch(f, [9], { numBeams: 1, maxNewTokens: 10, eosId: 2, lengthPenalty: 1 });
    expect(h[0].tokens).toEqual([9, ...Array(10).fill(0)]);
    expect(h[0].score).toBeCloseTo((Math.log(0.4) + 9 * Math.log(0.99)) / 10, 12);
    expect(h[0].finished).toBe(false);
  });

  it("rejects bad options and mismatched step outputs", () => {
    expect(() => beamSearch(step, [9], { numBeams: 0, maxNewTokens: 2 })).toThrow(/^numBeams must be an integer ≥ 1, got 0$/);
    expect(() => beamSearch((q) => q.map(() => [0, 0]), [9], { numBeams: 2, maxNewTokens: 2 })).not.toThrow();
    expect(() => beamSearch(() => [[0, NaN]], [9], { numBeams: 2, maxNewTokens: 2 })).toThrow(/stepLogProbs\(sequences\) must not contain NaN/);
    expect(() => beamSearch(() => [[0, -1], [0, -1]], [9], { numBeams: 2, maxNewTokens: 2 })).toThrow(/one row per sequence \(1\), got 2/);
  });
});

describe("tokenLogProbs", () => {
  const model = makeModel(23);
  const C = CFG.contextLength;
  // the slow version: decoderLogProbs on every prefix, one at a time
  const slow = (seq: number[], from: number) => seq.slice(from).map((w, i) => (decoderLogProbs(model)([seq.slice(0, from + i)]) as number[][])[0][w]);

  it("equals decoderLogProbs of every prefix, inside the context and past it (windows of the last C tokens)", () => {
    const rng = new Rng(5);
    const seqs = [0, 1].map(() => Array.from({ length: C + 6 }, () => rng.int(CFG.vocabSize)));
    const before = tf.memory().numTensors;
    const got = tokenLogProbs(model, seqs, 3);
    expect(tf.memory().numTensors).toBe(before);
    seqs.forEach((s, b) => {
      const want = slow(s, 3);
      expect(got[b].length).toBe(want.length);
      got[b].forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    });
    // one sequence, from past the context only
    const late = tokenLogProbs(model, seqs[1], C + 2);
    expect(late.length).toBe(4);
    late.forEach((v, i) => expect(v).toBeCloseTo(slow(seqs[1], C + 2)[i], 4));
    expect(got[0]).not.toEqual(got[1]);
  });

  it("its −mean over a window of C + 1 tokens is lmLoss", () => {
    const rng = new Rng(6);
    const seq = Array.from({ length: C + 1 }, () => rng.int(CFG.vocabSize));
    const lp = tokenLogProbs(model, seq, 1);
    const loss = tf.tidy(() => lmLoss(model.params, CFG, tf.tensor2d([seq], [1, C + 1], "int32")).dataSync()[0]);
    expect(-lp.reduce((a, b) => a + b, 0) / lp.length).toBeCloseTo(loss, 4);
    lp.forEach((v) => expect(v).toBeLessThanOrEqual(0));
  });

  it("rejects a bad start, unequal rows and unknown ids", () => {
    expect(() => tokenLogProbs(model, [1, 2, 3], 0)).toThrow(/^from must be an integer in \[1, 3\) .*got 0$/);
    expect(() => tokenLogProbs(model, [1, 2, 3], 3)).toThrow(/^from must be an integer in \[1, 3\)/);
    expect(() => tokenLogProbs(model, [[1, 2, 3], [1, 2]], 1)).toThrow(/^tokens rows must all have the same length 3/);
    expect(() => tokenLogProbs(model, [1, 99], 1)).toThrow(/^tokens must hold token ids in \[0, 13\), got 99/);
  });
});
