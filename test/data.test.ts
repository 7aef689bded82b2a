// The shipped corpora and the held-out split: sizes, contents, determinism, and that no held-out
// unit (speech, poem, sentence) ever appears in training.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { loadCorpus, loadPairs, splitText } from "../lib/data";

describe("corpora", () => {
  it("shakespeare.txt: ~1 MB of ASCII dialogue, no stage directions or headings", () => {
    const text = loadCorpus("shakespeare");
    expect(text.length).toBeGreaterThan(900_000);
    expect(text.length).toBeLessThan(1_100_000);
    expect(/^[\x0a\x20-\x7e]*$/.test(text)).toBe(true);
    expect(text).toContain("To be, or not to be");
    expect(text).not.toMatch(/[[\]]/); // stage directions removed
    expect(text).not.toMatch(/^(ACT|Scene|SCENE) [IVX1-9]/m);
    expect(text.toLowerCase()).not.toContain("gutenberg");
    expect(new Set(text).size).toBeLessThan(100);
  });

  it("tang5.txt: one five-character poem a line, title|author|poem, simplified script, ≤ 1 MB", () => {
    const text = loadCorpus("tang");
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1_000_000);
    const lines = text.split("\n").filter((l) => l.length > 0);
    expect(lines.length).toBeGreaterThan(7000);
    const couplet = /^(\p{Script=Han}{5}，\p{Script=Han}{5}。)+$/u;
    const bad = lines.filter((line) => {
      const [title, author, poem, extra] = line.split("|");
      const n = poem === undefined ? 0 : [...poem].length; // 绝句 4 lines = 24, 律诗 8 lines = 48
      return extra !== undefined || !title || !author || !couplet.test(poem) || (n !== 24 && n !== 48);
    });
    expect(bad).toEqual([]);
    expect(text).toContain("静夜思|李白|床前看月光，疑是地上霜。举头望山月，低头思故乡。");
    expect(text).not.toMatch(/[們這國詩學]/); // traditional forms converted
  });

  it("an unknown corpus name is one clear sentence", () => {
    expect(() => loadCorpus("hamlet" as "tang")).toThrow('name must be "shakespeare" or "tang", got "hamlet".');
  });

  it("data/ is found through the notebooks/lib symlink as well (tslab's way in)", () => {
    const link = path.join(__dirname, "..", "notebooks", "lib");
    expect(fs.realpathSync(link)).toBe(fs.realpathSync(path.join(__dirname, "..", "lib")));
    expect(fs.existsSync(path.join(link, "..", "..", "data", "tang5.txt"))).toBe(true);
  });
});

describe("splitText", () => {
  // slow reference: the set of units on each side, from the returned strings
  const units = (s: string, sep: string) => s.split(sep).map((u) => u.replace(/^\n+|\n+$/g, "")).filter((u) => u.trim().length > 0);

  for (const name of ["shakespeare", "tang"] as const) {
    it(`${name}: ~10% held out by whole units, none of them in training, deterministic`, () => {
      const text = loadCorpus(name);
      const sep = name === "tang" ? "\n" : "\n\n";
      const a = splitText(text, 0.1);
      const b = splitText(text, 0.1);
      expect(a).toEqual(b);
      const all = units(text, sep);
      expect(a.trainUnits + a.heldOutUnits).toBe(all.length);
      const frac = a.heldOutUnits / all.length;
      expect(frac).toBeGreaterThan(0.08);
      expect(frac).toBeLessThan(0.12);
      const train = new Set(units(a.train, sep));
      const held = units(a.heldOut, sep);
      expect(held.length).toBe(a.heldOutUnits);
      expect(held.filter((u) => train.has(u))).toEqual([]);
      // every unit survives whole, on exactly one side
      expect(new Set([...train, ...held])).toEqual(new Set(all));
    });
  }

  it("splits by lines when there are no blank lines, and validates its arguments", () => {
    const text = Array.from({ length: 200 }, (_, i) => `line ${i}`).join("\n");
    const s = splitText(text, 0.25);
    expect(s.trainUnits + s.heldOutUnits).toBe(200);
    expect(s.heldOut.split("\n").filter(Boolean).every((l) => /^line \d+$/.test(l))).toBe(true);
    expect(() => splitText(text, 1)).toThrow("heldOutFraction must be in (0, 1), got 1.");
    expect(() => splitText("", 0.1)).toThrow(/text must be a non-empty string/);
  });
});

describe("translation pairs", () => {
  const pairs = loadPairs();

  it("a few thousand short pairs in three languages, ~10% held out", () => {
    expect(pairs.length).toBeGreaterThan(3000);
    const bad = pairs.filter((p) => p.en.length > 40 || p.fr.length > 40 || !/^[A-Z][a-z' ]+\.$/.test(p.en) || !/^\p{Script=Han}+。$/u.test(p.zh));
    expect(bad).toEqual([]);
    const held = pairs.filter((p) => p.split === "heldout").length;
    expect(held / pairs.length).toBeGreaterThan(0.08);
    expect(held / pairs.length).toBeLessThan(0.12);
  });

  it("the chapter's sentence is there, exactly, and held out", () => {
    const book = pairs.filter((p) => p.en === "The book is on the table.");
    expect(book).toEqual([{ en: "The book is on the table.", fr: "Le livre est sur la table.", zh: "书在桌子上。", split: "heldout" }]);
  });

  it("no held-out sentence, in any language, occurs in training", () => {
    for (const lang of ["en", "fr", "zh"] as const) {
      const train = new Set(pairs.filter((p) => p.split === "train").map((p) => p[lang]));
      expect(pairs.filter((p) => p.split === "heldout" && train.has(p[lang]))).toEqual([]);
    }
    expect(new Set(pairs.map((p) => p.en)).size).toBe(pairs.length);
  });

  it("the realiser did the French agreement and elision (spot checks)", () => {
    const fr = pairs.map((p) => p.fr).join("\n");
    expect(fr).toMatch(/\bl'(arbre|école)/); // elision
    expect(fr).toMatch(/\bn'(est|es|a)\b/); // ne -> n' before a vowel
    expect(fr).toMatch(/près du /); // de + le -> du
    expect(fr).not.toMatch(/\b(de le|à le|le [aeéio])/i);
  });
});
