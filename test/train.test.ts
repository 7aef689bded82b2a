import { afterEach, describe, expect, it } from "vitest";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { tf, Rng } from "../lib/tf";
import {
  adamw, adamwUpdate, batches, cacheDir, cached, clipByGlobalNorm, disposeAdamW, evalLoss, learningRate,
  loadParams, saveParams, stableJSON, train, trainStep,
} from "../lib/train";
import type { Params } from "../lib/decoder";

function bits(t: tf.Tensor): Uint32Array {
  return new Uint32Array(new Float32Array(t.dataSync()).buffer.slice(0));
}

// A bigram model, the smallest language model: logits = onehot(x)·W + b, W [V,V].
const V = 6;
function bigram(seed: number): Params {
  return tf.tidy(() => ({
    w: tf.variable(tf.randomNormal([V, V], 0, 0.1, "float32", seed)),
    b: tf.variable(tf.zeros([V])),
  }));
}
function bigramLoss(p: Params, batch: tf.Tensor2D): tf.Scalar {
  const [B, T1] = batch.shape;
  const x = batch.slice([0, 0], [B, T1 - 1]).reshape([-1]) as tf.Tensor1D;
  const y = batch.slice([0, 1], [B, T1 - 1]).reshape([-1]) as tf.Tensor1D;
  const logits = tf.add(tf.matMul(tf.oneHot(x, V), p.w), p.b);
  return tf.losses.softmaxCrossEntropy(tf.oneHot(y, V), logits) as tf.Scalar;
}
// 0 1 2 3 4 5 0 1 2 …: every next token is determined, so a bigram model can reach loss ≈ 0.
const cycle = Int32Array.from({ length: 600 }, (_, i) => i % V);

// AdamW with plain loops (PyTorch's order of operations): the obviously-correct slow version.
function slowAdamW(p: number[], m: number[], v: number[], g: number[], decay: boolean[], t: number,
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; clip: number }): void {
  const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
  const scale = Math.min(1, o.clip / (norm + 1e-6));
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * scale;
    if (decay[i]) p[i] *= 1 - o.lr * o.wd;
    m[i] = o.b1 * m[i] + (1 - o.b1) * gi;
    v[i] = o.b2 * v[i] + (1 - o.b2) * gi * gi;
    const mhat = m[i] / (1 - o.b1 ** t), vhat = v[i] / (1 - o.b2 ** t);
    p[i] -= (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
  }
}

describe("AdamW", () => {
  it("one step matches the update computed by hand", () => {
    // p = 1, g = 0.5, η = 0.1, λ = 0.1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25,
    // matrix: p = 1·(1 − 0.01) − 0.1·0.5/(0.5 + 1e-8) = 0.89;  vector (no decay): 1 − 0.1 = 0.9
    const params: Params = { w: tf.variable(tf.tensor2d([[1]])), b: tf.variable(tf.tensor1d([1])) };
    const state = adamw(params, ["w", "b"], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    const grads = { w: tf.tensor2d([[0.5]]), b: tf.tensor1d([0.5]) };
    tf.dispose(adamwUpdate(state, params, grads, 0.1));
    expect(params.w.dataSync()[0]).toBeCloseTo(0.89, 6);
    expect(params.b.dataSync()[0]).toBeCloseTo(0.9, 6);
    expect(params.w.shape).toEqual([1, 1]);
    disposeAdamW(state);
    tf.dispose([params.w, params.b, grads.w, grads.b]);
  });

  it("five steps with mixed shapes and clipping match the loop version", () => {
    const rng = new Rng(3);
    const shapes: [string, number[]][] = [["a", [3, 2]], ["bias", [4]], ["c", [2, 1, 2]]];
    const params: Params = {};
    for (const [n, s] of shapes) params[n] = tf.variable(tf.tensor(Array.from({ length: s.reduce((x, y) => x * y) }, () => rng.next() - 0.5), s));
    const names = shapes.map(([n]) => n);
    const o = { lr: 0.05, b1: 0.8, b2: 0.9, eps: 1e-6, wd: 0.3, clip: 0.7 };
    const p = names.flatMap((n) => Array.from(params[n].dataSync()));
    const decay = names.flatMap((n) => Array(params[n].size).fill(params[n].rank >= 2));
    const m = p.map(() => 0), v = p.map(() => 0);
    const state = adamw(params, names, { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, clip: o.clip });
    for (let t = 1; t <= 5; t++) {
      const g = p.map(() => (rng.next() - 0.5) * 2);
      const grads: Params = {};
      let k = 0;
      for (const [n, s] of shapes) { grads[n] = tf.tensor(g.slice(k, k + params[n].size), s); k += params[n].size; }
      const norm = adamwUpdate(state, params, grads, o.lr);
      expect(norm.dataSync()[0]).toBeCloseTo(Math.sqrt(g.reduce((a, x) => a + x * x, 0)), 5);
      slowAdamW(p, m, v, g, decay, t, o);
      tf.dispose([norm, ...Object.values(grads)]);
    }
    const got = names.flatMap((n) => Array.from(params[n].dataSync()));
    got.forEach((x, i) => expect(x).toBeCloseTo(p[i], 5));
    names.forEach((n, i) => expect(params[n].shape).toEqual(shapes[i][1]));
    disposeAdamW(state);
    tf.dispose(Object.values(params));
  });

  it("refuses plain tensors and unknown names with one sentence", () => {
    const params: Params = { w: tf.tensor2d([[1]]) };
    expect(() => adamw(params, ["w"])).toThrow(/params\["w"\] must be a tf.Variable/);
    expect(() => adamw(params, ["nope"])).toThrow(/trainable name "nope" is not in params/);
    params.w.dispose();
  });
});

describe("learning-rate schedule", () => {
  const s = { steps: 100, lr: 1e-3, warmup: 10, minLr: 1e-4 };
  it("rises linearly to lr at the end of warm-up, then decays by a cosine to minLr", () => {
    expect(learningRate(1, s)).toBeCloseTo(1e-4, 12);
    expect(learningRate(5, s)).toBeCloseTo(5e-4, 12);
    expect(learningRate(10, s)).toBeCloseTo(1e-3, 12);
    expect(learningRate(55, s)).toBeCloseTo((1e-3 + 1e-4) / 2, 12); // half-way through the decay
    expect(learningRate(100, s)).toBeCloseTo(1e-4, 12);
    for (let t = 11; t <= 100; t++) expect(learningRate(t, s)).toBeLessThan(learningRate(t - 1, s));
  });
  it("defaults: 10% warm-up, minLr = lr/10; no warm-up works", () => {
    expect(learningRate(20, { steps: 200, lr: 1 })).toBeCloseTo(1, 12);
    expect(learningRate(200, { steps: 200, lr: 1 })).toBeCloseTo(0.1, 12);
    expect(learningRate(1, { steps: 4, lr: 1, warmup: 0, minLr: 0 })).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(() => learningRate(0, s)).toThrow(/step must be an integer in 1..100, got 0/);
  });
});

describe("clipByGlobalNorm", () => {
  it("scales all tensors together to the cap and reports the norm before clipping", () => {
    const g = [tf.tensor1d([3, 4]), tf.tensor2d([[12]])]; // ‖g‖ = √(9 + 16 + 144) = 13
    const a = clipByGlobalNorm(g, 1);
    expect(a.norm.dataSync()[0]).toBeCloseTo(13, 5);
    const flat = a.grads.flatMap((t) => Array.from(t.dataSync()));
    [3 / 13, 4 / 13, 12 / 13].forEach((x, i) => expect(flat[i]).toBeCloseTo(x, 5));
    expect(Math.hypot(...flat)).toBeCloseTo(1, 5);
    const b = clipByGlobalNorm(g, 100); // under the cap: untouched
    expect(b.grads.flatMap((t) => Array.from(t.dataSync()))).toEqual([3, 4, 12]);
    tf.dispose([...g, ...a.grads, a.norm, ...b.grads, b.norm]);
  });
});

describe("batches", () => {
  it("cuts [B, T+1] windows of the token array, the same ones for the same seed", () => {
    const tokens = Int32Array.from({ length: 50 }, (_, i) => i * 7);
    const draw = (seed: number) => {
      const next = batches(tokens, 3, 5, new Rng(seed));
      const out = [next(), next()].map((t) => { const a = t.arraySync() as number[][]; t.dispose(); return a; });
      return out;
    };
    const a = draw(1), b = draw(1), c = draw(2);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    for (const batch of a) {
      expect(batch.length).toBe(3);
      for (const row of batch) {
        expect(row.length).toBe(6);
        const s = row[0] / 7;
        expect(row).toEqual(Array.from({ length: 6 }, (_, t) => (s + t) * 7)); // contiguous
      }
    }
    const t = batches(tokens, 2, 4, new Rng(0))();
    expect(t.dtype).toBe("int32");
    t.dispose();
  });
  it("every start position can be drawn, including the last window", () => {
    const next = batches([0, 1, 2, 3], 64, 2, new Rng(5)); // windows start at 0 or 1
    const t = next();
    const firsts = new Set((t.arraySync() as number[][]).map((r) => r[0]));
    t.dispose();
    expect([...firsts].sort()).toEqual([0, 1]);
    expect(() => batches([1, 2], 1, 2, new Rng(0))).toThrow(/at least seqLen \+ 1 = 3 ids/);
  });
});

describe("train", () => {
  it("learns the cycle, logs progress, and reports every step's loss", () => {
    const params = bigram(1);
    const lines: string[] = [];
    const data = { train: batches(cycle, 8, 16, new Rng(1)), eval: batches(cycle, 8, 16, new Rng(2)) };
    const r = train(params, bigramLoss, data, { steps: 60, lr: 0.1, batchSize: 8, seqLen: 16, logEvery: 20, log: (l) => lines.push(l) });
    expect(r.steps).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(r.trainLoss.length).toBe(60);
    expect(r.evalSteps).toEqual([20, 40, 60]);
    expect(r.trainLoss[59]).toBeLessThan(r.trainLoss[0] / 4);
    expect(r.evalLoss[2]).toBeLessThan(0.3);
    expect(lines.length).toBe(3);
    expect(lines[0]).toMatch(/^step 20\/60 {2}loss \d+\.\d{3} {2}eval \d+\.\d{3} {2}\d+\.\d s$/);
    expect(evalLoss(params, bigramLoss, batches(cycle, 8, 16, new Rng(2)), 4)).toBeCloseTo(r.evalLoss[2], 5);
    tf.dispose(Object.values(params));
  });

  it("trains only the `trainable` names; the others keep their bits", () => {
    const params = bigram(2);
    tf.tidy(() => (params.b as tf.Variable).assign(tf.randomNormal([V], 0, 1, "float32", 9)));
    const before = { w: bits(params.w), b: bits(params.b) };
    train(params, bigramLoss, { train: batches(cycle, 4, 8, new Rng(3)) },
      { steps: 5, lr: 0.1, batchSize: 4, seqLen: 8, trainable: ["b"], log: () => {} });
    expect(bits(params.w)).toEqual(before.w);
    expect(bits(params.b)).not.toEqual(before.b);
    tf.dispose(Object.values(params));
  });

  it("checks its arguments with one sentence each", () => {
    const params = bigram(3);
    const data = { train: batches(cycle, 4, 8, new Rng(3)) };
    expect(() => train(params, bigramLoss, data, { steps: 2, lr: 0.1, batchSize: 5, seqLen: 8, log: () => {} }))
      .toThrow(/data.train\(\) must return \[batchSize, seqLen \+ 1\] = \[5, 9\], got \[4,9\]/);
    expect(() => train(params, bigramLoss, data, { steps: 0, lr: 0.1, batchSize: 4, seqLen: 8 }))
      .toThrow(/options.steps must be a positive integer, got 0/);
    expect(() => train(params, bigramLoss, data, { steps: 2, lr: 0.1, batchSize: 4, seqLen: 8, trainable: ["x"] }))
      .toThrow(/trainable name "x" is not in params/);
    tf.dispose(Object.values(params));
  });

  it("leaks no tensors: numTensors is flat over 200 steps of a linear model", () => {
    const params = bigram(4);
    const data = { train: batches(cycle, 4, 8, new Rng(4)), eval: batches(cycle, 4, 8, new Rng(5)) };
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    train(params, bigramLoss, data, { steps: 200, lr: 0.05, batchSize: 4, seqLen: 8, logEvery: 10, evalEvery: 50,
      log: () => counts.push(tf.memory().numTensors) });
    expect(tf.memory().numTensors).toBe(before);
    expect(new Set(counts.slice(1)).size).toBe(1); // the same count at every log line
    tf.dispose(Object.values(params));
  });

  it("leaks no tensors with the TINY decoder either, and its loss falls", async () => {
    const { TINY, initDecoder, lmLoss } = await import("../lib/decoder");
    const cfg = { ...TINY, vocabSize: 12, contextLength: 8, dModel: 16, nHeads: 2, dFF: 32 };
    const params = initDecoder(cfg, 1);
    const data = { train: batches(cycle, 4, 8, new Rng(6)) };
    const before = tf.memory().numTensors;
    const r = train(params, (p, b) => lmLoss(p, cfg, b), data, { steps: 200, lr: 3e-3, batchSize: 4, seqLen: 8, log: () => {} });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.trainLoss[199]).toBeLessThan(r.trainLoss[0] / 2);
    tf.dispose(Object.values(params));
  });

  it("trains a LoRA through the sockets on a frozen decoder: the base keeps its bits", async () => {
    const { TINY, initDecoder, lmLoss } = await import("../lib/decoder");
    const { initLora, loraAdapter } = await import("../lib/lora");
    const cfg = { ...TINY, vocabSize: 12, contextLength: 8, dModel: 16, nHeads: 2, dFF: 32 };
    const base = initDecoder(cfg, 2);
    const lora = initLora(cfg, { rank: 2, alpha: 2, targets: ["attn.qkv", "mlp.fc"], seed: 3 });
    const adapter = loraAdapter(lora, { rank: 2, alpha: 2 });
    const before = Object.fromEntries(Object.entries(base).map(([n, t]) => [n, bits(t)]));
    const loraB0 = bits(lora["h0.attn.qkv.lora.B"]);
    const r = train({ ...base, ...lora }, (p, b) => lmLoss(p, cfg, b, { adapter }), { train: batches(cycle, 4, 8, new Rng(7)) },
      { steps: 30, lr: 1e-2, batchSize: 4, seqLen: 8, trainable: Object.keys(lora), log: () => {} });
    for (const n of Object.keys(base)) expect(bits(base[n])).toEqual(before[n]);
    expect(bits(lora["h0.attn.qkv.lora.B"])).not.toEqual(loraB0); // the adapter's own tensors moved
    expect(r.trainLoss[29]).toBeLessThan(r.trainLoss[0]);
    tf.dispose([...Object.values(base), ...Object.values(lora)]);
  });

  it("trainStep returns the loss before the update and changes the parameters", () => {
    const params = bigram(5);
    const state = adamw(params, ["w", "b"]);
    const batch = batches(cycle, 4, 8, new Rng(0))();
    const l0 = tf.tidy(() => bigramLoss(params, batch)).dataSync()[0];
    const l = trainStep(params, bigramLoss, batch, state, 0.1);
    expect(l.dataSync()[0]).toBeCloseTo(l0, 6);
    expect(tf.tidy(() => bigramLoss(params, batch)).dataSync()[0]).toBeLessThan(l0);
    tf.dispose([l, batch]);
    disposeAdamW(state);
    tf.dispose(Object.values(params));
  });
});

describe("saveParams / loadParams", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "train-test-"));
  it("round-trips bit for bit (NaN, −0, subnormals, int32) as tf.Variables", () => {
    const special = new Float32Array([NaN, -0, 1.4e-45, -3.4e38, Infinity, 0.1]);
    const params: Params = {
      "h0.w": tf.tensor(special, [2, 3]),
      "h0.b": tf.tensor1d([1, 2, 3]),
      ids: tf.tensor1d([7, -8, 2147483647], "int32"),
      s: tf.scalar(2.5),
    };
    const file = path.join(dir, "sub", "p.safetensors");
    saveParams(params, file);
    const back = loadParams(file);
    expect(Object.keys(back)).toEqual(Object.keys(params));
    for (const n of Object.keys(params)) {
      expect(back[n]).toBeInstanceOf(tf.Variable);
      expect(back[n].shape).toEqual(params[n].shape);
      expect(back[n].dtype).toBe(params[n].dtype);
      expect(new Uint32Array(back[n].dataSync().buffer.slice(0))).toEqual(new Uint32Array(params[n].dataSync().buffer.slice(0)));
    }
    // The safetensors layout: u64 header length, JSON header, 8-aligned data.
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    expect(header["h0.w"]).toEqual({ dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
    expect(header.ids.dtype).toBe("I32");
    expect(buf.length).toBe(8 + n + 4 * (6 + 3 + 3 + 1));
    tf.dispose([...Object.values(params), ...Object.values(back)]);
  });
  it("says what is wrong with a file that is not a params file", () => {
    const bad = path.join(dir, "bad.bin");
    fs.writeFileSync(bad, "hello");
    expect(() => loadParams(bad)).toThrow(/is not a params file/);
    expect(() => loadParams(path.join(dir, "missing"))).toThrow(/does not exist/);
  });
});

describe("cached", () => {
  const saved = { cache: process.env.BOOK_CACHE, no: process.env.BOOK_NO_CACHE };
  afterEach(() => {
    for (const [k, v] of [["BOOK_CACHE", saved.cache], ["BOOK_NO_CACHE", saved.no]] as const) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  });

  it("computes once, then returns the stored result and params; BOOK_NO_CACHE=1 recomputes", async () => {
    process.env.BOOK_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "train-cache-"));
    delete process.env.BOOK_NO_CACHE;
    let calls = 0;
    const compute = async () => {
      calls++;
      return { loss: [2.5, 1.25], note: "ok", params: { w: tf.variable(tf.tensor2d([[1, 2]])) } as Params };
    };
    const key = { model: "bigram", steps: 3, opts: { b: 1, a: 2 } };
    const first = await cached(key, compute);
    const second = await cached({ opts: { a: 2, b: 1 }, steps: 3, model: "bigram" }, compute); // same key, other order
    expect(calls).toBe(1);
    expect(second.loss).toEqual([2.5, 1.25]);
    expect(second.note).toBe("ok");
    expect(Object.keys(second)).toEqual(Object.keys(first));
    expect(second.params.w).toBeInstanceOf(tf.Variable);
    expect(bits(second.params.w)).toEqual(bits(first.params.w));
    expect(cacheDir(key).startsWith(process.env.BOOK_CACHE)).toBe(true);
    expect(fs.readFileSync(path.join(cacheDir(key), "key.json"), "utf8").trim()).toBe(stableJSON(key));
    process.env.BOOK_NO_CACHE = "1";
    const third = await cached(key, compute);
    expect(calls).toBe(2);
    await cached({ ...key, steps: 4 }, () => 7);
    delete process.env.BOOK_NO_CACHE;
    expect(await cached({ ...key, steps: 4 }, () => 8)).toBe(7); // a plain JSON value, cached too
    tf.dispose([first.params.w, second.params.w, third.params.w]);
  });
  it("stableJSON sorts keys at every depth", () => {
    expect(stableJSON({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
  });
});
