import { describe, it, expect } from "vitest";
import { tf, Rng } from "../lib/tf";
import { Pair, loadPairs } from "../lib/data";
import { DecoderConfig, countParams, decoderForward, flopsPerToken, initDecoder } from "../lib/decoder";
import {
  EncoderDecoderConfig, countEncoderDecoderParams, encoderDecoderFlopsPerToken, encoderDecoderForward, greedyTranslate,
  initEncoderDecoder, seq2seqLoss,
} from "../lib/encoderDecoder";
import {
  BOS, EOS, PAD, PREFIX, SEPARATOR, PREFIX_TRANSLATOR, SEQ2SEQ_TRANSLATOR, chrF, decoderOnlyFlopsPerPair,
  encoderDecoderFlopsPerPair, exactMatch, lmPrompt, packedSeq2seqLoss, prefixLmLoss, prefixLmRows, prefixLmWeights,
  rowBatches, seq2seqRows, translateDecoderOnly, translateEncoderDecoder, translationTask, WordTokenizer,
} from "../lib/translation";

const PAIRS: Pair[] = [
  { en: "The book is on the table.", fr: "Le livre est sur la table.", zh: "", split: "heldout" },
  { en: "A cat.", fr: "Un chat.", zh: "", split: "train" },
  { en: "The dog is red.", fr: "Le chien est rouge.", zh: "", split: "train" },
];
const task = translationTask(PAIRS);
const V = task.tokenizer.vocabSize;
const S2S: EncoderDecoderConfig = { vocabSize: V, contextLength: 32, dModel: 16, nEncoderLayers: 1, nDecoderLayers: 2, nHeads: 2, dFF: 24, positional: "learned" };
const LM: DecoderConfig = { vocabSize: V, contextLength: 24, dModel: 16, nLayers: 2, nHeads: 2, dFF: 24, positional: "learned" };

// −log softmax(row)[target], in float64 over a plain array
function nll(row: number[], target: number): number {
  const m = Math.max(...row);
  const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
  return -(row[target] - m - Math.log(z));
}

describe("words as tokens", () => {
  it("splits words, elided articles and punctuation, and joins them back", () => {
    expect(WordTokenizer.split("L'arbre est là.")).toEqual(["L'", "arbre", "est", "là", "."]);
    expect(WordTokenizer.split(PREFIX + "A cat." + SEPARATOR)).toEqual(["Translate", "English", "to", "French", ":", "A", "cat", ".", "="]);
    const pairs = loadPairs();
    const tok = new WordTokenizer(pairs.flatMap((q) => [q.en, q.fr]), { specials: ["<pad>"] });
    expect(tok.vocab[0]).toBe("<pad>");
    for (const q of pairs) for (const s of [q.en, q.fr]) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.decode([0, ...tok.encode("Le livre.")], { skipSpecials: true })).toBe("Le livre.");
    expect(() => tok.encode("Le zeppelin.")).toThrow(/"zeppelin"/);
    expect(() => tok.decode([tok.vocabSize])).toThrow(/ids\[0\]/);
  });
});

describe("the translation task", () => {
  it("has one vocabulary with the specials first and both languages and the prompt in it", () => {
    expect(task.tokenizer.vocab.slice(0, 3)).toEqual(["<pad>", "<bos>", "<eos>"]);
    expect([PAD, BOS, EOS]).toEqual([0, 1, 2]);
    for (const w of ["Translate", "French", ":", "=", "Le", "livre", "The", "."]) expect(task.tokenizer.vocab).toContain(w);
    expect(task.train.length).toBe(2);
    expect(task.heldOut.map((p) => p.en)).toEqual(["The book is on the table."]);
    expect([task.srcLen, task.tgtLen, task.lmLen]).toEqual([7, 8, 5 + 7 + 1 + 7 + 1]);
    const chars = translationTask(PAIRS, { unit: "char" });
    expect([chars.srcLen, chars.tgtLen, chars.lmLen]).toEqual([25, 27, PREFIX.length + 25 + SEPARATOR.length + 26 + 1]);
    expect(() => translationTask(PAIRS, { unit: "byte" as "word" })).toThrow(/unit/);
  });

  it("holds the chapter's sentence out of training in the shipped pairs, and every held-out word is seen in training", () => {
    const t = translationTask(loadPairs());
    expect(t.heldOut.find((p) => p.en === "The book is on the table.")?.fr).toBe("Le livre est sur la table.");
    expect(t.train.some((p) => p.en === "The book is on the table.")).toBe(false);
    expect(t.train.length).toBeGreaterThan(t.heldOut.length);
    const seen = new Set(t.train.flatMap((p) => [...WordTokenizer.split(p.en), ...WordTokenizer.split(p.fr)]));
    expect(t.heldOut.flatMap((p) => [...WordTokenizer.split(p.en), ...WordTokenizer.split(p.fr)]).filter((w) => !seen.has(w))).toEqual([]);
  });

  it("refuses pairs with the separator in them, and no pairs", () => {
    expect(() => translationTask([{ en: "a = b", fr: "c", zh: "", split: "train" }])).toThrow(/must not contain "="/);
    expect(() => translationTask([])).toThrow(/non-empty/);
  });
});

describe("packed rows", () => {
  for (const unit of ["word", "char"] as const) {
    const t = translationTask(PAIRS, { unit });
    const enc = (s: string) => t.tokenizer.encode(s);
    it(`seq2seq rows (${unit}s): the source padded to S, then bos + target + eos padded to T + 1`, () => {
      const [row] = seq2seqRows(t, [PAIRS[1]]);
      expect(row.length).toBe(t.srcLen + t.tgtLen + 1);
      const src = row.slice(0, t.srcLen), tgt = row.slice(t.srcLen);
      const n = enc("A cat.").length, m = enc("Un chat.").length;
      expect(src.slice(0, n)).toEqual(enc("A cat."));
      expect(src.slice(n).every((i) => i === PAD)).toBe(true);
      expect(tgt[0]).toBe(BOS);
      expect(t.tokenizer.decode(tgt.slice(1, m + 1))).toBe("Un chat.");
      expect(tgt[m + 1]).toBe(EOS);
      expect(tgt.slice(m + 2).every((i) => i === PAD)).toBe(true);
    });

    it(`prefix-LM rows and their weights (${unit}s): the French and eos only, or every real token`, () => {
      const rows = prefixLmRows(t, PAIRS.slice(1));
      const W = t.lmLen;
      expect(rows.every((r) => r.length === W)).toBe(true);
      const ids = enc(lmPrompt("A cat.") + "Un chat.");
      expect(rows[0].slice(0, ids.length)).toEqual(ids);
      expect(rows[0][ids.length]).toBe(EOS);
      const answer = prefixLmWeights(t, rows, true);
      const all = prefixLmWeights(t, rows, false);
      expect(answer.length).toBe(2 * (W - 1));
      // slow version: target t (ids index, 1 … W−1) is scored iff it lies in [start, len)
      const first = answer.slice(0, W - 1);
      const start = enc(lmPrompt("A cat.")).length;
      for (let j = 1; j < W; j++) {
        expect(first[j - 1]).toBe(j >= start && j <= ids.length ? 1 : 0);
        expect(all[j - 1]).toBe(j <= ids.length ? 1 : 0);
      }
      expect(first.reduce((a, b) => a + b, 0)).toBe(enc("Un chat.").length + 1);
    });
  }

  it("rowBatches draws whole rows with the seeded generator", () => {
    const rows = seq2seqRows(task, PAIRS);
    const draw = rowBatches(rows, 5, new Rng(3));
    const b = draw();
    expect(b.shape).toEqual([5, rows[0].length]);
    const r = new Rng(3);
    expect(b.arraySync()).toEqual(Array.from({ length: 5 }, () => rows[r.int(rows.length)]));
    b.dispose();
    expect(() => rowBatches([], 2, new Rng(1))).toThrow(/non-empty/);
  });
});

describe("the two losses", () => {
  it("packedSeq2seqLoss = seq2seqLoss on the unpacked tensors = a loop over the logits", () => {
    const p = initEncoderDecoder(S2S, 5);
    const rows = seq2seqRows(task, PAIRS);
    const batch = tf.tensor2d(rows, undefined, "int32");
    const packed = packedSeq2seqLoss(p, S2S, batch, task.srcLen).dataSync()[0];
    const S = task.srcLen, T = task.tgtLen;
    const srcLengths = PAIRS.map((q) => task.tokenizer.encode(q.en).length), tgtLengths = PAIRS.map((q) => task.tokenizer.encode(q.fr).length + 1);
    const src = tf.tensor2d(rows.map((r) => r.slice(0, S)), undefined, "int32");
    const tgtIn = tf.tensor2d(rows.map((r) => r.slice(S, S + T)), undefined, "int32");
    const tgtOut = tf.tensor2d(rows.map((r) => r.slice(S + 1)), undefined, "int32");
    const direct = seq2seqLoss(p, S2S, src, tgtIn, tgtOut, { srcLengths, tgtLengths }).dataSync()[0];
    const logits = encoderDecoderForward(p, S2S, src, tgtIn, { srcLengths }).logits.arraySync();
    let sum = 0, n = 0;
    rows.forEach((r, b) => { for (let t = 0; t < tgtLengths[b]; t++) { sum += nll(logits[b][t], r[S + 1 + t]); n++; } });
    expect(packed).toBeCloseTo(direct, 6);
    expect(packed).toBeCloseTo(sum / n, 4);
    tf.dispose([batch, src, tgtIn, tgtOut, ...Object.values(p)]);
  });

  it("prefixLmLoss = a loop over the logits of the scored targets (answer only, and all)", () => {
    const p = initDecoder(LM, 6);
    const rows = prefixLmRows(task, PAIRS);
    const batch = tf.tensor2d(rows, undefined, "int32");
    const W = task.lmLen;
    const logits = decoderForward(p, LM, tf.tensor2d(rows.map((r) => r.slice(0, W - 1)), undefined, "int32")).logits.arraySync();
    for (const answerOnly of [true, false]) {
      const w = prefixLmWeights(task, rows, answerOnly);
      let sum = 0, n = 0;
      rows.forEach((r, b) => { for (let t = 1; t < W; t++) if (w[b * (W - 1) + t - 1]) { sum += nll(logits[b][t - 1], r[t]); n++; } });
      expect(prefixLmLoss(p, LM, task, batch, answerOnly).dataSync()[0]).toBeCloseTo(sum / n, 4);
    }
    tf.dispose([batch, ...Object.values(p)]);
  });

  it("leaves no tensors behind inside tf.tidy, and names the bad batch", () => {
    const p = initDecoder(LM, 6);
    const batch = tf.tensor2d(prefixLmRows(task, PAIRS), undefined, "int32");
    const before = tf.memory().numTensors;
    tf.tidy(() => { prefixLmLoss(p, LM, task, batch, true); });
    expect(tf.memory().numTensors).toBe(before);
    const s2s = initEncoderDecoder(S2S, 1);
    expect(() => packedSeq2seqLoss(s2s, S2S, tf.zeros([2, 6], "int32") as tf.Tensor2D, task.srcLen)).toThrow(/srcLen \+ tgtLen \+ 1/);
    tf.dispose([batch, ...Object.values(p), ...Object.values(s2s)]);
  });
});

describe("translating", () => {
  it("the decoder-only lockstep batch = one sentence at a time, full forward and argmax each step", () => {
    const p = initDecoder(LM, 9);
    const sentences = ["A cat.", "The book is on the table.", "The dog is red."];
    const before = tf.memory().numTensors;
    const batched = translateDecoderOnly(p, LM, task, sentences);
    expect(tf.memory().numTensors).toBe(before);
    const maxNew = task.tgtLen + 8;
    const slow = sentences.map((s) => {
      const ids = task.tokenizer.encode(lmPrompt(s));
      const out: number[] = [];
      while (out.length < maxNew && ids.length < LM.contextLength) {
        const row = tf.tidy(() => decoderForward(p, LM, tf.tensor2d([ids], undefined, "int32")).logits.arraySync()[0][ids.length - 1]);
        const next = row.indexOf(Math.max(...row));
        if (next === EOS) break;
        out.push(next);
        ids.push(next);
      }
      return task.tokenizer.decode(out);
    });
    expect(batched).toEqual(slow);
    tf.dispose(Object.values(p));
  });

  it("the encoder-decoder batch of padded sentences = each sentence alone", () => {
    const p = initEncoderDecoder(S2S, 4);
    const sentences = ["A cat.", "The book is on the table."];
    const batched = translateEncoderDecoder(p, S2S, task, sentences);
    for (const [i, s] of sentences.entries()) {
      const src = tf.tensor2d([task.tokenizer.encode(s)], undefined, "int32");
      const alone = greedyTranslate(p, S2S, src, { bos: BOS, eos: EOS, maxLen: Math.min(task.tgtLen + 8, S2S.contextLength) });
      expect(batched[i]).toBe(task.tokenizer.decode(alone[0]));
      src.dispose();
    }
    expect(() => translateEncoderDecoder(p, S2S, task, [])).toThrow(/non-empty/);
    tf.dispose(Object.values(p));
  });
});

describe("scores", () => {
  it("exact match counts whole sentences", () => {
    expect(exactMatch(["a", "b", "c", "d"], ["a", "x", "c", "d "])).toBe(0.5);
    expect(() => exactMatch(["a"], ["a", "b"])).toThrow(/same length/);
  });

  // Reference values from sacreBLEU 2.6.0, CHRF() defaults (char order 6, beta 2, spaces removed):
  // CHRF().corpus_score(hyps, [refs]).score
  it("chrF matches sacreBLEU's corpus chrF", () => {
    expect(chrF(["Le livre est sur la table."], ["Le livre est sur la table."])).toBeCloseTo(100, 10);
    expect(chrF(["Le livre est sous la table."], ["Le livre est sur la table."])).toBeCloseTo(74.59371320248871, 10);
    expect(chrF(["Les chiens sont sur la table rouge.", "Un garçon est derrière ma boîte."],
      ["Le chien est sur la table rouge.", "Un garçon est devant ma boîte."])).toBeCloseTo(71.14980522895542, 10);
    expect(chrF(["La"], ["Le livre est sur la table."])).toBeCloseTo(5.813953488372093, 10);
    expect(chrF([""], ["Le livre."])).toBe(0);
  });

  it("chrF is the F-score of mean n-gram precision and recall (a slow count over substrings)", () => {
    const h = "abcab", r = "abcbca";
    let P = 0, R = 0;
    for (let n = 1; n <= 3; n++) {
      const grams = (s: string) => Array.from({ length: s.length - n + 1 }, (_, i) => s.slice(i, i + n));
      const hg = grams(h), rg = grams(r);
      const left = [...rg];
      let m = 0;
      for (const g of hg) { const k = left.indexOf(g); if (k >= 0) { m++; left.splice(k, 1); } }
      P += m / hg.length / 3;
      R += m / rg.length / 3;
    }
    expect(chrF([h], [r], 3, 1)).toBeCloseTo((100 * 2 * P * R) / (P + R), 10);
    expect(() => chrF(["a"], ["a"], 0)).toThrow(/order/);
  });
});

describe("compute per pair", () => {
  it("at full context the per-pair counts are contextLength × the per-token counters", () => {
    expect(decoderOnlyFlopsPerPair(LM, LM.contextLength)).toBe(LM.contextLength * flopsPerToken(LM));
    const C = S2S.contextLength;
    expect(encoderDecoderFlopsPerPair(S2S, C, C)).toBe(C * encoderDecoderFlopsPerToken(S2S));
  });

  it("the book's two translators have matched parameter counts (within 1%)", () => {
    const t = translationTask(loadPairs());
    const a = countEncoderDecoderParams({ ...SEQ2SEQ_TRANSLATOR.model, vocabSize: t.tokenizer.vocabSize }).nonEmbedding;
    const b = countParams({ ...PREFIX_TRANSLATOR.model, vocabSize: t.tokenizer.vocabSize }).nonEmbedding;
    expect(Math.abs(a - b) / a).toBeLessThan(0.01);
  });
});
