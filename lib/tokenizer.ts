// Tokenizers: how text becomes the integer ids a model embeds.
//
// CharTokenizer: one token per character, the smallest vocabulary that can spell every text of a
// corpus (~70 for Shakespeare, ~5,000 for the Tang poems). It walks the text by Unicode code point,
// not by JavaScript's UTF-16 unit, so a rare Han character outside the Basic Multilingual Plane
// (e.g. 𠀋, two UTF-16 units) is still one token, in English and Chinese alike.
//
// GPT-2's byte-level BPE (from npm gpt-tokenizer, encoding r50k_base, 50,257 tokens): text is split
// into UTF-8 bytes and frequent byte sequences were merged into tokens while GPT-2 was built, so
// common English words are one token each while a Chinese character, three UTF-8 bytes, often takes
// two or three tokens. That is why the same sentence costs a very different number of tokens.
//
// gpt-tokenizer ships CommonJS under cjs/ and ES modules under esm/. We `require` the CommonJS build
// by its full path (Vite, which resolves an `import` with the "import" condition, refuses the cjs/
// path that only "require" exports) and type the two things we use ourselves: the package's own
// .d.ts files use syntax (string import names) that tslab's TypeScript 5.0 cannot parse.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const r50k: { encode(text: string): number[]; vocabularySize: number } = require("gpt-tokenizer/cjs/encoding/r50k_base");
// eslint-disable-next-line @typescript-eslint/no-var-requires
const r50kRanks: { default: (string | number[])[] } = require("gpt-tokenizer/cjs/bpeRanks/r50k_base");

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

function codePointOrder(a: string, b: string): number {
  return (a.codePointAt(0) as number) - (b.codePointAt(0) as number);
}

/** A character-level tokenizer: optional special tokens first, then every character of the text. */
export class CharTokenizer {
  /** id -> token: the special tokens (e.g. "<pad>", "<bos>", "<eos>") first, then the characters sorted by code point. */
  readonly vocab: string[];
  readonly vocabSize: number;
  /** The special tokens, in id order (ids 0 … specials.length-1). */
  readonly specials: string[];
  private readonly ids: Map<string, number>;
  private readonly unk: number;

  // vocab = specials ++ sort_by_code_point(set(code points of text))
  // text: string (or several) -> vocabSize = specials.length + number of distinct characters
  constructor(text: string | string[], options: { specials?: string[] } = {}) {
    const texts = Array.isArray(text) ? text : [text];
    need(texts.every((t) => typeof t === "string"), `text must be a string or an array of strings, got ${typeof text}.`);
    const specials = options.specials ?? [];
    need(new Set(specials).size === specials.length && specials.every((s) => [...s].length > 1),
      `specials must be distinct names longer than one character (like "<pad>"), got ${JSON.stringify(specials)}.`);
    const chars = new Set<string>();
    for (const t of texts) for (const c of t) chars.add(c); // for…of iterates code points
    need(chars.size > 0 || specials.length > 0, "text must contain at least one character, got an empty string.");
    this.specials = [...specials];
    this.vocab = [...specials, ...[...chars].sort(codePointOrder)];
    this.vocabSize = this.vocab.length;
    this.ids = new Map(this.vocab.map((t, i) => [t, i]));
    this.unk = this.ids.get("<unk>") ?? -1;
  }

  // ids -> tokenizer: rebuild one from a saved vocabulary (tok.vocab), specials named again
  // vocab: string[] (id -> token) -> the same ids as the tokenizer that produced it
  static fromVocab(vocab: string[], specials: string[] = []): CharTokenizer {
    need(specials.every((s, i) => vocab[i] === s), `vocab must start with the specials ${JSON.stringify(specials)}, got ${JSON.stringify(vocab.slice(0, specials.length))}.`);
    const tok = new CharTokenizer(vocab.slice(specials.length).join(""), { specials });
    need(tok.vocab.length === vocab.length && tok.vocab.every((t, i) => t === vocab[i]),
      "vocab must be special tokens followed by distinct single characters sorted by code point (a CharTokenizer's vocab).");
    return tok;
  }

  // s -> [id(c) for c in code points of s]; an unseen character -> id("<unk>") if that special exists
  // string of n code points -> number[] of length n (special tokens are never parsed out of text)
  encode(s: string): number[] {
    need(typeof s === "string", `s must be a string, got ${typeof s}.`);
    const out: number[] = [];
    let pos = 0;
    for (const c of s) {
      const id = this.ids.get(c);
      if (id !== undefined && id >= this.specials.length) out.push(id);
      else if (this.unk >= 0) out.push(this.unk);
      else
        throw new Error(`s contains ${JSON.stringify(c)} (U+${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}) at code point ${pos}, which is not in the vocabulary; build the tokenizer from text that has it, or add "<unk>" to specials.`);
      pos++;
    }
    return out;
  }

  // ids -> concat(vocab[id]); special tokens print as their names unless skipSpecials
  // number[] (or Int32Array) of length n -> string
  decode(ids: ArrayLike<number>, options: { skipSpecials?: boolean } = {}): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      need(Number.isInteger(id) && id >= 0 && id < this.vocabSize, `ids[${i}] must be an integer in [0, ${this.vocabSize}), got ${id}.`);
      if (options.skipSpecials && id < this.specials.length) continue;
      s += this.vocab[id];
    }
    return s;
  }

  // token -> its id (a special like "<eos>" or one character)
  // string -> number in [0, vocabSize)
  id(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new Error(`token ${JSON.stringify(token)} is not in the vocabulary (size ${this.vocabSize}).`);
    return id;
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte-level BPE (r50k_base).

/** GPT-2's vocabulary: 50,256 merged byte sequences plus <|endoftext|> (id 50256). */
export const BPE_VOCAB_SIZE: number = r50k.vocabularySize;
const END_OF_TEXT = 50256;
// id -> what the token stands for: a string, or raw bytes when they are not valid UTF-8 alone.
const RANKS: readonly (string | readonly number[])[] = r50kRanks.default;
const utf8 = new TextEncoder();

// text -> GPT-2 token ids (byte-level BPE merges in rank order, as GPT-2 was trained)
// string -> number[]  ("Translate English to French: The book is on the table" -> 12 ids)
export function bpeEncode(text: string): number[] {
  need(typeof text === "string", `text must be a string, got ${typeof text}.`);
  return r50k.encode(text);
}

// id -> the UTF-8 bytes that token stands for
// number in [0, 50257) -> Uint8Array (1 or more bytes)
export function bpeBytes(id: number): Uint8Array {
  need(Number.isInteger(id) && id >= 0 && id < BPE_VOCAB_SIZE, `id must be an integer in [0, ${BPE_VOCAB_SIZE}), got ${id}.`);
  if (id === END_OF_TEXT) return utf8.encode("<|endoftext|>");
  const r = RANKS[id];
  return typeof r === "string" ? utf8.encode(r) : Uint8Array.from(r);
}

// ids -> UTF-8 decode(concat(bytes(id)))   (a character cut off at the end shows as U+FFFD)
// number[] -> string
export function bpeDecode(ids: ArrayLike<number>): string {
  // We join the bytes ourselves with a fresh decoder: gpt-tokenizer's decode keeps an unfinished
  // character's bytes between calls, so decode([a]) followed by decode([b]) would leak a into b.
  const parts: Uint8Array[] = [];
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    need(Number.isInteger(ids[i]) && ids[i] >= 0 && ids[i] < BPE_VOCAB_SIZE, `ids[${i}] must be an integer in [0, ${BPE_VOCAB_SIZE}), got ${ids[i]}.`);
    const b = bpeBytes(ids[i]);
    parts.push(b);
    n += b.length;
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const b of parts) {
    all.set(b, off);
    off += b.length;
  }
  return new TextDecoder("utf-8").decode(all);
}

// text -> the piece of text each GPT-2 token stands for; a token that is only part of a character's
// UTF-8 bytes is shown as those bytes, e.g. 床 -> ["<0xE5><0xBA>", "<0x8A>"]; string -> string[]
export function bpePieces(text: string): string[] {
  return bpeEncode(text).map((id) => {
    const r = id === END_OF_TEXT ? "<|endoftext|>" : RANKS[id];
    if (typeof r === "string") return r;
    return Array.from(r, (b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`).join("");
  });
}
