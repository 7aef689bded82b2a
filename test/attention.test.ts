import { describe, it, expect } from "vitest";
import { tf, Rng } from "../lib/tf";
import {
  MASKED, causalMask, paddingMask, scaledDotProductAttention, splitHeads, mergeHeads, multiHeadAttention,
  crossKeysValues, linear, Params, localMask, stridedMask, meanAttentionDistance,
} from "../lib/attention";

// ---- obviously-correct slow versions over plain arrays -------------------------------------------
type M = number[][];

function rand(rng: Rng, shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Array.from({ length: n }, () => rng.next() * 2 - 1), shape);
}

function matmul(a: M, b: M): M {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
}

/** One head: softmax(q·kᵀ/√d + mask)·v with explicit loops; mask[i][j] allowed or not. */
function naiveAttention(q: M, k: M, v: M, allowed: (i: number, j: number) => boolean): { out: M; w: M } {
  const d = q[0].length;
  const w = q.map((qi, i) => {
    const s = k.map((kj, j) => {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += qi[c] * kj[c];
      return dot / Math.sqrt(d) + (allowed(i, j) ? 0 : MASKED);
    });
    const mx = Math.max(...s);
    const e = s.map((x) => Math.exp(x - mx));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  });
  return { out: matmul(w, v), w };
}

function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(Infinity) as number[];
  const fb = (b as number[]).flat(Infinity) as number[];
  expect(fa.length).toBe(fb.length);
  return fa.reduce((m, x, i) => Math.max(m, Math.abs(x - fb[i])), 0);
}

describe("masks", () => {
  it("causalMask allows j ≤ i + (s − t), also with an offset from a cache", () => {
    const m = causalMask(3, 5).arraySync();
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) expect(m[i][j]).toBe(j <= i + 2 ? 0 : MASKED);
    expect(causalMask(2, 2).arraySync()).toEqual([[0, MASKED], [0, 0]]);
  });

  it("paddingMask masks the keys past each row's length, shaped [B,1,1,S]", () => {
    const m = paddingMask([2, 4, 0], 4);
    expect(m.shape).toEqual([3, 1, 1, 4]);
    expect(m.arraySync().map((r) => r[0][0])).toEqual([[0, 0, MASKED, MASKED], [0, 0, 0, 0], [MASKED, MASKED, MASKED, MASKED]]);
  });

  it("rejects bad arguments with one sentence", () => {
    expect(() => causalMask(3, 2)).toThrow(/s must be an integer ≥ t = 3/);
    expect(() => paddingMask([5], 4)).toThrow(/lengths\[0\] must be an integer in \[0, 4\], got 5/);
  });
});

describe("sparse masks (local, strided)", () => {
  const cases: [string, (t: number, s: number) => tf.Tensor2D, (back: number) => boolean][] = [
    ["localMask window 3", (t, s) => localMask(t, 3, s), (back) => back < 3],
    ["localMask window 1 (only itself)", (t, s) => localMask(t, 1, s), (back) => back === 0],
    ["stridedMask stride 3", (t, s) => stridedMask(t, 3, s), (back) => back < 3 || back % 3 === 0],
  ];
  for (const [name, make, keep] of cases) {
    for (const [t, s] of [[7, 7], [3, 8]]) {
      it(`${name} matches the loop (t=${t}, s=${s}), never allows a future key`, () => {
        const m = make(t, s).arraySync();
        for (let i = 0; i < t; i++) for (let j = 0; j < s; j++) {
          const back = i + (s - t) - j;
          expect(m[i][j]).toBe(back >= 0 && keep(back) ? 0 : MASKED);
        }
      });
    }
  }

  it("a window as long as the sequence is the causal mask; stride 1 too", () => {
    expect(localMask(6, 6).arraySync()).toEqual(causalMask(6, 6).arraySync());
    expect(stridedMask(5, 1, 7).arraySync()).toEqual(causalMask(5, 7).arraySync());
  });

  it("local keeps t·w − w(w−1)/2 entries of t(t+1)/2", () => {
    const t = 20, w = 4;
    const kept = localMask(t, w).equal(0).sum().dataSync()[0];
    expect(kept).toBe(t * w - (w * (w - 1)) / 2);
  });

  it("rejects bad arguments with one sentence", () => {
    expect(() => localMask(4, 0)).toThrow("window must be a positive integer (keys each query sees), got 0");
    expect(() => stridedMask(4, 2.5)).toThrow("stride must be a positive integer, got 2.5");
    expect(() => localMask(4, 2, 3)).toThrow(/s must be an integer ≥ t = 4/);
  });
});

describe("meanAttentionDistance", () => {
  it("matches the loop Σ_j w·|i − j| averaged over batch and queries, with a cache offset", () => {
    const rng = new Rng(3);
    const B = 2, H = 3, T = 4, S = 6;
    const w = tf.softmax(rand(rng, [B, H, T, S]).mul(3)) as tf.Tensor4D;
    const wa = w.arraySync();
    const got = meanAttentionDistance(w).arraySync();
    for (let h = 0; h < H; h++) {
      let sum = 0;
      for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) sum += wa[b][h][i][j] * Math.abs(S - T + i - j);
      expect(got[h]).toBeCloseTo(sum / (B * T), 5);
    }
  });

  it("is 0 for a head that looks only at itself, 1 for one that looks only at the previous token", () => {
    const self = tf.eye(5).reshape([1, 1, 5, 5]);
    const prev = tf.oneHot([0, 0, 1, 2, 3], 5).toFloat().reshape([1, 1, 5, 5]); // row i puts weight 1 on key i − 1
    const d = meanAttentionDistance(tf.concat([self, prev], 1) as tf.Tensor4D).arraySync();
    expect(d[0]).toBe(0);
    expect(d[1]).toBeCloseTo(4 / 5, 6); // query 0 has no previous token and looks at itself
  });

  it("leaks no tensors and rejects a wrong rank", () => {
    const w = tf.ones([1, 2, 3, 3]).div(3) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    meanAttentionDistance(w).dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => meanAttentionDistance(tf.zeros([3, 3]) as never)).toThrow("weights must be [batch, heads, queries, keys], got shape [3,3]");
  });
});

describe("scaledDotProductAttention", () => {
  const rng = new Rng(1);
  const B = 2, H = 3, T = 5, S = 7, d = 3;
  const q = rand(rng, [B, H, T, d]) as tf.Tensor4D;
  const k = rand(rng, [B, H, S, d]) as tf.Tensor4D;
  const v = rand(rng, [B, H, S, 2]) as tf.Tensor4D;
  const qa = q.arraySync(), ka = k.arraySync(), va = v.arraySync();
  const lengths = [4, 7];

  const cases: [string, { causal?: boolean; pad?: boolean }, (b: number, i: number, j: number) => boolean][] = [
    ["no mask", {}, () => true],
    ["causal", { causal: true }, (_b, i, j) => j <= i + (S - T)],
    ["padding", { pad: true }, (b, _i, j) => j < lengths[b]],
    ["causal + padding", { causal: true, pad: true }, (b, i, j) => j <= i + (S - T) && j < lengths[b]],
  ];
  for (const [name, opt, allowed] of cases) {
    it(`matches the loop (${name}), odd sizes T=5, S=7, d=3, H=3`, () => {
      const mask = opt.pad ? paddingMask(lengths, S) : undefined;
      const { out, weights } = scaledDotProductAttention(q, k, v, { mask, causal: opt.causal, returnWeights: true });
      expect(out.shape).toEqual([B, H, T, 2]);
      expect(weights!.shape).toEqual([B, H, T, S]);
      const oa = out.arraySync(), wa = weights!.arraySync();
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
        const ref = naiveAttention(qa[b][h], ka[b][h], va[b][h], (i, j) => allowed(b, i, j));
        expect(maxAbsDiff(oa[b][h], ref.out)).toBeLessThan(1e-5);
        expect(maxAbsDiff(wa[b][h], ref.w)).toBeLessThan(1e-6);
      }
    });
  }

  it("a fully masked row gives uniform weights, not NaN", () => {
    const { out, weights } = scaledDotProductAttention(q, k, v, { mask: paddingMask([0, 7], S), returnWeights: true });
    const w = weights!.arraySync()[0][0][0];
    for (const x of w) expect(x).toBeCloseTo(1 / S, 6);
    expect(out.isNaN().any().dataSync()[0]).toBe(0);
  });

  it("masked keys get weight exactly 0", () => {
    const { weights } = scaledDotProductAttention(q, k, v, { causal: true, returnWeights: true });
    expect(weights!.arraySync()[0][0][0][S - 1]).toBe(0);
  });

  it("rejects mismatched shapes with one sentence naming the argument", () => {
    expect(() => scaledDotProductAttention(q.reshape([B * H, T, d]) as never, k, v))
      .toThrow("q must be [batch, heads, seq, dim], got shape [6,5,3]");
    expect(() => scaledDotProductAttention(q, k.slice([0, 0, 0, 0], [B, H, S, 2]) as tf.Tensor4D, v))
      .toThrow(/k must be \[2, 3, S, 3\]/);
    expect(() => scaledDotProductAttention(q, k, v, { mask: tf.zeros([T, 3]) })).toThrow(/mask must broadcast/);
  });

  it("gradients match central finite differences (float32: eps 1e-2, tolerance 2e-3)", () => {
    // A small case so float32 rounding (~1e-7 / eps = 1e-5) and the O(eps²) truncation stay ≪ 2e-3.
    const r = new Rng(7);
    const q0 = rand(r, [1, 2, 3, 2]) as tf.Tensor4D, k0 = rand(r, [1, 2, 4, 2]) as tf.Tensor4D;
    const v0 = rand(r, [1, 2, 4, 2]) as tf.Tensor4D, w = rand(r, [1, 2, 3, 2]);
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      scaledDotProductAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, { causal: true }).out.mul(w).sum() as tf.Scalar;
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => f(a, b, c))([q0, k0, v0]);
    const inputs = [q0, k0, v0];
    const eps = 1e-2;
    for (let which = 0; which < 3; which++) {
      const base = inputs[which].dataSync().slice();
      const g = grads[which].dataSync();
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number) => {
          const x = base.slice(); x[i] += delta;
          const args = inputs.map((t, j) => (j === which ? tf.tensor(x, t.shape) : t));
          return f(args[0], args[1], args[2]).dataSync()[0];
        };
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(fd - g[i])).toBeLessThan(2e-3);
      }
    }
  });
});

describe("splitHeads / mergeHeads", () => {
  it("head h takes columns h·dh .. (h+1)·dh − 1, and merge undoes split", () => {
    const x = tf.range(0, 2 * 5 * 6).reshape([2, 5, 6]) as tf.Tensor3D;
    const s = splitHeads(x, 3);
    expect(s.shape).toEqual([2, 3, 5, 2]);
    const xa = x.arraySync(), sa = s.arraySync();
    for (let b = 0; b < 2; b++) for (let h = 0; h < 3; h++) for (let t = 0; t < 5; t++) for (let i = 0; i < 2; i++)
      expect(sa[b][h][t][i]).toBe(xa[b][t][h * 2 + i]);
    expect(mergeHeads(s).arraySync()).toEqual(xa);
  });

  it("rejects a head count that does not divide the width", () => {
    expect(() => splitHeads(tf.zeros([1, 2, 6]) as tf.Tensor3D, 4)).toThrow("nHeads must divide the width 6, got 4");
  });
});

// ---- multi-head attention against plain loops --------------------------------------------------
function randParams(rng: Rng, shapes: [string, number[]][]): Params {
  const p: Params = {};
  for (const [n, s] of shapes) p[n] = rand(rng, s).mul(0.5);
  return p;
}

function naiveLinear(x: M, w: M, b: number[]): M {
  return matmul(x, w).map((r) => r.map((y, j) => y + b[j]));
}

/** Multi-head attention for one batch row with loops: qs/ks/vs are [T, D] matrices already projected. */
function naiveHeads(qs: M, ks: M, vs: M, H: number, allowed: (i: number, j: number) => boolean): M {
  const D = qs[0].length, dh = D / H;
  const out: M = qs.map(() => new Array(D).fill(0));
  for (let h = 0; h < H; h++) {
    const cols = (m: M) => m.map((r) => r.slice(h * dh, (h + 1) * dh));
    const { out: oh } = naiveAttention(cols(qs), cols(ks), cols(vs), allowed);
    oh.forEach((r, i) => r.forEach((x, c) => (out[i][h * dh + c] = x)));
  }
  return out;
}

describe("multiHeadAttention", () => {
  for (const [D, H] of [[3, 3], [6, 2]]) {
    it(`self-attention with a fused QKV matches loops (D=${D}, H=${H}, T=5, causal)`, () => {
      const rng = new Rng(D * 10 + H);
      const B = 2, T = 5;
      const p = randParams(rng, [["a.qkv.w", [D, 3 * D]], ["a.qkv.b", [3 * D]], ["a.proj.w", [D, D]], ["a.proj.b", [D]]]);
      const x = rand(rng, [B, T, D]) as tf.Tensor3D;
      const { out, k, v } = multiHeadAttention(p, "a", x, H, { causal: true });
      expect(out.shape).toEqual([B, T, D]);
      expect(k.shape).toEqual([B, H, T, D / H]);
      const wqkv = p["a.qkv.w"].arraySync() as M, bqkv = p["a.qkv.b"].arraySync() as number[];
      const xa = x.arraySync(), oa = out.arraySync();
      for (let b = 0; b < B; b++) {
        const qkv = naiveLinear(xa[b], wqkv, bqkv);
        const part = (c: number) => qkv.map((r) => r.slice(c * D, (c + 1) * D));
        const heads = naiveHeads(part(0), part(1), part(2), H, (i, j) => j <= i);
        const ref = naiveLinear(heads, p["a.proj.w"].arraySync() as M, p["a.proj.b"].arraySync() as number[]);
        expect(maxAbsDiff(oa[b], ref)).toBeLessThan(1e-5);
      }
    });
  }

  it("cross-attention (separate q and kv projections, padded memory) matches loops", () => {
    const rng = new Rng(5);
    const B = 2, T = 3, S = 5, D = 6, H = 3;
    const p = randParams(rng, [["x.q.w", [D, D]], ["x.q.b", [D]], ["x.kv.w", [D, 2 * D]], ["x.kv.b", [2 * D]],
      ["x.proj.w", [D, D]], ["x.proj.b", [D]]]);
    const x = rand(rng, [B, T, D]) as tf.Tensor3D, mem = rand(rng, [B, S, D]) as tf.Tensor3D;
    const lengths = [3, 5];
    const { out } = multiHeadAttention(p, "x", x, H, { memory: mem, mask: paddingMask(lengths, S) });
    const pre = crossKeysValues(p, "x", mem, H);
    const again = multiHeadAttention(p, "x", x, H, { kv: pre, mask: paddingMask(lengths, S) }).out;
    expect(maxAbsDiff(out.arraySync(), again.arraySync())).toBe(0);
    const xa = x.arraySync(), ma = mem.arraySync(), oa = out.arraySync();
    for (let b = 0; b < B; b++) {
      const qs = naiveLinear(xa[b], p["x.q.w"].arraySync() as M, p["x.q.b"].arraySync() as number[]);
      const kv = naiveLinear(ma[b], p["x.kv.w"].arraySync() as M, p["x.kv.b"].arraySync() as number[]);
      const heads = naiveHeads(qs, kv.map((r) => r.slice(0, D)), kv.map((r) => r.slice(D)), H, (_i, j) => j < lengths[b]);
      const ref = naiveLinear(heads, p["x.proj.w"].arraySync() as M, p["x.proj.b"].arraySync() as number[]);
      expect(maxAbsDiff(oa[b], ref)).toBeLessThan(1e-5);
    }
  });

  it("a KV cache (past keys and values) gives the same outputs as attending over the full sequence", () => {
    const rng = new Rng(9);
    const D = 6, H = 2, T = 5;
    const p = randParams(rng, [["a.qkv.w", [D, 3 * D]], ["a.qkv.b", [3 * D]], ["a.proj.w", [D, D]], ["a.proj.b", [D]]]);
    const x = rand(rng, [1, T, D]) as tf.Tensor3D;
    const full = multiHeadAttention(p, "a", x, H, { causal: true }).out;
    const first = multiHeadAttention(p, "a", x.slice([0, 0, 0], [1, 3, D]), H, { causal: true });
    const rest = multiHeadAttention(p, "a", x.slice([0, 3, 0], [1, 2, D]), H, { causal: true, past: { k: first.k, v: first.v } });
    expect(rest.k.shape).toEqual([1, H, T, D / H]);
    const inc = tf.concat([first.out, rest.out], 1);
    expect(maxAbsDiff(full.arraySync(), inc.arraySync())).toBeLessThan(1e-6);
  });

  it("calls project after each linear with its name, and an identity hook changes nothing", () => {
    const rng = new Rng(11);
    const D = 6, H = 2;
    const p = randParams(rng, [["a.qkv.w", [D, 3 * D]], ["a.qkv.b", [3 * D]], ["a.proj.w", [D, D]], ["a.proj.b", [D]]]);
    const x = rand(rng, [1, 4, D]) as tf.Tensor3D;
    const names: string[] = [];
    const hooked = multiHeadAttention(p, "a", x, H, { causal: true, project: (n, _x, y) => (names.push(n), y) }).out;
    expect(names).toEqual(["a.qkv", "a.proj"]);
    expect(hooked.arraySync()).toEqual(multiHeadAttention(p, "a", x, H, { causal: true }).out.arraySync());
  });

  it("names a missing parameter", () => {
    expect(() => multiHeadAttention({}, "h0.attn", tf.zeros([1, 2, 4]) as tf.Tensor3D, 2))
      .toThrow('params must hold a tensor named "h0.attn.qkv.w", but it has no such key');
  });

  it("linear is x·W + b on the last axis", () => {
    const x = tf.tensor3d([[[1, 2], [3, 4]]]), w = tf.tensor2d([[1, 0, 2], [0, 1, 3]]), b = tf.tensor1d([1, 1, 1]);
    expect(linear(x, w, b).arraySync()).toEqual([[[2, 3, 9], [4, 5, 19]]]);
    expect(() => linear(tf.zeros([2, 3]), w)).toThrow("x must end in the weight's input width 2, got shape [2,3]");
  });

  it("leaks no tensors inside tf.tidy", () => {
    const rng = new Rng(3);
    const p = randParams(rng, [["a.qkv.w", [4, 12]], ["a.qkv.b", [12]], ["a.proj.w", [4, 4]], ["a.proj.b", [4]]]);
    const x = rand(rng, [2, 3, 4]) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.tidy(() => { multiHeadAttention(p, "a", x, 2, { causal: true, mask: paddingMask([2, 3], 3) }); });
    expect(tf.memory().numTensors).toBe(before);
  });
});
