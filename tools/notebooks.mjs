// Builds the two editions of every notebook from one source, so their code cells are identical.
//
//   notebooks/src/00-overview.md  ─►  notebooks/00-overview.zh.ipynb  +  notebooks/00-overview.en.ipynb
//
// A source is a sequence of blocks, each opened by a marker line: `<!-- zh -->` and `<!-- en -->` are
// the two language versions of one markdown cell (always a pair, zh first), `<!-- code -->` is a code
// cell shared by both editions. Notebooks are written without outputs.
//   node tools/notebooks.mjs           write the .ipynb files
//   node tools/notebooks.mjs --check   fail if a committed .ipynb differs from its source
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const nbDir = path.join(root, "notebooks");
const srcDir = path.join(nbDir, "src");
export const LANGS = ["zh", "en"];

export function parseSource(text, file = "source") {
  const cells = [];
  let cur = null;
  for (const line of text.split("\n")) {
    const m = line.match(/^<!-- (zh|en|code) -->\s*$/);
    if (m) {
      cur = { kind: m[1], lines: [] };
      cells.push(cur);
    } else if (cur) cur.lines.push(line);
    else if (line.trim()) throw new Error(`${file}: text before the first <!-- zh|en|code --> marker: "${line}"`);
  }
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const body = (c) => c.lines.join("\n").replace(/^\n+|\s+$/g, "");
    const c = cells[i];
    if (c.kind === "code") out.push({ type: "code", source: body(c) });
    else if (c.kind === "zh" && cells[i + 1]?.kind === "en") {
      out.push({ type: "markdown", zh: body(c), en: body(cells[i + 1]) });
      i++;
    } else throw new Error(`${file}: markdown cell ${i + 1} is "${c.kind}" without its pair (<!-- zh --> then <!-- en -->)`);
  }
  return out;
}

export function toIpynb(cells, name, lang) {
  const lines = (s) => s.split("\n").map((l, i, a) => (i < a.length - 1 ? l + "\n" : l));
  return {
    cells: cells.map((c, i) =>
      c.type === "code"
        ? { cell_type: "code", execution_count: null, id: `c${String(i).padStart(3, "0")}`, metadata: {}, outputs: [], source: lines(c.source) }
        : { cell_type: "markdown", id: `c${String(i).padStart(3, "0")}`, metadata: {}, source: lines(c[lang]) },
    ),
    metadata: {
      kernelspec: { display_name: "TypeScript", language: "typescript", name: "tslab" },
      language_info: { codemirror_mode: { mode: "typescript", name: "javascript", typescript: true }, file_extension: ".ts", mimetype: "text/typescript", name: "typescript" },
      book: { notebook: name, edition: lang },
    },
    nbformat: 4,
    nbformat_minor: 5,
  };
}

export const sources = () => fs.readdirSync(srcDir).filter((f) => /^\d\d-.*\.md$/.test(f)).sort().map((f) => f.replace(/\.md$/, ""));
export const serialise = (nb) => JSON.stringify(nb, null, 1) + "\n";

function main() {
  const check = process.argv.includes("--check");
  const stale = [];
  for (const name of sources()) {
    const cells = parseSource(fs.readFileSync(path.join(srcDir, `${name}.md`), "utf8"), `${name}.md`);
    for (const lang of LANGS) {
      const file = path.join(nbDir, `${name}.${lang}.ipynb`);
      const text = serialise(toIpynb(cells, name, lang));
      if (check) {
        if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) stale.push(path.relative(root, file));
      } else fs.writeFileSync(file, text);
    }
  }
  if (stale.length) {
    console.error(`notebooks out of date with notebooks/src: ${stale.join(", ")} — run \`node tools/notebooks.mjs\`.`);
    process.exit(1);
  }
  console.log(check ? "notebooks: every .ipynb matches its source" : `notebooks: wrote ${sources().length * 2} notebooks`);
}
if (process.argv[1] === fileURLToPath(import.meta.url)) main();
