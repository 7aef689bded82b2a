// The data the book ships (data/, with data/LICENSES.md saying where each file came from):
//   shakespeare.txt  eight plays' dialogue, ~1 MB of ASCII (a Tiny-Shakespeare-like corpus);
//   tang5.txt        five-character Tang poems (五言绝句 / 五言律诗), one `title|author|poem` a line;
//   pairs.tsv        toy English / French / Chinese sentence pairs for the translation model.
//
// A language model is judged on text it never saw, so splitText holds out whole units (a speech,
// a poem), never cutting one in half: a held-out speech cannot be half-memorised from training.
import * as fs from "fs";
import * as path from "path";

export type CorpusName = "shakespeare" | "tang";

/** One translation example: the same sentence in three languages, and which split it belongs to. */
export interface Pair {
  en: string;
  fr: string;
  zh: string;
  split: "train" | "heldout";
}

const FILES: Record<CorpusName, string> = { shakespeare: "shakespeare.txt", tang: "tang5.txt" };

// lib/ is reached either directly (vitest, tsx) or through the notebooks/lib -> ../lib symlink
// (tslab), where __dirname may be the symlink's path: then ../data is notebooks/data, which does not
// exist. So we try the real path as well and take the first folder that holds the file.
function dataFile(file: string): string {
  const dirs = [path.join(__dirname, "..", "data")];
  try {
    dirs.push(path.join(fs.realpathSync(__dirname), "..", "data"));
  } catch {
    // __dirname may be virtual (a compiler's in-memory file); the other candidates still apply
  }
  dirs.push(path.join(__dirname, "..", "..", "data"), path.join(process.cwd(), "data"), path.join(process.cwd(), "..", "data"));
  for (const dir of dirs) {
    const p = path.join(dir, file);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`data file ${file} was not found in ${[...new Set(dirs)].join(" or ")}; it ships with the repository under data/.`);
}

// name -> the whole corpus as one string (read once per process, then cached)
// "shakespeare" -> ~977k ASCII characters; "tang" -> ~350k characters, one poem a line
const cache = new Map<string, string>();
export function loadCorpus(name: CorpusName): string {
  if (!(name in FILES)) throw new Error(`name must be "shakespeare" or "tang", got ${JSON.stringify(name)}.`);
  let text = cache.get(name);
  if (text === undefined) {
    text = fs.readFileSync(dataFile(FILES[name]), "utf8");
    cache.set(name, text);
  }
  return text;
}

// data/pairs.tsv (en \t fr \t zh \t split, one header line) -> Pair[] in file order
// e.g. { en: "The book is on the table.", fr: "Le livre est sur la table.", zh: "书在桌子上。", split: "heldout" }
export function loadPairs(): Pair[] {
  const lines = fs.readFileSync(dataFile("pairs.tsv"), "utf8").split("\n").filter((l) => l.length > 0);
  const header = lines[0];
  if (header !== "en\tfr\tzh\tsplit") throw new Error(`pairs.tsv must start with the header "en\\tfr\\tzh\\tsplit", got ${JSON.stringify(header)}.`);
  return lines.slice(1).map((line, i) => {
    const [en, fr, zh, split] = line.split("\t");
    if (zh === undefined || (split !== "train" && split !== "heldout"))
      throw new Error(`pairs.tsv line ${i + 2} must be en\\tfr\\tzh\\t(train|heldout), got ${JSON.stringify(line)}.`);
    return { en, fr, zh, split };
  });
}

// FNV-1a, 32 bits: a fixed, fast string hash, so the split depends only on a unit's text.
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The pieces of a corpus after splitText. */
export interface TextSplit {
  train: string;
  heldOut: string;
  /** How many units (speeches or lines) each side got. */
  trainUnits: number;
  heldOutUnits: number;
}

// unit u goes to held-out iff fnv1a(u) / 2³² < heldOutFraction  (units: blank-line-separated
// paragraphs if the text has any, else lines); identical units hash alike, so none is on both sides
export function splitText(text: string, heldOutFraction: number, separator?: string): TextSplit {
  if (typeof text !== "string" || text.length === 0) throw new Error(`text must be a non-empty string, got ${typeof text === "string" ? "an empty string" : typeof text}.`);
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) throw new Error(`heldOutFraction must be in (0, 1), got ${heldOutFraction}.`);
  const sep = separator ?? (text.includes("\n\n") ? "\n\n" : "\n");
  // a unit is stripped of the newlines around it, so the last one (before the final "\n") matches
  const units = text.split(sep).map((u) => u.replace(/^\n+|\n+$/g, "")).filter((u) => u.trim().length > 0);
  const train: string[] = [];
  const heldOut: string[] = [];
  for (const u of units) (fnv1a(u) / 2 ** 32 < heldOutFraction ? heldOut : train).push(u);
  if (train.length === 0 || heldOut.length === 0)
    throw new Error(`heldOutFraction ${heldOutFraction} left one side empty (${units.length} units in text); use more text or a fraction nearer 0.1.`);
  return { train: train.join(sep) + sep, heldOut: heldOut.join(sep) + sep, trainUnits: train.length, heldOutUnits: heldOut.length };
}
