import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import { countParams, decoderForward, initDecoder, lmLoss, type DecoderConfig } from "../lib/decoder";
import { batches } from "../lib/train";
import { mergeLora, loraParamCount } from "../lib/lora";
import { adapt, adapterOf, batchesAt, stepTimes, textLoss, trainingBytes, type BaseModel } from "../lib/finetune";
import { OVERVIEW_EN } from "../lib/languageModel";

process.env.BOOK_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "finetune-cache-"));

const CFG: DecoderConfig = { vocabSize: 7, contextLength: 12, dModel: 8, nLayers: 2, nHeads: 2, dFF: 16, positional: "learned" };
// a "pre-trained" base: its recipe only names it in the run cache
const base: BaseModel = { params: initDecoder(CFG, 5), config: CFG, recipe: { ...OVERVIEW_EN, steps: 1, model: { ...CFG } } };
const text = (seed: number, n: number) => { const r = new Rng(seed); return Array.from({ length: n }, (_, i) => (i % 3 === 0 ? r.int(7) : (i % 7))); };
const data = { train: text(1, 400), heldOut: text(2, 200) };
const OPT = { steps: 6, lr: 1e-2, batchSize: 4, seqLen: 8, seed: 3 };
const bits = (t: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(t.dataSync()).buffer));

describe("the cost of training N numbers", () => {
  it("is 16 bytes each in fp32: weight, gradient, Adam's m and v", () => {
    expect(trainingBytes(1000)).toEqual({ weights: 4000, gradients: 4000, adam: 8000, total: 16000 });
    expect(() => trainingBytes(-1)).toThrow(/trainable must be a count of parameters/);
  });
});

describe("textLoss", () => {
  it("is the mean lmLoss over fixed windows drawn with Rng(seed)", () => {
    const draw = batches(data.heldOut, 4, 8, new Rng(9));
    const want = [0, 1, 2].map(() => { const b = draw(); const l = lmLoss(base.params, CFG, b).dataSync()[0]; b.dispose(); return l; });
    const got = textLoss(base.params, CFG, data.heldOut, { batchSize: 4, seqLen: 8, seed: 9, nBatches: 3 });
    expect(got).toBeCloseTo(want.reduce((a, b) => a + b, 0) / 3, 5);
  });
});

describe("batchesAt", () => {
  it("starts every window at one of the given offsets", () => {
    const tokens = Array.from({ length: 50 }, (_, i) => i);
    const b = batchesAt(tokens, [0, 10, 30], 20, 5, new Rng(1))().arraySync() as number[][];
    for (const row of b) {
      expect([0, 10, 30]).toContain(row[0]);
      expect(row).toEqual(Array.from({ length: 6 }, (_, i) => row[0] + i));
    }
    expect(() => batchesAt(tokens, [46], 2, 5, new Rng(1))).toThrow(/starts must be offsets s with s \+ seqLen \+ 1 ≤ 50/);
  });
});

describe("adapt", () => {
  it("full fine-tuning trains every number, lowers the loss on the target, and leaves the base bit for bit", async () => {
    const before = Object.fromEntries(Object.entries(base.params).map(([k, v]) => [k, bits(v)]));
    const full = await adapt(base, data, { kind: "full" }, OPT);
    expect(full.trainable).toBe(countParams(CFG).total);
    expect(Object.keys(full.params).sort()).toEqual(Object.keys(base.params).sort());
    expect(full.heldOutLoss).toBeLessThan(textLoss(base.params, CFG, data.heldOut, { seqLen: 8 }));
    for (const [k, v] of Object.entries(base.params)) expect(bits(v)).toEqual(before[k]);
    expect(adapterOf(full)).toBeUndefined();
  });

  it("LoRA trains only A and B; merged weights W + (α/r)·A·B give the unmerged model's logits", async () => {
    const how = { kind: "lora" as const, rank: 2, alpha: 4, targets: ["attn.qkv", "mlp.fc"] };
    const before = Object.fromEntries(Object.entries(base.params).map(([k, v]) => [k, bits(v)]));
    const lora = await adapt(base, data, how, OPT);
    expect(Object.keys(lora.params).every((k) => /\.lora\.[AB]$/.test(k))).toBe(true);
    expect(lora.trainable).toBe(loraParamCount(CFG, how).lora);
    expect(lora.heldOutLoss).toBeLessThan(textLoss(base.params, CFG, data.heldOut, { seqLen: 8 }));
    for (const [k, v] of Object.entries(base.params)) expect(bits(v)).toEqual(before[k]);
    const ids = tf.tensor2d([data.heldOut.slice(0, 10)], undefined, "int32");
    const unmerged = decoderForward(base.params, CFG, ids, { adapter: adapterOf(lora) }).logits.arraySync() as number[][][];
    const merged = decoderForward(mergeLora(base.params, lora.params, how), CFG, ids).logits.arraySync() as number[][][];
    unmerged[0].forEach((row, t) => row.forEach((x, v) => expect(merged[0][t][v]).toBeCloseTo(x, 4)));
  });

  it("a second call with the same arguments is the cached run; other options are another run", async () => {
    const a = await adapt(base, data, { kind: "full" }, OPT);
    const b = await adapt(base, data, { kind: "full" }, OPT);
    expect(b.heldOutLoss).toBe(a.heldOutLoss);
    expect(bits(b.params["wte"])).toEqual(bits(a.params["wte"]));
    const c = await adapt(base, data, { kind: "full" }, { ...OPT, steps: 7 });
    expect(c.history.steps.length).toBe(7);
    // the same recipe with other weights (a base retrained by other code) is another run
    const other = await adapt({ ...base, params: initDecoder(CFG, 6) }, data, { kind: "full" }, OPT);
    expect(other.heldOutLoss).not.toBe(a.heldOutLoss);
  });

  it("refuses too little data and an unknown kind in one sentence", async () => {
    await expect(adapt(base, { train: [1, 2, 3], heldOut: data.heldOut }, { kind: "full" }, OPT)).rejects.toThrow(/must each hold more than seqLen \+ 1 = 9 tokens, got 3 and 200/);
    await expect(adapt(base, data, { kind: "adapter" } as never, OPT)).rejects.toThrow(/how must be \{ kind: "full" \}/);
  });
});

describe("stepTimes", () => {
  it("gives one positive time per adaptation and keeps nothing", () => {
    const hows = [{ kind: "full" as const }, { kind: "lora" as const, rank: 2, alpha: 2, targets: ["attn.qkv"] }];
    const before = tf.memory().numTensors;
    const ms = stepTimes(base, data.train, hows, { batchSize: 2, seqLen: 8, steps: 2, rounds: 2 });
    expect(ms.length).toBe(2);
    for (const t of ms) expect(t).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    const bits0 = bits(base.params["wte"]);
    stepTimes(base, data.train, hows, { batchSize: 2, seqLen: 8, steps: 1, rounds: 1 });
    expect(bits(base.params["wte"])).toEqual(bits0);
  });
});
