import { describe, it, expect } from "vitest";
import { tf, Rng } from "../lib/tf";
import {
  embed, sinusoidalPositions, positionalEncoding, layerNorm, gelu, mlp, transformerBlock, blockShapes, initParams,
  crossEntropy,
} from "../lib/layers";
import { multiHeadAttention, linear, Params } from "../lib/attention";

function rand(rng: Rng, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale), shape);
}

function maxAbs(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

/** Central finite differences of a scalar function at x (float32: eps 1e-2). */
function finiteDiff(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, eps = 1e-2): Float32Array {
  const base = x.dataSync().slice();
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const at = (d: number) => tf.tidy(() => {
      const y = base.slice(); y[i] += d;
      return f(tf.tensor(y, x.shape)).dataSync()[0];
    });
    out[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return out;
}

describe("embeddings and positions", () => {
  it("embed picks row ids[b,t] of the table", () => {
    const table = tf.tensor2d([[0, 1], [10, 11], [20, 21]]);
    const out = embed(table, tf.tensor2d([[2, 0], [1, 1]], [2, 2], "int32"));
    expect(out.arraySync()).toEqual([[[20, 21], [0, 1]], [[10, 11], [10, 11]]]);
    expect(() => embed(table, tf.zeros([2, 2]) as tf.Tensor2D)).toThrow(/ids must be an int32 \[batch, seq\] tensor, got float32/);
  });

  it("sinusoidal positions follow Vaswani et al. 2017, odd width included", () => {
    const n = 6, d = 5;
    const pe = sinusoidalPositions(n, d).arraySync();
    for (let p = 0; p < n; p++) for (let i = 0; i < d; i++) {
      const freq = 1 / Math.pow(10000, (2 * Math.floor(i / 2)) / d);
      expect(pe[p][i]).toBeCloseTo(i % 2 === 0 ? Math.sin(p * freq) : Math.cos(p * freq), 6);
    }
    expect(pe[3][0]).toBeCloseTo(Math.sin(3), 6);
  });

  it("positionalEncoding continues at an offset (what a KV cache needs) and guards the context", () => {
    const all = sinusoidalPositions(8, 4);
    expect(maxAbs(positionalEncoding("sinusoidal", undefined, 5, 3, 4, 8), all.slice([5, 0], [3, 4]))).toBe(0);
    const wpe = tf.range(0, 32).reshape([8, 4]);
    expect(positionalEncoding("learned", wpe, 2, 1, 4, 8).arraySync()).toEqual([[8, 9, 10, 11]]);
    expect(() => positionalEncoding("learned", wpe, 6, 3, 4, 8)).toThrow(/must be below the context length 8/);
  });
});

// the obviously-correct forms, written as plain tfjs ops so autodiff gives the reference gradient
const refLayerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).div(variance.add(1e-5).sqrt()).mul(g).add(b);
};
const refGelu = (x: tf.Tensor) =>
  x.mul(0.5).mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1));

describe("LayerNorm", () => {
  const rng = new Rng(2);
  const x = rand(rng, [2, 3, 5], 2), g = rand(rng, [5]).add(1), b = rand(rng, [5]);

  it("matches a loop over rows", () => {
    const out = layerNorm(x, g, b).arraySync() as number[][][];
    const xa = x.arraySync() as number[][][], ga = g.arraySync() as number[], ba = b.arraySync() as number[];
    for (const [i, plane] of xa.entries()) for (const [j, row] of plane.entries()) {
      const mu = row.reduce((s, v) => s + v, 0) / row.length;
      const vr = row.reduce((s, v) => s + (v - mu) ** 2, 0) / row.length;
      row.forEach((v, k) => expect(out[i][j][k]).toBeCloseTo(ga[k] * (v - mu) / Math.sqrt(vr + 1e-5) + ba[k], 5));
    }
  });

  it("its hand-written gradient equals autodiff of the plain formula, and finite differences", () => {
    const w = rand(rng, [2, 3, 5]);
    const loss = (f: typeof refLayerNorm) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => f(xx, gg, bb).mul(w).sum() as tf.Scalar;
    const mine = tf.grads(loss(layerNorm))([x, g, b]);
    const ref = tf.grads(loss(refLayerNorm))([x, g, b]);
    for (let i = 0; i < 3; i++) expect(maxAbs(mine[i], ref[i])).toBeLessThan(1e-5);
    const fd = finiteDiff((xx) => loss(layerNorm)(xx, g, b), x);
    const gx = mine[0].dataSync();
    fd.forEach((v, i) => expect(Math.abs(v - gx[i])).toBeLessThan(3e-3));
  });

  it("checks the shapes of g and b", () => {
    expect(() => layerNorm(x, tf.ones([4]), b)).toThrow("g and b must be [5] to match x [2,3,5], got [4] and [5]");
  });
});

describe("GELU (tanh form)", () => {
  const xs = tf.linspace(-4, 4, 17);

  it("matches the formula point by point", () => {
    const out = gelu(xs).dataSync();
    xs.dataSync().forEach((v, i) => {
      const ref = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      expect(out[i]).toBeCloseTo(ref, 6);
    });
    // and the tanh form is within 1e-3 of the exact x·Φ(x) (Hendrycks & Gimpel 2016): Φ(1) = 0.841345
    expect(gelu(tf.scalar(1)).dataSync()[0]).toBeCloseTo(0.841345, 3);
  });

  it("its hand-written gradient equals autodiff of the plain formula, and finite differences", () => {
    const mine = tf.grad((x: tf.Tensor) => gelu(x).sum())(xs);
    const ref = tf.grad((x: tf.Tensor) => refGelu(x).sum())(xs);
    expect(maxAbs(mine, ref)).toBeLessThan(1e-5);
    const fd = finiteDiff((x) => gelu(x).sum() as tf.Scalar, xs);
    const g = mine.dataSync();
    fd.forEach((v, i) => expect(Math.abs(v - g[i])).toBeLessThan(3e-3));
  });
});

function randomParams(shapes: [string, number[]][], seed: number): Params {
  const rng = new Rng(seed);
  const p: Params = {};
  for (const [n, s] of shapes) p[n] = n.endsWith(".g") ? rand(rng, s, 0.3).add(1) : rand(rng, s, 0.4);
  return p;
}

describe("MLP and the pre-LN block", () => {
  const D = 6, F = 10, H = 3;
  const x = rand(new Rng(4), [2, 4, D]) as tf.Tensor3D;

  it("mlp = GELU(x·W_fc + b_fc)·W_proj + b_proj, checked with loops", () => {
    const p = randomParams(blockShapes("h0", D, F), 1);
    const out = mlp(p, "h0.mlp", x).arraySync();
    const W1 = p["h0.mlp.fc.w"].arraySync() as number[][], b1 = p["h0.mlp.fc.b"].arraySync() as number[];
    const W2 = p["h0.mlp.proj.w"].arraySync() as number[][], b2 = p["h0.mlp.proj.b"].arraySync() as number[];
    const g = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    x.arraySync().forEach((plane, i) => plane.forEach((row, t) => {
      const hid = b1.map((bb, j) => g(row.reduce((s, v, k) => s + v * W1[k][j], bb)));
      b2.forEach((bb, j) => expect(out[i][t][j]).toBeCloseTo(hid.reduce((s, v, k) => s + v * W2[k][j], bb), 5));
    }));
  });

  it("the block is x + Attn(LN₁(x)), then + MLP(LN₂(·))", () => {
    const p = randomParams(blockShapes("h0", D, F), 2);
    const { h } = transformerBlock(p, "h0", x, H, { causal: true });
    const a = x.add(multiHeadAttention(p, "h0.attn", refLayerNorm(x, p["h0.ln1.g"], p["h0.ln1.b"]) as tf.Tensor3D, H, { causal: true }).out);
    const ref = a.add(mlp(p, "h0.mlp", refLayerNorm(a, p["h0.ln2.g"], p["h0.ln2.b"]) as tf.Tensor3D));
    expect(maxAbs(h, ref)).toBeLessThan(1e-5);
  });

  it("the cross-attention variant adds x + CrossAttn(LN₂(x), memory) between them, with ln3 before the MLP", () => {
    const p = randomParams(blockShapes("dec.h0", D, F, true), 3);
    const mem = rand(new Rng(5), [2, 3, D]) as tf.Tensor3D;
    const { h, crossWeights } = transformerBlock(p, "dec.h0", x, H, { causal: true, memory: mem, returnWeights: true });
    expect(crossWeights!.shape).toEqual([2, H, 4, 3]);
    const a = x.add(multiHeadAttention(p, "dec.h0.attn", refLayerNorm(x, p["dec.h0.ln1.g"], p["dec.h0.ln1.b"]) as tf.Tensor3D, H, { causal: true }).out);
    const c = a.add(multiHeadAttention(p, "dec.h0.xattn", refLayerNorm(a, p["dec.h0.ln2.g"], p["dec.h0.ln2.b"]) as tf.Tensor3D, H, { memory: mem }).out);
    const ref = c.add(mlp(p, "dec.h0.mlp", refLayerNorm(c, p["dec.h0.ln3.g"], p["dec.h0.ln3.b"]) as tf.Tensor3D));
    expect(maxAbs(h, ref)).toBeLessThan(1e-5);
  });

  it("initParams: deterministic per seed, GPT-2 scales", () => {
    const shapes = blockShapes("h0", 64, 256);
    const a = initParams(shapes, 2, 7), b = initParams(shapes, 2, 7);
    expect(maxAbs(a["h0.mlp.fc.w"], b["h0.mlp.fc.w"])).toBe(0);
    const std = (t: tf.Tensor) => tf.tidy(() => Math.sqrt(tf.moments(t).variance.dataSync()[0]));
    expect(std(a["h0.attn.qkv.w"])).toBeCloseTo(0.02, 3);
    expect(std(a["h0.mlp.proj.w"])).toBeCloseTo(0.01, 3);
  });

  it("linear flattens to 2-D so gradients reach a [in, out] weight", () => {
    const w = tf.variable(rand(new Rng(6), [D, 3]));
    const { grads } = tf.variableGrads(() => linear(x, w).sum() as tf.Scalar, [w]);
    expect(grads[w.name].shape).toEqual([D, 3]);
  });
});

describe("crossEntropy", () => {
  it("is −log softmax at the target, averaged (weights ignore rows)", () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0], [5, -1, 2]]);
    const targets = tf.tensor1d([2, 0, 1], "int32");
    const la = logits.arraySync(), ta = [2, 0, 1];
    const ce = la.map((l, i) => Math.log(l.reduce((s, v) => s + Math.exp(v), 0)) - l[ta[i]]);
    expect(crossEntropy(logits, targets).dataSync()[0]).toBeCloseTo((ce[0] + ce[1] + ce[2]) / 3, 5);
    const w = tf.tensor1d([1, 0, 1]);
    expect(crossEntropy(logits, targets, w).dataSync()[0]).toBeCloseTo((ce[0] + ce[2]) / 2, 5);
  });
});
