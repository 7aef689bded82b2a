// Tokenizers: the char tokenizer against a hand-built table, code points not UTF-16 units, and
// GPT-2's BPE counts that the chapter's notebooks quote.
import { describe, expect, it } from "vitest";
import { BPE_VOCAB_SIZE, CharTokenizer, bpeBytes, bpeDecode, bpeEncode, bpePieces } from "../lib/tokenizer";
import { loadCorpus } from "../lib/data";

describe("CharTokenizer", () => {
  it("vocabulary is the distinct characters sorted by code point, ids are their ranks", () => {
    const tok = new CharTokenizer("hello world");
    expect(tok.vocab).toEqual([" ", "d", "e", "h", "l", "o", "r", "w"]);
    expect(tok.vocabSize).toBe(8);
    // slow reference: look every character up by a linear scan of the sorted list
    const text = "low held word";
    expect(tok.encode(text)).toEqual([...text].map((c) => tok.vocab.indexOf(c)));
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it("round-trips both corpora", () => {
    for (const name of ["shakespeare", "tang"] as const) {
      const text = loadCorpus(name);
      const tok = new CharTokenizer(text);
      const sample = text.slice(0, 20000);
      expect(tok.decode(tok.encode(sample))).toBe(sample);
    }
  });

  it("one token per code point: a character outside the BMP is one token, sorted after 。", () => {
    const astral = "\u{2000B}"; // 𠀋, two UTF-16 units
    expect(astral.length).toBe(2);
    const tok = new CharTokenizer(`床前明月光，${astral}。`);
    expect(tok.vocabSize).toBe(8);
    expect(tok.encode(astral)).toHaveLength(1);
    // by code point U+2000B > U+FF0C (，) > U+3002 (。); UTF-16 order would put it before ，
    expect(tok.vocab[tok.vocabSize - 1]).toBe(astral);
    expect(tok.decode(tok.encode(`${astral}月光`))).toBe(`${astral}月光`);
  });

  it("the Tang corpus has characters outside the BMP and they round-trip", () => {
    const text = loadCorpus("tang");
    const tok = new CharTokenizer(text);
    const astral = tok.vocab.filter((c) => (c.codePointAt(0) as number) > 0xffff);
    expect(astral.length).toBeGreaterThan(0);
    for (const c of astral) expect(tok.encode(c)).toHaveLength(1);
    expect(tok.encode(text).length).toBe([...text].length);
  });

  it("specials come first; <unk> catches unseen characters; without it encode throws one sentence", () => {
    const tok = new CharTokenizer("abc", { specials: ["<pad>", "<bos>", "<eos>"] });
    expect(tok.vocab).toEqual(["<pad>", "<bos>", "<eos>", "a", "b", "c"]);
    expect([tok.id("<pad>"), tok.id("<bos>"), tok.id("<eos>")]).toEqual([0, 1, 2]);
    const ids = [tok.id("<bos>"), ...tok.encode("cab"), tok.id("<eos>")];
    expect(tok.decode(ids)).toBe("<bos>cab<eos>");
    expect(tok.decode(ids, { skipSpecials: true })).toBe("cab");
    expect(() => tok.encode("abz")).toThrow(/"z" \(U\+007A\) at code point 2/);
    // the text "<pad>" is five characters, never the special token
    expect(() => tok.encode("<pad>")).toThrow(/not in the vocabulary/);
    const unk = new CharTokenizer("ab", { specials: ["<unk>"] });
    expect(unk.encode("axb")).toEqual([1, 0, 2]);
  });

  it("rebuilds from a saved vocabulary with the same ids", () => {
    const tok = new CharTokenizer("床前明月光 moon", { specials: ["<pad>"] });
    const again = CharTokenizer.fromVocab(tok.vocab, ["<pad>"]);
    expect(again.vocab).toEqual(tok.vocab);
    expect(again.encode("月光 moon")).toEqual(tok.encode("月光 moon"));
    expect(() => CharTokenizer.fromVocab(["b", "a"])).toThrow(/sorted by code point/);
  });

  it("bad ids are refused", () => {
    const tok = new CharTokenizer("ab");
    expect(() => tok.decode([0, 2])).toThrow("ids[1] must be an integer in [0, 2), got 2.");
    expect(() => tok.decode([0.5])).toThrow(/ids\[0\]/);
  });
});

describe("GPT-2 BPE (r50k_base)", () => {
  it("the chapter's translation prompt is 12 tokens, 床前明月光，疑是地上霜。 is 23", () => {
    const prompt = "Translate English to French: The book is on the table";
    expect(bpeEncode(prompt)).toHaveLength(12);
    expect(bpePieces(prompt)).toEqual(["Trans", "late", " English", " to", " French", ":", " The", " book", " is", " on", " the", " table"]);
    expect(bpeEncode("床前明月光，疑是地上霜。")).toHaveLength(23);
    expect(BPE_VOCAB_SIZE).toBe(50257);
  });

  it("pieces show partial characters as their UTF-8 bytes, and the bytes join back to the text", () => {
    const text = "床前明月光，疑是地上霜。";
    const pieces = bpePieces(text);
    expect(pieces.slice(0, 2)).toEqual(["<0xE5><0xBA>", "<0x8A>"]); // 床 = E5 BA 8A
    expect(pieces).toContain("光");
    const bytes = bpeEncode(text).flatMap((id) => Array.from(bpeBytes(id)));
    expect(bytes).toEqual(Array.from(new TextEncoder().encode(text)));
  });

  it("decode inverts encode, and a call never leaks an unfinished character into the next", () => {
    for (const text of ["The book is on the table.", "Le livre est sur la table.", "书在桌子上。", loadCorpus("shakespeare").slice(0, 3000)])
      expect(bpeDecode(bpeEncode(text))).toBe(text);
    const ids = bpeEncode("床");
    expect(bpeDecode(ids.slice(0, 1))).toBe("\uFFFD");
    expect(bpeDecode(bpeEncode("。"))).toBe("。");
    expect(() => bpeDecode([50257])).toThrow(/ids\[0\] must be an integer in \[0, 50257\)/);
  });
});
