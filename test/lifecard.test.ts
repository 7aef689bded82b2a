import { afterAll, describe, expect, it } from "vitest";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { tf, Rng } from "../lib/tf";
import { decoderForward, emptyCache, initDecoder, lmLoss, type DecoderConfig, type Params } from "../lib/decoder";
import {
  cardAdapter, cardFromBytes, cardToBytes, disposeCard, fingerprint, loadCard, makeCard, mergeCards, saveCard,
  steeringVector, trainCardLora, type Card, type CardModule,
} from "../lib/lifecard";

const CFG: DecoderConfig = { vocabSize: 13, contextLength: 8, dModel: 8, nLayers: 2, nHeads: 2, dFF: 16, positional: "learned" };
const base = initDecoder(CFG, 3);
const FP = fingerprint(base, CFG);
const BASE = { params: base, config: CFG };

function rand(shape: number[], rng: Rng, scale = 0.5): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale), shape);
}

// A card with random (non-zero) LoRA pairs on the given targets and steering vectors on the given layers.
function randomCard(name: string, seed: number, opts: { targets?: string[]; rank?: number; alpha?: number; steer?: number[] } = {}): Card {
  const rng = new Rng(seed);
  const rank = opts.rank ?? 2;
  const alpha = opts.alpha ?? 4;
  const targets = opts.targets ?? ["attn.qkv", "mlp.proj"];
  const shapes: { [t: string]: [number, number] } = { "attn.qkv": [8, 24], "attn.proj": [8, 8], "mlp.fc": [8, 16], "mlp.proj": [16, 8] };
  const tensors: Params = {};
  const modules: CardModule[] = [];
  if (targets.length) {
    modules.push({ kind: "lora", targets, rank, alpha });
    for (let l = 0; l < CFG.nLayers; l++)
      for (const t of targets) {
        tensors[`h${l}.${t}.lora.A`] = rand([shapes[t][0], rank], rng);
        tensors[`h${l}.${t}.lora.B`] = rand([rank, shapes[t][1]], rng);
      }
  }
  if (opts.steer) {
    modules.push({ kind: "steer", layers: opts.steer });
    for (const l of opts.steer) tensors[`h${l}.steer`] = rand([CFG.dModel], rng);
  }
  const card = makeCard({ name, profile: `${name}: a test persona / 测试`, modules, tensors, effect: { loss: 1.5 } }, BASE);
  tf.dispose(Object.values(tensors));
  return card;
}

const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [3, 1, 4, 1, 5, 9]], [3, 6], "int32");
const row = (i: number) => ids.slice([i, 0], [1, 6]) as tf.Tensor2D;
const logits = (ps: Params, x: tf.Tensor2D, adapter?: ReturnType<typeof cardAdapter>) =>
  decoderForward(ps, CFG, x, adapter ? { adapter } : {}).logits;
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
const bits = (t: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(t.dataSync()).buffer));
const rowOf = (t: tf.Tensor, i: number) => t.slice([i, 0, 0], [1, -1, -1]);

const tone = randomCard("tone", 11, { steer: [1] });
const facts = randomCard("facts", 12, { targets: ["attn.proj", "mlp.fc"], rank: 3, alpha: 3 });
const steerOnly = randomCard("steer", 13, { targets: [], steer: [0, 1] });

afterAll(() => {
  for (const c of [tone, facts, steerOnly]) disposeCard(c);
});

describe("fingerprint", () => {
  it("is stable, and changes when one weight or the config changes", () => {
    expect(fingerprint(base, CFG)).toBe(FP);
    expect(FP).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(fingerprint(base, { ...CFG, contextLength: 9 })).not.toBe(FP);
    const w = base["h1.mlp.fc.w"] as tf.Variable;
    const old = w.clone();
    const values = old.dataSync().slice();
    values[5] += 1e-6; // the smallest change still shows
    w.assign(tf.tensor(values, old.shape));
    expect(fingerprint(base, CFG)).not.toBe(FP);
    w.assign(old);
    old.dispose();
    expect(fingerprint(base, CFG)).toBe(FP);
  });
});

describe("the card file", () => {
  it("round-trips through bytes and a file, bit for bit, the same bytes every time", () => {
    const bytes = cardToBytes(tone);
    expect(Buffer.from(cardToBytes(tone)).equals(Buffer.from(bytes))).toBe(true);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"));
    expect(Object.keys(header)).toEqual(["format", "name", "profile", "base", "modules", "training", "effect", "tensors"]);
    expect(header.tensors["h1.steer"]).toEqual({ dtype: "F32", shape: [8], offsets: expect.any(Array) });

    const file = path.join(os.tmpdir(), `lifecard-test-${process.pid}.card`);
    saveCard(tone, file);
    const back = loadCard(file, BASE);
    fs.unlinkSync(file);
    for (const key of ["format", "name", "profile", "base", "modules", "training", "effect"] as const) expect(back[key]).toEqual(tone[key]);
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tone.tensors).sort());
    for (const t of Object.keys(tone.tensors)) expect(bits(back.tensors[t])).toEqual(bits(tone.tensors[t]));
    disposeCard(back);
  });

  it("is small: a few kilobytes against the base's weights", () => {
    const baseBytes = Object.values(base).reduce((a, t) => a + 4 * t.size, 0);
    const cardBytes = cardToBytes(tone).length;
    expect(cardBytes).toBeLessThan(baseBytes / 2);
  });

  // Take a good card's bytes apart, change the header or the data, and put them back together.
  function repack(mutate: (h: any, data: Uint8Array) => Uint8Array | void, card: Card = tone): Uint8Array {
    const bytes = cardToBytes(card);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const h = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"));
    let data: Uint8Array = bytes.slice(8 + n);
    data = mutate(h, data) ?? data;
    const head = Buffer.from(JSON.stringify(h), "utf8");
    const out = new Uint8Array(8 + head.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
    out.set(head, 8);
    out.set(data, 8 + head.length);
    return out;
  }

  const other = initDecoder(CFG, 4);
  const refusals: [string, () => Uint8Array, RegExp, object?][] = [
    ["a card for another base", () => cardToBytes(tone), /life card "tone" was made for base sha256:[0-9a-f]{12}…, but this base is sha256:[0-9a-f]{12}…; load the base it was trained on/, { params: other, config: CFG }],
    ["a base of another shape", () => cardToBytes(tone), /was made for base .* but this base is/, { params: initDecoder({ ...CFG, dModel: 4 }, 3), config: { ...CFG, dModel: 4 } }],
    ["a missing tensor", () => repack((h, d) => {
      const e = h.tensors["h1.steer"];
      delete h.tensors["h1.steer"];
      return dropBytes(h, d, e.offsets);
    }), /life card "tone" is missing tensor "h1.steer" \[8\] that its modules declare/],
    ["a misshapen tensor", () => repack((h) => { h.tensors["h0.attn.qkv.lora.A"].shape = [16, 1]; }),
      /tensor "h0.attn.qkv.lora.A" has shape \[16,1\], but its module needs \[8,2\] on this base/],
    ["a tensor no module declares", () => repack((h, d) => {
      h.tensors["h0.mlp.fc.lora.A"] = { dtype: "F32", shape: [1], offsets: [d.length, d.length + 4] };
      return Buffer.concat([d, Buffer.alloc(4)]);
    }), /holds tensor "h0.mlp.fc.lora.A" that none of its modules declares/],
    ["a NaN", () => repack((h, d) => {
      new DataView(d.buffer, d.byteOffset).setFloat32(h.tensors["h0.mlp.proj.lora.B"].offsets[0] + 12, NaN, true);
    }), /tensor "h0.mlp.proj.lora.B" holds a non-finite value \(NaN\) at index 3/],
    ["an infinity", () => repack((h, d) => {
      new DataView(d.buffer, d.byteOffset).setFloat32(h.tensors["h1.steer"].offsets[0], -Infinity, true);
    }), /tensor "h1.steer" holds a non-finite value \(-Infinity\) at index 0/],
    ["a file cut in the data", () => cardToBytes(tone).slice(0, -10), /life card "tone" is truncated: tensor ".*" ends at data byte \d+, but the data holds only \d+ bytes/],
    ["a file cut in the header", () => cardToBytes(tone).slice(0, 100), /life card is truncated: its first 8 bytes announce a \d+-byte header, but only 92 bytes follow/],
    ["a file cut in the length", () => cardToBytes(tone).slice(0, 5), /life card is truncated: it has 5 bytes, fewer than the 8/],
    ["bad JSON", () => {
      const b = cardToBytes(tone);
      b[8] = "x".charCodeAt(0);
      return b;
    }, /life card header is not valid UTF-8 JSON \(/],
    ["another format", () => repack((h) => { h.format = "lifecard/0"; }), /life card "tone" must have format "lifecard\/1", got "lifecard\/0"/],
    ["a bad module", () => repack((h) => { h.modules[0].rank = 0; }), /module must be \{kind: "lora", targets, rank ≥ 1, alpha\} or \{kind: "steer", layers\}/],
    ["a module past the last layer", () => repack((h) => { h.modules[1].layers = [2]; }), /life card "tone" steers layer 2, but this base has layers 0..1/],
    ["a LoRA target past the last layer", () => repack((h) => { h.modules[0].targets = ["h2.attn.qkv"]; }), /LoRA target "h2.attn.qkv" names layer 2, but the model has layers 0..1/],
    ["overlapping tensors", () => repack((h) => {
      const f = h.tensors["h0.attn.qkv.lora.A"].offsets;
      h.tensors["h1.steer"].offsets = [f[0], f[0] + 32]; // the same bytes twice, and a hole where it was
    }), /tensor "h[01]\.[a-z.A]+" starts at data byte \d+, but the tensors before it end at \d+; tensors must lie back to back/],
    ["bytes after the last tensor", () => repack((h, d) => Buffer.concat([d, Buffer.alloc(8)])), /has 8 bytes after its last tensor that no tensor declares/],
    ["another dtype", () => repack((h) => { h.tensors["h1.steer"].dtype = "F16"; }), /tensor "h1.steer" has dtype "F16"; life cards store "F32" only/],
  ];

  // Remove a tensor's bytes from the data and shift the offsets after it.
  function dropBytes(h: any, d: Uint8Array, [b, e]: [number, number]): Uint8Array {
    for (const t of Object.values(h.tensors) as any[]) if (t.offsets[0] >= e) t.offsets = [t.offsets[0] - (e - b), t.offsets[1] - (e - b)];
    return Buffer.concat([d.subarray(0, b), d.subarray(e)]);
  }

  for (const [what, bytes, message, against] of refusals) {
    it(`refuses ${what} with one sentence, creating no tensor`, () => {
      const b = bytes();
      const before = tf.memory().numTensors;
      let error: Error | null = null;
      try {
        cardFromBytes(b, (against as any) ?? BASE);
      } catch (e) {
        error = e as Error;
      }
      expect(error, `${what} was accepted`).not.toBeNull();
      expect(error!.message).toMatch(message);
      expect(error!.message.split(/[.;]\s+[A-Z]/).length).toBe(1); // one sentence
      expect(error!.message).not.toMatch(/\n/);
      expect(tf.memory().numTensors).toBe(before);
    });
  }
  afterAll(() => tf.dispose(Object.values(other)));

  it("refuses a card file that is not there, and a card made of bad parts", () => {
    expect(() => loadCard("/nonexistent/x.card", BASE)).toThrow(/life card file "\/nonexistent\/x.card" cannot be read \(ENOENT\)/);
    const A = tf.zeros([8, 3]);
    const B = tf.zeros([2, 8]);
    expect(() => makeCard({ name: "bad", modules: [{ kind: "lora", targets: ["h0.attn.proj"], rank: 2, alpha: 2 }], tensors: { "h0.attn.proj.lora.A": A, "h0.attn.proj.lora.B": B } }, BASE))
      .toThrow(/life card "bad" tensor "h0.attn.proj.lora.A" has shape \[8,3\], but its module needs \[8,2\] on this base/);
    const N = tf.tensor([NaN, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => makeCard({ name: "nan", modules: [{ kind: "steer", layers: [0] }], tensors: { "h0.steer": N } }, BASE))
      .toThrow(/life card "nan" tensor "h0.steer" holds a non-finite value at index 0/);
    tf.dispose([A, B, N]);
  });
});

describe("the sockets", () => {
  it("unplugged is the base bit for bit: no adapter at all", () => {
    expect(cardAdapter([null, null, null])).toBeUndefined();
    expect(cardAdapter([[], [{ card: tone, strength: 0 }], null])).toBeUndefined();
  });

  it("a card changes the output (so the tests below can fail)", () => {
    const a = logits(base, ids);
    const b = logits(base, ids, cardAdapter([tone, facts, steerOnly]));
    for (let i = 0; i < 3; i++) expect(maxDiff(rowOf(a, i), rowOf(b, i))).toBeGreaterThan(1e-3);
    tf.dispose([a, b]);
  });

  it("isolates rows: each row of a mixed batch equals that row run alone with its card", () => {
    const slots = [tone, null, [{ card: facts, strength: 0.5 }, { card: steerOnly, strength: 2 }]];
    const batch = logits(base, ids, cardAdapter(slots));
    const plainBatch = logits(base, ids);
    for (let i = 0; i < 3; i++) {
      const alone = logits(base, row(i), cardAdapter([slots[i] as any]));
      expect(maxDiff(rowOf(batch, i), alone)).toBeLessThan(1e-5);
      if (alone) alone.dispose();
    }
    // The row without a card is the base bit for bit (same batch, no adapter).
    expect(bits(rowOf(batch, 1))).toEqual(bits(rowOf(plainBatch, 1)));
    tf.dispose([batch, plainBatch]);
  });

  it("a card at strength 0 in a mixed batch leaves its row the base bit for bit, −0 and all", () => {
    const slots = [[{ card: tone, strength: 0 }], tone, [{ card: facts, strength: 0 }, { card: steerOnly, strength: 0 }]];
    const batch = logits(base, ids, cardAdapter(slots));
    const plain = logits(base, ids);
    expect(bits(rowOf(batch, 0))).toEqual(bits(rowOf(plain, 0)));
    expect(bits(rowOf(batch, 2))).toEqual(bits(rowOf(plain, 2)));
    expect(maxDiff(rowOf(batch, 1), rowOf(plain, 1))).toBeGreaterThan(1e-3);
    // and directly at a socket, where y holds −0: rows without a card keep their exact bits
    const adapter = cardAdapter([tone, null])!;
    const x = tf.ones([2, 1, 8]);
    const y = tf.tensor([[[-0, ...Array(23).fill(1)]], [[-0, ...Array(23).fill(-0)]]]);
    const out = adapter.project!("h0.attn.qkv", x, y);
    expect(bits(out.slice([1, 0, 0], [1, 1, 24]))).toEqual(bits(y.slice([1, 0, 0], [1, 1, 24])));
    tf.dispose([batch, plain, x, y, out]);
  });

  it("mixes cards exactly: Σ wₖ(αₖ/rₖ)AₖBₖ by rank concatenation equals the merged weights", () => {
    const mix = [{ card: tone, strength: 0.7 }, { card: facts, strength: -0.4 }, { card: steerOnly, strength: 1.5 }];
    const merged = mergeCards(base, mix);
    const viaMerge = logits(merged, ids);
    const viaSockets = logits(base, ids, cardAdapter([mix, mix, mix]));
    expect(maxDiff(viaMerge, viaSockets)).toBeLessThan(1e-5);
    // The merged weight itself against plain loops: W + Σ s(α/r)·A·B at one socket both cards touch? (tone: qkv; facts: proj)
    const W = base["h1.attn.qkv.w"].arraySync() as number[][];
    const A = tone.tensors["h1.attn.qkv.lora.A"].arraySync() as number[][];
    const Bm = tone.tensors["h1.attn.qkv.lora.B"].arraySync() as number[][];
    const got = merged["h1.attn.qkv.w"].arraySync() as number[][];
    for (let i = 0; i < 8; i++)
      for (let j = 0; j < 24; j++) {
        let want = W[i][j];
        for (let k = 0; k < 2; k++) want += 0.7 * (4 / 2) * A[i][k] * Bm[k][j];
        expect(got[i][j]).toBeCloseTo(want, 5);
      }
    // A steering vector merges into the block's last bias: b + Σ s·v
    const b = base["h0.mlp.proj.b"].dataSync();
    const v = steerOnly.tensors["h0.steer"].dataSync();
    const bm = merged["h0.mlp.proj.b"].dataSync();
    for (let i = 0; i < 8; i++) expect(bm[i]).toBeCloseTo(b[i] + 1.5 * v[i], 6);
    tf.dispose([viaMerge, viaSockets, ...Object.values(merged)]);
  });

  it("one card plugged twice in a row adds its strengths", () => {
    const x = tf.tidy(() => tf.randomNormal([3, 2, 8], 0, 1, "float32", 5));
    const y = tf.zeros([3, 2, 8]);
    const both = cardAdapter([[{ card: facts, strength: 0.3 }, { card: facts, strength: 0.2 }], [{ card: facts, strength: 0.5 }], null])!;
    const out = both.project!("h0.attn.proj", x, y);
    // row 0 (0.3 + 0.2) vs a single plug of 0.5 on row 0's input
    const single = cardAdapter([[{ card: facts, strength: 0.5 }], null, null])!.project!("h0.attn.proj", x, y);
    expect(maxDiff(rowOf(out, 0), rowOf(single, 0))).toBeLessThan(1e-6);
    tf.dispose([x, y, out, single]);
  });

  it("works with the KV cache: token by token equals the whole sequence", () => {
    const adapter = cardAdapter([tone, [{ card: facts, strength: 0.5 }, { card: steerOnly, strength: 1 }], null]);
    const full = logits(base, ids, adapter);
    let cache = emptyCache(CFG, 3);
    const steps: tf.Tensor[] = [];
    for (let t = 0; t < 6; t++) {
      const out = decoderForward(base, CFG, ids.slice([0, t], [3, 1]) as tf.Tensor2D, { cache, adapter });
      tf.dispose([...cache.k, ...cache.v]);
      cache = out.cache!;
      steps.push(out.logits);
    }
    const stepwise = tf.concat(steps, 1);
    expect(maxDiff(full, stepwise)).toBeLessThan(1e-5);
    tf.dispose([full, stepwise, ...steps, ...cache.k, ...cache.v]);
  });

  it("leaks no tensors, and refuses a batch of the wrong size", () => {
    const adapter = cardAdapter([tone, null, [{ card: facts, strength: 0.5 }, { card: steerOnly, strength: 1 }]]);
    const out0 = logits(base, ids, adapter); // the first call builds the plans
    out0.dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.tidy(() => { logits(base, ids, adapter); });
    expect(tf.memory().numTensors).toBe(before);
    // Outside any tidy, a socket call leaves only its output behind.
    const x = tf.ones([3, 6, 8]);
    const y = tf.zeros([3, 6, 24]);
    const h = tf.zeros([3, 6, 8]);
    const n0 = tf.memory().numTensors;
    const a = adapter!.project!("h1.attn.qkv", x, y);
    const r = adapter!.residual!(1, h);
    expect(tf.memory().numTensors).toBe(n0 + 2);
    tf.dispose([x, y, h, a, r]);
    expect(() => tf.tidy(() => logits(base, row(0), adapter))).toThrow(/the card adapter has 3 slots \(one per batch row\), but socket "h0.attn.qkv" got a batch of 1 rows/);
    expect(() => cardAdapter([])).toThrow(/slots must list one entry per batch row/);
    expect(() => cardAdapter([[{ card: tone, strength: NaN }]])).toThrow(/slots\[0\] strength for card "tone" must be a finite number, got NaN/);
    expect(() => cardAdapter([tone], { config: { ...CFG, dModel: 4, dFF: 8 } })).toThrow(/life card "tone" tensor "h0.attn.qkv.lora.A" must be \[4,2\] for this config, got \[8,2\]/);
  });
});

describe("making a card", () => {
  it("steeringVector is the mean residual activation of the positive texts minus the negative ones", () => {
    const pos = [[1, 2, 3, 4], [2, 3, 4, 5]];
    const neg = [[9, 8, 7, 6], [12, 11, 10, 9]];
    const v = steeringVector(base, CFG, pos, neg, [0, 1]);
    expect(Object.keys(v).sort()).toEqual(["h0.steer", "h1.steer"]);
    // The slow way: one batched forward per kind, every block output read back, averaged in plain JS.
    const meanAt = (texts: number[][], l: number): number[] => {
      const seen: number[][][][] = [];
      const rec = { residual: (layer: number, h: tf.Tensor) => ((seen[layer] = h.arraySync() as number[][][]), h) };
      tf.tidy(() => { decoderForward(base, CFG, tf.tensor2d(texts, undefined, "int32"), { adapter: rec }); });
      const acc = new Array(CFG.dModel).fill(0);
      let n = 0;
      for (const r of seen[l]) for (const p of r) { p.forEach((x, i) => (acc[i] += x)); n++; }
      return acc.map((a) => a / n);
    };
    for (const l of [0, 1]) {
      const want = meanAt(pos, l).map((p, i) => p - meanAt(neg, l)[i]);
      const got = Array.from(v[`h${l}.steer`].dataSync());
      got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 5));
    }
    // It plugs in as a card: h + s·v after each chosen block.
    const card = makeCard({ name: "v", modules: [{ kind: "steer", layers: [0, 1] }], tensors: v }, BASE);
    const withCard = logits(base, ids, cardAdapter([[{ card, strength: 2 }], null, null]));
    const merged = mergeCards(base, [{ card, strength: 2 }]);
    const viaBias = logits(merged, ids);
    expect(maxDiff(rowOf(withCard, 0), rowOf(viaBias, 0))).toBeLessThan(1e-5);
    expect(() => steeringVector(base, CFG, pos, neg, [2])).toThrow(/layers must be a non-empty list of layer indices in 0..1, got \[2\]/);
    expect(() => steeringVector(base, CFG, [], neg, [0])).toThrow(/positiveIds must be a non-empty list of token id lists of length 1..8/);
    tf.dispose([withCard, viaBias, ...Object.values(v), ...Object.values(merged)]);
    disposeCard(card);
  });

  it("trainCardLora trains only the LoRA tensors, seeded, lowers the loss on its texts, leaves the base as it was", () => {
    // An untrained base has tiny embeddings (std 0.02), so its tied head cannot be confident about
    // anything; a base with larger embeddings stands in for a trained one.
    const trained = initDecoder(CFG, 5);
    (trained["wte"] as tf.Variable).assign(tf.tidy(() => trained["wte"].mul(25)));
    const fp = fingerprint(trained, CFG);
    const TRAINED = { params: trained, config: CFG };
    const texts = [Array.from({ length: 40 }, (_, i) => [1, 5, 9, 2][i % 4])];
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const opts = { rank: 2, steps: 30, lr: 1e-1, seed: 7, batchSize: 4, seqLen: 6, targets: ["attn.qkv", "mlp.fc"], log: (l: string) => lines.push(l) };
    const made = trainCardLora(trained, CFG, texts, opts);
    expect(fingerprint(trained, CFG)).toBe(fp);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines[0]).toMatch(/^step \d+\/30  loss/);
    expect(made.result.trainLoss[made.result.trainLoss.length - 1]).toBeLessThan(made.result.trainLoss[0] - 0.5);
    expect(made.module).toEqual({ kind: "lora", targets: ["attn.qkv", "mlp.fc"], rank: 2, alpha: 2 });
    expect(made.training.data).toMatch(/^sha256:/);
    const card = makeCard({ name: "pattern", modules: [made.module], tensors: made.tensors, training: made.training }, TRAINED);
    // The card really carries what was learned: lower loss on the pattern with it than without.
    const batch = tf.tensor2d([texts[0].slice(0, 7), texts[0].slice(1, 8)], undefined, "int32");
    const plain = tf.tidy(() => lmLoss(trained, CFG, batch).dataSync()[0]);
    const carded = tf.tidy(() => lmLoss(trained, CFG, batch, { adapter: cardAdapter([card, card]) }).dataSync()[0]);
    expect(carded).toBeLessThan(plain - 0.5);
    // Seeded: the same run gives the same tensors.
    const again = trainCardLora(trained, CFG, texts, { ...opts, log: () => {} });
    for (const n of Object.keys(made.tensors)) expect(bits(again.tensors[n])).toEqual(bits(made.tensors[n]));
    tf.dispose([batch, ...Object.values(made.tensors), ...Object.values(again.tensors)]);
    disposeCard(card);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(trained));
  });
});
