import { describe, it, expect } from "vitest";
import { tf } from "../lib/tf";
import {
  DecoderConfig, TINY, BASE, initDecoder, decoderForward, emptyCache, disposeCache, lmLoss, countParams,
  flopsPerToken, decoderShapes, Adapter, KVCache,
} from "../lib/decoder";

const SMALL: DecoderConfig = { vocabSize: 11, contextLength: 12, dModel: 12, nLayers: 2, nHeads: 3, dFF: 20, positional: "learned" };

function ids2d(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], "int32");
}

function maxAbs(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

describe("parameter count and FLOPs", () => {
  for (const [name, cfg] of [["TINY", TINY], ["BASE", BASE]] as const) {
    it(`${name}: the closed formula 12·L·d² + 13·L·d + V·d + ctx·d + 2d equals the initialised tensors`, () => {
      const { vocabSize: V, contextLength: C, dModel: d, nLayers: L } = cfg;
      expect(cfg.dFF).toBe(4 * d);
      const formula = 12 * L * d * d + 13 * L * d + V * d + C * d + 2 * d;
      const params = initDecoder(cfg, 1);
      const summed = Object.values(params).reduce((s, t) => s + t.size, 0);
      expect(countParams(cfg).total).toBe(formula);
      expect(summed).toBe(formula);
      expect(countParams(cfg).nonEmbedding).toBe(12 * L * d * d + 13 * L * d + 2 * d);
      Object.values(params).forEach((t) => t.dispose());
    });
  }

  it("an odd config (dFF ≠ 4d, sinusoidal positions: no wpe) still matches the summed tensors", () => {
    const cfg: DecoderConfig = { ...SMALL, positional: "sinusoidal" };
    const params = initDecoder(cfg, 2);
    expect(params["wpe"]).toBeUndefined();
    expect(Object.values(params).reduce((s, t) => s + t.size, 0)).toBe(countParams(cfg).total);
    expect(countParams(cfg).total - countParams(cfg).nonEmbedding).toBe(cfg.vocabSize * cfg.dModel);
  });

  it("flopsPerToken = 6·N_nonemb + 6·L·ctx·d (Kaplan et al. 2020, training)", () => {
    const { nLayers: L, contextLength: C, dModel: d } = BASE;
    expect(flopsPerToken(BASE)).toBe(6 * countParams(BASE).nonEmbedding + 6 * L * C * d);
  });

  it("initialisation: N(0, 0.02²), residual projections 0.02/√(2L), LayerNorm 1/0, same seed same values", () => {
    const cfg: DecoderConfig = { ...TINY, nLayers: 8 };
    const p = initDecoder(cfg, 5);
    const std = (t: tf.Tensor) => tf.tidy(() => Math.sqrt(tf.moments(t).variance.dataSync()[0]));
    expect(std(p["wte"])).toBeCloseTo(0.02, 3);
    expect(std(p["h0.mlp.fc.w"])).toBeCloseTo(0.02, 3);
    expect(std(p["h3.mlp.proj.w"])).toBeCloseTo(0.02 / 4, 3);
    expect(std(p["h3.attn.proj.w"])).toBeCloseTo(0.02 / 4, 3);
    expect(p["h1.ln1.g"].dataSync().every((x) => x === 1)).toBe(true);
    expect(p["h1.attn.qkv.b"].dataSync().every((x) => x === 0)).toBe(true);
    expect(p["wte"] instanceof tf.Variable).toBe(true);
    const again = initDecoder(cfg, 5), other = initDecoder(cfg, 6);
    expect(maxAbs(p["h2.attn.qkv.w"], again["h2.attn.qkv.w"])).toBe(0);
    expect(maxAbs(p["h2.attn.qkv.w"], other["h2.attn.qkv.w"])).toBeGreaterThan(0);
    for (const q of [p, again, other]) Object.values(q).forEach((t) => t.dispose());
  });

  it("names follow the contract", () => {
    const names = decoderShapes(SMALL).map(([n]) => n);
    expect(names.slice(0, 2)).toEqual(["wte", "wpe"]);
    for (const n of ["h1.ln1.g", "h1.ln1.b", "h1.attn.qkv.w", "h1.attn.qkv.b", "h1.attn.proj.w", "h1.attn.proj.b",
      "h1.ln2.g", "h1.ln2.b", "h1.mlp.fc.w", "h1.mlp.fc.b", "h1.mlp.proj.w", "h1.mlp.proj.b", "lnf.g", "lnf.b"])
      expect(names).toContain(n);
    expect(Object.fromEntries(decoderShapes(SMALL))["h0.attn.qkv.w"]).toEqual([12, 36]);
  });
});

describe("decoderForward", () => {
  const params = initDecoder(SMALL, 3);
  const ids = ids2d([[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]]);

  it("returns logits [B,T,V]", () => {
    expect(decoderForward(params, SMALL, ids).logits.shape).toEqual([2, 7, 11]);
  });

  it("is causal: changing a later token leaves earlier logits unchanged", () => {
    const a = decoderForward(params, SMALL, ids).logits;
    const b = decoderForward(params, SMALL, ids2d([[1, 2, 3, 9, 9, 9, 9], [7, 6, 5, 0, 0, 0, 0]])).logits;
    expect(maxAbs(a.slice([0, 0, 0], [2, 3, 11]), b.slice([0, 0, 0], [2, 3, 11]))).toBe(0);
    expect(maxAbs(a.slice([0, 3, 0], [2, 1, 11]), b.slice([0, 3, 0], [2, 1, 11]))).toBeGreaterThan(1e-4);
  });

  for (const positional of ["learned", "sinusoidal"] as const) {
    it(`with a KV cache, generation gives the full forward's logits to 1e-5 (${positional})`, () => {
      const cfg = { ...SMALL, positional };
      const p = initDecoder(cfg, 4);
      const full = decoderForward(p, cfg, ids).logits;
      let cache: KVCache = emptyCache(cfg, 2);
      const parts: tf.Tensor[] = [];
      // a prompt of 3, then one token at a time
      const first = decoderForward(p, cfg, ids.slice([0, 0], [2, 3]) as tf.Tensor2D, { cache });
      parts.push(first.logits);
      cache = first.cache!;
      for (let t = 3; t < 7; t++) {
        const step = decoderForward(p, cfg, ids.slice([0, t], [2, 1]) as tf.Tensor2D, { cache });
        disposeCache(cache);
        parts.push(step.logits);
        cache = step.cache!;
      }
      expect(cache.length).toBe(7);
      expect(cache.k[1].shape).toEqual([2, 3, 7, 4]);
      expect(maxAbs(full, tf.concat(parts, 1))).toBeLessThan(1e-5);
    });
  }

  it("attention: true returns causal weights [B,H,T,T] per layer whose rows sum to 1", () => {
    const { attention } = decoderForward(params, SMALL, ids, { attention: true });
    expect(attention!.length).toBe(2);
    const w = attention![1];
    expect(w.shape).toEqual([2, 3, 7, 7]);
    const wa = w.arraySync();
    for (let i = 0; i < 7; i++) {
      expect(wa[1][2][i].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      for (let j = i + 1; j < 7; j++) expect(wa[1][2][i][j]).toBe(0);
    }
  });

  it("an adapter whose hooks return y and h unchanged gives bit-identical logits; no adapter is identical to before", () => {
    const base = decoderForward(params, SMALL, ids).logits.dataSync();
    const calls: string[] = [];
    const identity: Adapter = {
      project: (name, x, y) => {
        calls.push(`${name} ${x.shape[2]}->${y.shape[2]}`);
        return y;
      },
      residual: (layer, h) => (calls.push(`residual ${layer}`), h),
    };
    const hooked = decoderForward(params, SMALL, ids, { adapter: identity }).logits.dataSync();
    expect(Array.from(hooked)).toEqual(Array.from(base));
    expect(calls).toEqual([
      "h0.attn.qkv 12->36", "h0.attn.proj 12->12", "h0.mlp.fc 12->20", "h0.mlp.proj 20->12", "residual 0",
      "h1.attn.qkv 12->36", "h1.attn.proj 12->12", "h1.mlp.fc 12->20", "h1.mlp.proj 20->12", "residual 1",
    ]);
    // an adapter with only one of the two methods works too
    const onlyResidual = decoderForward(params, SMALL, ids, { adapter: { residual: (_l, h) => h } }).logits.dataSync();
    expect(Array.from(onlyResidual)).toEqual(Array.from(base));
    const after = decoderForward(params, SMALL, ids).logits.dataSync();
    expect(Array.from(after)).toEqual(Array.from(base));
  });

  it("an adapter that adds a delta changes the logits (the sockets are live)", () => {
    const base = decoderForward(params, SMALL, ids).logits;
    const shifted = decoderForward(params, SMALL, ids, {
      // not a constant shift: LayerNorm subtracts the mean, so h + 0.5 everywhere would be invisible
      adapter: { residual: (l, h) => (l === 0 ? h.add(tf.linspace(-1, 1, SMALL.dModel)) : h) },
    }).logits;
    expect(maxAbs(base, shifted)).toBeGreaterThan(1e-3);
    const projected = decoderForward(params, SMALL, ids, {
      adapter: { project: (n, _x, y) => (n === "h1.mlp.fc" ? y.mul(2) : y) },
    }).logits;
    expect(maxAbs(base, projected)).toBeGreaterThan(1e-3);
  });

  it("rejects bad input with one sentence", () => {
    expect(() => decoderForward(params, SMALL, tf.zeros([2, 3]) as tf.Tensor2D))
      .toThrow("ids must be an int32 [batch, seq] tensor, got float32 shape [2,3]");
    expect(() => decoderForward(params, SMALL, tf.zeros([1, 13], "int32") as tf.Tensor2D))
      .toThrow(/exceed contextLength 12/);
    expect(() => initDecoder({ ...SMALL, nHeads: 5 })).toThrow("config.nHeads must divide config.dModel 12, got 5");
    expect(() => decoderForward(params, SMALL, ids, { cache: emptyCache(SMALL, 3) })).toThrow(/cache must be for batch 2/);
  });

  it("leaks no tensors over training steps", () => {
    const opt = tf.train.adam(1e-3);
    const batch = ids2d([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]);
    const step = () => tf.tidy(() => { opt.minimize(() => lmLoss(params, SMALL, batch)); });
    step(); // Adam creates its moment variables on the first step
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    tf.tidy(() => { decoderForward(params, SMALL, ids, { attention: true }); });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("lmLoss", () => {
  it("is the mean next-token cross-entropy, checked with a loop over the logits", () => {
    const p = initDecoder(SMALL, 8);
    const rows = [[1, 4, 2, 8, 5], [3, 3, 0, 10, 7]];
    const ids = ids2d(rows);
    const loss = lmLoss(p, SMALL, ids).dataSync()[0];
    const logits = decoderForward(p, SMALL, ids.slice([0, 0], [2, 4]) as tf.Tensor2D).logits.arraySync();
    let total = 0;
    for (let b = 0; b < 2; b++) for (let t = 0; t < 4; t++) {
      const l = logits[b][t], mx = Math.max(...l);
      const lse = mx + Math.log(l.reduce((s, x) => s + Math.exp(x - mx), 0));
      total += lse - l[rows[b][t + 1]];
    }
    expect(loss).toBeCloseTo(total / 8, 5);
    // at initialisation the model is near-uniform: loss ≈ ln V
    expect(Math.abs(loss - Math.log(SMALL.vocabSize))).toBeLessThan(0.1);
  });

  it("TINY really learns: a repeating sequence reaches near-zero loss in 100 Adam steps", () => {
    const cfg = { ...TINY, vocabSize: 16 };
    const p = initDecoder(cfg, 42);
    const pattern = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];
    const rows = [0, 3, 7, 11].map((s) => Array.from({ length: 33 }, (_, i) => pattern[(s + i) % pattern.length]));
    const batch = ids2d(rows);
    const opt = tf.train.adam(3e-3);
    let first = 0, last = 0;
    for (let step = 0; step < 100; step++) {
      const l = tf.tidy(() => opt.minimize(() => lmLoss(p, cfg, batch), true) as tf.Scalar);
      const v = l.dataSync()[0];
      l.dispose();
      if (step === 0) first = v;
      last = v;
    }
    expect(first).toBeGreaterThan(2);
    expect(last).toBeLessThan(0.05);
  });
});
