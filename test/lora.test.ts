import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import { initLora, loraAdapter, loraParamCount, loraSockets, mergeLora } from "../lib/lora";
import { countParams, decoderForward, initDecoder, TINY, BASE, type DecoderConfig, type Params } from "../lib/decoder";

const CFG: DecoderConfig = { vocabSize: 11, contextLength: 8, dModel: 4, nLayers: 2, nHeads: 2, dFF: 12, positional: "learned" };

function rand(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Array.from({ length: n }, () => rng.next() * 2 - 1), shape);
}

// y = x·W + b + (α/r)·s·(x·A)·B with plain loops: the obviously-correct slow version
function slowLoraLinear(x: number[][], W: number[][], b: number[], A: number[][], B: number[][], scale: number): number[][] {
  return x.map((row) => {
    const xa = A[0].map((_, k) => row.reduce((acc, xi, i) => acc + xi * A[i][k], 0));
    return b.map((bj, j) => {
      let y = bj;
      for (let i = 0; i < row.length; i++) y += row[i] * W[i][j];
      for (let k = 0; k < xa.length; k++) y += scale * xa[k] * B[k][j];
      return y;
    });
  });
}

function bits(t: tf.Tensor): Uint32Array {
  return new Uint32Array(new Float32Array(t.dataSync()).buffer);
}

describe("LoRA on one linear layer", () => {
  const rng = new Rng(7);
  const [IN, OUT, R, ALPHA] = [5, 3, 2, 4];
  const W = rand([IN, OUT], rng);
  const b = rand([OUT], rng);
  const A = rand([IN, R], rng);
  const B = rand([R, OUT], rng);
  const x = rand([2, 3, IN], rng); // [batch, time, in]: the adapter must keep any leading shape
  const lora: Params = { "lin.lora.A": A, "lin.lora.B": B };
  const base: Params = { "lin.w": W, "lin.b": b };
  const linear = (p: Params, xx: tf.Tensor) => tf.tidy(() => tf.add(tf.matMul(xx.reshape([-1, IN]), p["lin.w"]), p["lin.b"]).reshape([...xx.shape.slice(0, -1), OUT]));

  it("adds (α/r)·s·(x·A)·B, matching a loop over plain arrays", () => {
    for (const strength of [1, 0.5, -2]) {
      const y = linear(base, x);
      const got = loraAdapter(lora, { alpha: ALPHA, rank: R, strength }).project!("lin", x, y);
      expect(got.shape).toEqual([2, 3, OUT]);
      const want = slowLoraLinear(
        (x.reshape([-1, IN]).arraySync() as number[][]),
        W.arraySync() as number[][], b.arraySync() as number[], A.arraySync() as number[][], B.arraySync() as number[][],
        (strength * ALPHA) / R,
      );
      const g = got.reshape([-1, OUT]).arraySync() as number[][];
      for (let i = 0; i < want.length; i++) for (let j = 0; j < OUT; j++) expect(g[i][j]).toBeCloseTo(want[i][j], 5);
      tf.dispose([y, got]);
    }
  });

  it("merged weights W + s(α/r)·A·B give the same output as the unmerged adapter", () => {
    for (const strength of [1, 0.3]) {
      const merged = mergeLora(base, lora, { alpha: ALPHA, rank: R, strength });
      const yMerged = linear(merged, x);
      const y = linear(base, x);
      const yAdapted = loraAdapter(lora, { alpha: ALPHA, rank: R, strength }).project!("lin", x, y);
      const diff = tf.max(tf.abs(tf.sub(yMerged, yAdapted))).dataSync()[0];
      expect(diff).toBeLessThan(1e-5);
      expect(diff).toBeGreaterThanOrEqual(0);
      // and the merge really changed the weight (so the test could fail)
      expect(tf.max(tf.abs(tf.sub(merged["lin.w"], W))).dataSync()[0]).toBeGreaterThan(1e-3);
      tf.dispose([yMerged, y, yAdapted]);
      tf.dispose(Object.values(merged));
    }
    // disposing the merged copy left the base alive
    expect(W.isDisposed).toBe(false);
    expect(b.isDisposed).toBe(false);
  });

  it("strength 0 is the base bit for bit, including −0", () => {
    const y = tf.tensor([[-0, 1.5, -0]]);
    const x1 = tf.tensor([[1, 2, 3, 4, 5]]);
    const got = loraAdapter(lora, { alpha: ALPHA, rank: R, strength: 0 }).project!("lin", x1, y);
    expect(bits(got)).toEqual(bits(y));
    const merged = mergeLora(base, lora, { alpha: ALPHA, rank: R, strength: 0 });
    expect(bits(merged["lin.w"])).toEqual(bits(W));
    tf.dispose([y, x1, got]);
    tf.dispose(Object.values(merged));
  });

  it("a socket the adapter does not name passes y through untouched", () => {
    const y = linear(base, x);
    const got = loraAdapter(lora, { alpha: ALPHA, rank: R }).project!("other", x, y);
    expect(got).toBe(y);
    y.dispose();
  });

  it("leaks no tensors", () => {
    const before = tf.memory().numTensors;
    const adapter = loraAdapter(lora, { alpha: ALPHA, rank: R });
    for (let i = 0; i < 5; i++) {
      // no tidy here: only the output is new, every intermediate must already be freed
      const y = linear(base, x);
      const out = adapter.project!("lin", x, y);
      tf.dispose([y, out]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("refuses bad arguments with one sentence", () => {
    expect(() => loraAdapter(lora, { alpha: ALPHA, rank: 3 })).toThrow(/must be A \[in, 3\] and B \[3, out\] for rank 3, got A \[5,2\]/);
    expect(() => loraAdapter({ "lin.lora.A": A }, { alpha: ALPHA, rank: R })).toThrow(/has no partner "lin.lora.B"/);
    expect(() => loraAdapter(lora, { alpha: ALPHA, rank: 0 })).toThrow(/rank must be a positive integer, got 0/);
    const bad = tf.ones([2, 4]);
    expect(() => loraAdapter(lora, { alpha: ALPHA, rank: R }).project!("lin", bad, bad)).toThrow(/must end in 5 features/);
    bad.dispose();
    expect(() => mergeLora({ "lin.w": tf.ones([4, 3]) }, lora, { alpha: ALPHA, rank: R })).toThrow(/makes a \[5, 3\] update, but base "lin.w" is \[4,3\]/);
  });
});

describe("initLora and the parameter count", () => {
  it("makes A [in,r] and B [r,out] = 0 for every targeted socket, seeded", () => {
    const lora = initLora(CFG, { rank: 2, alpha: 4, targets: ["attn.qkv", "mlp.proj"], seed: 1 });
    expect(Object.keys(lora).sort()).toEqual(
      ["h0.attn.qkv.lora.A", "h0.attn.qkv.lora.B", "h0.mlp.proj.lora.A", "h0.mlp.proj.lora.B",
        "h1.attn.qkv.lora.A", "h1.attn.qkv.lora.B", "h1.mlp.proj.lora.A", "h1.mlp.proj.lora.B"],
    );
    expect(lora["h0.attn.qkv.lora.A"].shape).toEqual([4, 2]);
    expect(lora["h0.attn.qkv.lora.B"].shape).toEqual([2, 12]);
    expect(lora["h1.mlp.proj.lora.A"].shape).toEqual([12, 2]);
    expect(lora["h1.mlp.proj.lora.B"].shape).toEqual([2, 4]);
    expect(Array.from(lora["h0.attn.qkv.lora.B"].dataSync()).every((v) => v === 0)).toBe(true);
    expect(lora["h0.attn.qkv.lora.A"] instanceof tf.Variable).toBe(true);
    const again = initLora(CFG, { rank: 2, alpha: 4, targets: ["attn.qkv", "mlp.proj"], seed: 1 });
    expect(Array.from(again["h1.mlp.proj.lora.A"].dataSync())).toEqual(Array.from(lora["h1.mlp.proj.lora.A"].dataSync()));
    const other = initLora(CFG, { rank: 2, alpha: 4, targets: ["attn.qkv", "mlp.proj"], seed: 2 });
    expect(Array.from(other["h1.mlp.proj.lora.A"].dataSync())).not.toEqual(Array.from(lora["h1.mlp.proj.lora.A"].dataSync()));
    tf.dispose([...Object.values(lora), ...Object.values(again), ...Object.values(other)]);
  });

  it("counts r·(in+out) per adapted weight, the sizes initLora really makes", () => {
    const targets = ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"];
    const r = 3;
    const d = CFG.dModel;
    const f = CFG.dFF;
    const closed = CFG.nLayers * r * ((d + 3 * d) + (d + d) + (d + f) + (f + d));
    const count = loraParamCount(CFG, { rank: r, targets });
    expect(count.lora).toBe(closed);
    expect(count.targeted).toBe(CFG.nLayers * (d * 3 * d + d * d + d * f + f * d));
    const lora = initLora(CFG, { rank: r, alpha: 1, targets });
    expect(Object.values(lora).reduce((a, t) => a + t.size, 0)).toBe(closed);
    tf.dispose(Object.values(lora));
  });

  it("targets can name one layer, and bad targets are refused", () => {
    expect(loraSockets(CFG, ["h1.mlp.fc"])).toEqual([{ name: "h1.mlp.fc", in: 4, out: 12 }]);
    expect(() => loraSockets(CFG, ["attn.q"])).toThrow(/LoRA target must be one of attn.qkv, attn.proj, mlp.fc, mlp.proj/);
    expect(() => loraSockets(CFG, ["h2.attn.qkv"])).toThrow(/names layer 2, but the model has layers 0..1/);
    expect(() => loraSockets(CFG, [])).toThrow(/targets must be a non-empty list/);
  });
});

describe("LoRA in the decoder", () => {
  const base = initDecoder(CFG, 3);
  const ids = tf.tensor2d([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], [2, 5], "int32");
  const targets = ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"];
  // A trained-looking adapter: B random instead of zero, so the delta is not nothing.
  const lora = initLora(CFG, { rank: 2, alpha: 4, targets, seed: 9 });
  const rng = new Rng(10);
  for (const [n, t] of Object.entries(lora)) if (n.endsWith(".B")) (t as tf.Variable).assign(tf.tidy(() => rand(t.shape, rng).mul(0.5)));
  const run = (p: Params, adapter?: ReturnType<typeof loraAdapter>) => decoderForward(p, CFG, ids, adapter ? { adapter } : {}).logits;

  it("merged == unmerged on the whole model, for several strengths", () => {
    const plain = run(base);
    for (const strength of [1, 0.5, -1]) {
      const merged = mergeLora(base, lora, { alpha: 4, rank: 2, strength });
      const a = run(merged);
      const b = run(base, loraAdapter(lora, { alpha: 4, rank: 2, strength }));
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(a, plain))).dataSync()[0]).toBeGreaterThan(1e-3);
      tf.dispose([a, b, ...Object.values(merged)]);
    }
    plain.dispose();
  });

  it("strength 0, and a fresh adapter (B = 0), are the base bit for bit", () => {
    const plain = run(base);
    const zero = run(base, loraAdapter(lora, { alpha: 4, rank: 2, strength: 0 }));
    expect(bits(zero)).toEqual(bits(plain));
    const fresh = initLora(CFG, { rank: 2, alpha: 4, targets, seed: 1 });
    const f = run(base, loraAdapter(fresh, { alpha: 4, rank: 2 }));
    // x·A·0 = 0 and y + 0 = y: equal in value (only a −0 in y could flip to +0)
    expect(tf.max(tf.abs(tf.sub(f, plain))).dataSync()[0]).toBe(0);
    tf.dispose([plain, zero, f, ...Object.values(fresh)]);
  });

  it("trains through the sockets: gradients reach A and B, not the base", () => {
    const fresh = initLora(CFG, { rank: 2, alpha: 4, targets: ["attn.qkv"], seed: 1 });
    const vars = Object.values(fresh) as tf.Variable[];
    const { grads, value } = tf.variableGrads(() => tf.tidy(() => {
      const logits = decoderForward(base, CFG, ids, { adapter: loraAdapter(fresh, { alpha: 4, rank: 2 }) }).logits;
      return tf.mean(tf.square(logits)) as tf.Scalar;
    }), vars);
    const norm = (n: string) => tf.tidy(() => tf.sum(tf.abs(grads[(fresh[n] as tf.Variable).name])).dataSync()[0]);
    expect(Object.keys(grads).length).toBe(vars.length);
    // B = 0 means dL/dA = 0 at the start, and dL/dB ≠ 0 (it is what moves first)
    expect(norm("h0.attn.qkv.lora.A")).toBe(0);
    expect(norm("h0.attn.qkv.lora.B")).toBeGreaterThan(0);
    tf.dispose([value, ...Object.values(grads), ...vars]);
  });

  it("is a small fraction of the model: r·(in+out) per weight against the full parameter count", () => {
    for (const cfg of [TINY, BASE]) {
      const { lora: n } = loraParamCount(cfg, { rank: 4, targets });
      const d = cfg.dModel;
      expect(n).toBe(cfg.nLayers * 4 * (4 * d + 2 * d + (d + cfg.dFF) * 2));
      expect(n / countParams(cfg).total).toBeLessThan(0.1);
    }
  });
});
