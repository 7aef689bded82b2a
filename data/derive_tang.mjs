// Derive data/tang5.txt: five-character Tang poems (五言绝句 and 五言律诗) in simplified script.
//
// Source: npm `chinese-poetry@2.0.1` (MIT), 全唐诗 `dist/quantangshi/poet.tang.*.json` (public-domain
// poems, traditional script), converted to simplified with npm `opencc-js@1.4.2` (MIT code,
// Apache-2.0 dictionaries; converter from "t" to "cn"). Both are installed into a temporary folder,
// never into the project:
//
//     node data/derive_tang.mjs        # writes data/tang5.txt (deterministic)
//
// Kept: poems whose every line is five CJK characters followed by ， or 。 alternately, with 4 lines
// (绝句) or 8 lines (律诗). Dropped: every other poem, and any poem with a non-CJK character in its
// text (missing-character marks, notes). The full set is 18,180 poems, 2.4 MB of UTF-8, more than the
// book's 1 MB budget, so the file keeps every 绝句 and a deterministic subset of 律诗: sorted by the
// SHA-1 of the poem's id, taken in that order until the file would pass MAX_BYTES. Lines are written
// in the corpus's order (file number, then position). One poem per line: `title|author|poem`.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MAX_BYTES = 1_000_000;
const OUT = join(dirname(fileURLToPath(import.meta.url)), "tang5.txt");
const LINE = /^\p{Script=Han}{5}，\p{Script=Han}{5}。$/u; // one couplet: 5 Han characters ， 5 Han characters 。

const tmp = mkdtempSync(join(tmpdir(), "derive-tang-"));
try {
  execFileSync("npm", ["install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund",
    "--no-save", "--loglevel=error", "chinese-poetry@2.0.1", "opencc-js@1.4.2"], { stdio: "inherit" });
  const req = createRequire(join(tmp, "node_modules", "x.js"));
  const OpenCC = req("opencc-js");
  const toSimplified = OpenCC.Converter({ from: "t", to: "cn" });

  const dir = join(tmp, "node_modules", "chinese-poetry", "dist", "quantangshi");
  const files = readdirSync(dir)
    .filter((f) => /^poet\.tang\.\d+\.json$/.test(f))
    .sort((a, b) => Number(a.split(".")[2]) - Number(b.split(".")[2]));
  const poems = []; // { order, id, kind, text }
  for (const f of files) {
    for (const p of JSON.parse(readFileSync(join(dir, f), "utf8"))) {
      const couplets = p.paragraphs;
      if (!(couplets.length === 2 || couplets.length === 4)) continue;
      if (!couplets.every((c) => LINE.test(c))) continue;
      const clean = (s) => toSimplified(s).replace(/[|\n\r]/g, " ").trim();
      const body = toSimplified(couplets.join(""));
      if (!couplets.every((c) => LINE.test(toSimplified(c)))) throw new Error(`conversion changed the shape of ${p.id}`);
      poems.push({
        order: poems.length,
        id: p.id,
        kind: couplets.length === 2 ? "jueju" : "lushi",
        text: `${clean(p.title)}|${clean(p.author)}|${body}`,
      });
    }
  }
  const fullBytes = poems.reduce((n, p) => n + Buffer.byteLength(p.text) + 1, 0);
  const sha = (s) => createHash("sha1").update(s).digest("hex");
  const jueju = poems.filter((p) => p.kind === "jueju");
  const lushi = poems.filter((p) => p.kind === "lushi").sort((a, b) => (sha(a.id) < sha(b.id) ? -1 : 1));
  const kept = [];
  let bytes = 0;
  for (const p of [...jueju, ...lushi]) {
    const b = Buffer.byteLength(p.text) + 1;
    if (bytes + b > MAX_BYTES) break;
    kept.push(p);
    bytes += b;
  }
  kept.sort((a, b) => a.order - b.order);
  const out = kept.map((p) => p.text).join("\n") + "\n";
  writeFileSync(OUT, out);
  const chars = [...out].length;
  console.log(`five-character poems: ${poems.length} (${jueju.length} 绝句, ${poems.length - jueju.length} 律诗), ${fullBytes} bytes`);
  console.log(`wrote ${OUT}: ${kept.length} poems (${kept.filter((p) => p.kind === "jueju").length} 绝句, ` +
    `${kept.filter((p) => p.kind === "lushi").length} 律诗), ${Buffer.byteLength(out)} bytes, ${chars} characters, ` +
    `${new Set(out).size} distinct characters`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
