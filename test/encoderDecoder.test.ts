import { describe, it, expect } from "vitest";
import { tf } from "../lib/tf";
import {
  EncoderDecoderConfig, TINY_SEQ2SEQ, initEncoderDecoder, encoderDecoderForward, encode, seq2seqLoss, greedyTranslate,
  countEncoderDecoderParams, encoderDecoderFlopsPerToken, encoderDecoderShapes, emptySeq2SeqCache, Seq2SeqCache,
} from "../lib/encoderDecoder";

const SMALL: EncoderDecoderConfig = {
  vocabSize: 13, contextLength: 10, dModel: 12, nEncoderLayers: 2, nDecoderLayers: 1, nHeads: 3, dFF: 20, positional: "learned",
};

function ids(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], "int32");
}

function maxAbs(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

describe("encoder-decoder parameters", () => {
  for (const cfg of [SMALL, TINY_SEQ2SEQ, { ...SMALL, positional: "sinusoidal" as const }]) {
    it(`count formula = the initialised tensors (d=${cfg.dModel}, ${cfg.positional})`, () => {
      const p = initEncoderDecoder(cfg, 1);
      const summed = Object.values(p).reduce((s, t) => s + t.size, 0);
      const c = countEncoderDecoderParams(cfg);
      expect(c.total).toBe(summed);
      const { dModel: d, dFF: F, vocabSize: V, contextLength: C } = cfg;
      const enc = cfg.nEncoderLayers * (4 * d * d + 2 * d * F + 9 * d + F) + 2 * d;
      const dec = cfg.nDecoderLayers * (8 * d * d + 2 * d * F + 15 * d + F) + 2 * d;
      expect(c.total).toBe(enc + dec + V * d + (cfg.positional === "learned" ? 2 * C * d : 0));
      const encSum = Object.entries(p).filter(([n]) => n.startsWith("enc.h") || n.startsWith("enc.lnf"))
        .reduce((s, [, t]) => s + t.size, 0);
      expect(c.encoder).toBe(encSum);
      Object.values(p).forEach((t) => t.dispose());
    });
  }

  it("dFF = 4d: encoder layer 12d² + 13d, decoder layer 16d² + 19d", () => {
    const d = TINY_SEQ2SEQ.dModel;
    const c = countEncoderDecoderParams({ ...TINY_SEQ2SEQ, nEncoderLayers: 1, nDecoderLayers: 1 });
    expect(c.encoder).toBe(12 * d * d + 13 * d + 2 * d);
    expect(c.decoder).toBe(16 * d * d + 19 * d + 2 * d);
    const f = encoderDecoderFlopsPerToken(TINY_SEQ2SEQ);
    expect(f).toBe(6 * countEncoderDecoderParams(TINY_SEQ2SEQ).nonEmbedding + 6 * 48 * d * (2 + 2 * 2));
  });

  it("uses the contract's names", () => {
    const shapes = Object.fromEntries(encoderDecoderShapes(SMALL));
    expect(shapes["enc.h0.attn.qkv.w"]).toEqual([12, 36]);
    expect(shapes["dec.h0.xattn.q.w"]).toEqual([12, 12]);
    expect(shapes["dec.h0.xattn.kv.w"]).toEqual([12, 24]);
    expect(shapes["dec.h0.ln3.g"]).toEqual([12]);
    expect(shapes["enc.h0.xattn.q.w"]).toBeUndefined();
    expect(shapes["wte"]).toEqual([13, 12]);
  });
});

describe("encoderDecoderForward", () => {
  const p = initEncoderDecoder(SMALL, 2);
  const src = ids([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 0]]);
  const srcLengths = [3, 5];
  const tgt = ids([[1, 5, 4, 3], [1, 10, 9, 8]]);

  it("returns logits [B,T,V]", () => {
    expect(encoderDecoderForward(p, SMALL, src, tgt, { srcLengths }).logits.shape).toEqual([2, 4, 13]);
  });

  it("padding in the source changes nothing for the real tokens", () => {
    const padded = encoderDecoderForward(p, SMALL, src, tgt, { srcLengths }).logits;
    // other pad ids give the same logits
    const junk = ids([[3, 4, 5, 12, 11, 2], [6, 7, 8, 9, 10, 7]]);
    expect(maxAbs(padded, encoderDecoderForward(p, SMALL, junk, tgt, { srcLengths }).logits)).toBe(0);
    // and row 0 alone, unpadded, gives the same logits too
    const alone = encoderDecoderForward(p, SMALL, ids([[3, 4, 5]]), ids([[1, 5, 4, 3]])).logits;
    expect(maxAbs(padded.slice([0, 0, 0], [1, 4, 13]), alone)).toBeLessThan(1e-5);
    // the encoder's real positions agree as well
    const m = encode(p, SMALL, src, srcLengths), m0 = encode(p, SMALL, ids([[3, 4, 5]]));
    expect(maxAbs(m.slice([0, 0, 0], [1, 3, 12]), m0)).toBeLessThan(1e-5);
    // without the lengths, the padding does leak in (the test can fail)
    expect(maxAbs(padded, encoderDecoderForward(p, SMALL, src, tgt).logits)).toBeGreaterThan(1e-4);
  });

  it("the encoder is bidirectional, the decoder causal", () => {
    const a = encoderDecoderForward(p, SMALL, src, tgt, { srcLengths }).logits;
    const laterTgt = encoderDecoderForward(p, SMALL, src, ids([[1, 5, 0, 0], [1, 10, 0, 0]]), { srcLengths }).logits;
    expect(maxAbs(a.slice([0, 0, 0], [2, 2, 13]), laterTgt.slice([0, 0, 0], [2, 2, 13]))).toBe(0);
    expect(maxAbs(a.slice([0, 2, 0], [2, 1, 13]), laterTgt.slice([0, 2, 0], [2, 1, 13]))).toBeGreaterThan(1e-4);
    // the last source token changes the encoder output at the first position
    const m1 = encode(p, SMALL, ids([[3, 4, 5]])), m2 = encode(p, SMALL, ids([[3, 4, 6]]));
    expect(maxAbs(m1.slice([0, 0, 0], [1, 1, 12]), m2.slice([0, 0, 0], [1, 1, 12]))).toBeGreaterThan(1e-4);
  });

  it("with a cache, the encoder runs once and step-by-step logits equal the full forward to 1e-5", () => {
    const full = encoderDecoderForward(p, SMALL, src, tgt, { srcLengths }).logits;
    let cache: Seq2SeqCache = emptySeq2SeqCache(SMALL, 2);
    const parts: tf.Tensor[] = [];
    for (let t = 0; t < 4; t++) {
      const r = encoderDecoderForward(p, SMALL, src, tgt.slice([0, t], [2, 1]) as tf.Tensor2D, { srcLengths, cache });
      if (t > 0) expect(r.cache!.cross).toBe(cache.cross); // reused, not recomputed
      parts.push(r.logits);
      cache = r.cache!;
    }
    expect(cache.self.length).toBe(4);
    expect(maxAbs(full, tf.concat(parts, 1))).toBeLessThan(1e-5);
  });

  it("attention: true returns encoder, self and cross weights; padded source keys get 0", () => {
    const { attention } = encoderDecoderForward(p, SMALL, src, tgt, { srcLengths, attention: true });
    expect(attention!.encoder.length).toBe(2);
    expect(attention!.cross[0].shape).toEqual([2, 3, 4, 6]);
    expect(attention!.self[0].shape).toEqual([2, 3, 4, 4]);
    const c = attention!.cross[0].arraySync();
    expect(c[0][1][2].slice(3)).toEqual([0, 0, 0]);
    expect(c[0][1][2].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it("rejects bad input with one sentence", () => {
    expect(() => encoderDecoderForward(p, SMALL, src, tf.zeros([2, 3]) as tf.Tensor2D))
      .toThrow("tgtIn must be an int32 [batch, seq] tensor, got float32 shape [2,3]");
    expect(() => encoderDecoderForward(p, SMALL, ids([[1, 2]]), tgt)).toThrow(/srcIds must have the 2 rows of tgtIn/);
    expect(() => encode(p, SMALL, src, [3])).toThrow(/srcLengths must hold one length per source row \(2\)/);
  });
});

describe("seq2seqLoss and greedyTranslate", () => {
  it("the loss ignores target padding: a loop over the logits of the real positions", () => {
    const p = initEncoderDecoder(SMALL, 3);
    const src = ids([[3, 4, 5, 0], [6, 7, 8, 9]]);
    const tgtIn = ids([[1, 5, 4, 0], [1, 9, 8, 7]]), tgtOut = ids([[5, 4, 2, 0], [9, 8, 7, 2]]);
    const opts = { srcLengths: [3, 4], tgtLengths: [3, 4] };
    const loss = seq2seqLoss(p, SMALL, src, tgtIn, tgtOut, opts).dataSync()[0];
    const logits = encoderDecoderForward(p, SMALL, src, tgtIn, { srcLengths: opts.srcLengths }).logits.arraySync();
    const out = tgtOut.arraySync();
    let total = 0, n = 0;
    for (let b = 0; b < 2; b++) for (let t = 0; t < opts.tgtLengths[b]; t++) {
      const l = logits[b][t], mx = Math.max(...l);
      total += mx + Math.log(l.reduce((s, x) => s + Math.exp(x - mx), 0)) - l[out[b][t]];
      n++;
    }
    expect(loss).toBeCloseTo(total / n, 5);
    // a different pad id in tgtOut beyond the length changes nothing
    const other = seq2seqLoss(p, SMALL, src, tgtIn, ids([[5, 4, 2, 11], [9, 8, 7, 2]]), opts).dataSync()[0];
    expect(other).toBe(loss);
  });

  it("learns to reverse short sequences and greedyTranslate (encoder once, cached) reproduces them; no leaks", () => {
    const cfg: EncoderDecoderConfig = { ...SMALL, vocabSize: 10, dModel: 32, nHeads: 4, dFF: 64, nEncoderLayers: 1, nDecoderLayers: 1 };
    const BOS = 0, EOS = 1;
    // 8 pairs: 3..5 tokens from 2..9, target = reversed source
    const pairs = [[2, 3, 4], [5, 6, 7, 8], [9, 2, 5], [4, 4, 6, 7, 3], [8, 3], [6, 2, 9, 9], [7, 5, 3], [3, 8, 6, 2]];
    const S = 5, T = 6;
    const src = ids(pairs.map((s) => [...s, ...new Array(S - s.length).fill(0)]));
    const tin = ids(pairs.map((s) => [BOS, ...s.slice().reverse(), ...new Array(T - 1 - s.length).fill(0)]));
    const tout = ids(pairs.map((s) => [...s.slice().reverse(), EOS, ...new Array(T - 1 - s.length).fill(0)]));
    const opts = { srcLengths: pairs.map((s) => s.length), tgtLengths: pairs.map((s) => s.length + 1) };
    const p = initEncoderDecoder(cfg, 42);
    const opt = tf.train.adam(1e-2);
    let last = 0;
    for (let step = 0; step < 70; step++) {
      const l = tf.tidy(() => opt.minimize(() => seq2seqLoss(p, cfg, src, tin, tout, opts), true) as tf.Scalar);
      last = l.dataSync()[0];
      l.dispose();
    }
    expect(last).toBeLessThan(0.05);
    const before = tf.memory().numTensors;
    const got = greedyTranslate(p, cfg, src, { bos: BOS, eos: EOS, maxLen: 8, srcLengths: opts.srcLengths });
    expect(tf.memory().numTensors).toBe(before);
    expect(got).toEqual(pairs.map((s) => s.slice().reverse()));
  });

  it("greedyTranslate equals an argmax loop that reruns the full model each step", () => {
    const p = initEncoderDecoder(SMALL, 5);
    const src = ids([[3, 4, 5, 6]]);
    const got = greedyTranslate(p, SMALL, src, { bos: 1, eos: 2, maxLen: 6 });
    const ref: number[] = [];
    const prefix = [1];
    for (let t = 0; t < 6; t++) {
      const logits = encoderDecoderForward(p, SMALL, src, ids([prefix])).logits.arraySync()[0][t];
      const next = logits.indexOf(Math.max(...logits));
      if (next === 2) break;
      ref.push(next);
      prefix.push(next);
    }
    expect(got).toEqual([ref]);
    expect(() => greedyTranslate(p, SMALL, src, { bos: 1, eos: 2, maxLen: 11 })).toThrow(/maxLen must be an integer in \[1, 10\]/);
  });
});
