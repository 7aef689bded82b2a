// The book as a teaching text, without a browser: the two editions share one section skeleton, cells
// stay small, numbers the prose cites agree with the outputs above them, and the HTML builder escapes
// what a notebook carries, typesets math and folds the solutions.
//
// The citing rule (for authors): a markdown cell that contains the marker `<!-- cites -->` (invisible in
// JupyterLab, on GitHub and in the book) promises that every number it writes was printed by a code
// cell above it in the same notebook. Checked: numbers in the prose outside math ($…$, $$…$$), inline
// code and link targets — 1.93, −0.5, 1,234, 12.5%, 3e-4. Not checked (they are names, not quantities):
// a number glued to Latin letters (GPT-2, T5, 109k, 2D), a zero-padded one (section 05), a year
// 1900–2099, list markers. A cited number matches a printed one when the printed number, rounded to
// the decimals the prose shows, equals it (prose 1.93 ← printed 1.9312; prose 12.5% ← printed 12.5
// or 0.125). The executed copies in build/executed/ (npm run notebooks) hold the outputs; a notebook
// whose copy is missing or stale is skipped here, and checked again by tools/browser-tests.mjs after
// the notebooks have run (BOOK_REQUIRE_EXECUTED=1 makes a missing copy a failure).
import * as fs from "fs";
import * as path from "path";
import { pathToFileURL } from "url";
import { describe, expect, it } from "vitest";
import { FIXTURE, fixtureNotebook } from "./book/fixture-notebook";

const root = path.join(__dirname, "..");
const nbDir = path.join(root, "notebooks");
const executedDir = path.join(root, "build", "executed");
const LIMITS = { codeLines: 20, markdownChars: 6000 };

type Cell = { cell_type: string; source: string | string[]; outputs?: Output[] };
type Output = { output_type: string; text?: string | string[]; data?: Record<string, unknown> };
type Notebook = { cells: Cell[] };
const text = (v: unknown): string => (Array.isArray(v) ? v.join("") : typeof v === "string" ? v : "");
const read = (file: string): Notebook => JSON.parse(fs.readFileSync(file, "utf8"));
const names = fs.readdirSync(path.join(nbDir, "src")).filter((f) => /^\d\d-.*\.md$/.test(f)).map((f) => f.slice(0, -3)).sort();

/** Headings outside code fences: [cell index, level, text]. */
function headings(nb: Notebook): [number, number, string][] {
  const out: [number, number, string][] = [];
  nb.cells.forEach((c, i) => {
    if (c.cell_type !== "markdown") return;
    let fence = false;
    for (const line of text(c.source).split("\n")) {
      if (/^\s*(```|~~~)/.test(line)) fence = !fence;
      const m = !fence && line.match(/^(#{1,6})\s+(.*)$/);
      if (m) out.push([i, m[1].length, m[2].trim()]);
    }
  });
  return out;
}

const SECTIONS = { zh: ["学习目标", "小结", "练习", "参考答案"], en: ["Goals", "Summary", "Exercises", "Solutions"] };

// ───────────── the citing rule ─────────────

/** The numbers a prose text cites, as written: {value, decimals, percent, raw}. */
export function citedNumbers(md: string): { value: number; decimals: number; percent: boolean; raw: string }[] {
  const prose = md
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/\$\$[\s\S]*?\$\$/g, " ")
    .replace(/\$[^$\n]+\$/g, " ")
    .replace(/```[\s\S]*?```/g, " ")
    .replace(/`[^`\n]*`/g, " ")
    .replace(/\]\([^)]*\)/g, "] ")
    .replace(/^\s*(\d+[.)]|[-*+])\s+/gm, " ");
  const out: { value: number; decimals: number; percent: boolean; raw: string }[] = [];
  const re = /(?<![A-Za-z0-9_.,])(?<![A-Za-z][-−])([-−]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE]([-+−]?\d+))?(%?)(?![A-Za-z0-9_])/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(prose)) !== null) {
    const [, sign, int, frac = "", exp, pct] = m;
    const raw = `${sign}${int}${frac}${exp ? `e${exp}` : ""}${pct}`;
    if (/^0\d/.test(int)) continue; // a section number like 05
    if (!frac && !exp && !pct && /^(19|20)\d\d$/.test(int)) continue; // a year
    const value = Number(`${sign ? "-" : ""}${int.replace(/,/g, "")}${frac}${exp ? `e${exp.replace("−", "-")}` : ""}`);
    out.push({ value, decimals: frac ? frac.length - 1 : 0, percent: pct === "%", raw });
  }
  return out;
}

/** Every number printed in an output (stream text and text/plain; not plot specs). */
export function printedNumbers(outputs: Output[]): number[] {
  const s = outputs.map((o) => (o.output_type === "stream" ? text(o.text) : text(o.data?.["text/plain"]))).join("\n")
    .replace(/\x1b\[[0-9;]*m/g, "");
  return (s.match(/[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?/g) ?? []).map((x) => Number(x.replace(/,(?=\d{3})/g, "").replace("−", "-"))).filter(Number.isFinite);
}

export function matches(c: { value: number; decimals: number; percent: boolean }, printed: number[]): boolean {
  const tol = 0.5 * 10 ** -c.decimals + 1e-9 * Math.max(1, Math.abs(c.value));
  const candidates = c.percent ? printed.flatMap((p) => [p, p * 100]) : printed;
  return candidates.some((p) => Math.abs(p - c.value) <= tol);
}

/** Problems of one executed notebook under the citing rule. */
export function citeProblems(nb: Notebook, label: string): string[] {
  const problems: string[] = [];
  const printed: number[] = [];
  nb.cells.forEach((c, i) => {
    if (c.cell_type === "code") printed.push(...printedNumbers(c.outputs ?? []));
    if (c.cell_type !== "markdown" || !/<!--\s*cites\s*-->/.test(text(c.source))) return;
    for (const n of citedNumbers(text(c.source)))
      if (!matches(n, printed)) problems.push(`${label} cell ${i}: the prose cites ${n.raw}, but no output above prints it (to ${n.decimals} decimals)`);
  });
  return problems;
}

describe("the citing rule", () => {
  it("reads the numbers prose writes and leaves names alone", () => {
    const got = citedNumbers("<!-- cites -->\nLoss fell from 4.25 to **1.93** nats (−0.5, 12.5%, 1,234 steps, 3e-4) — GPT-2, T5, 109k, notebook 05, Kaplan (2020), $e^{2.1}$, `x = 7`, [05](05-x.zh.ipynb).\n1. first");
    expect(got.map((n) => n.raw)).toEqual(["4.25", "1.93", "−0.5", "12.5%", "1,234", "3e-4"]);
    expect(citedNumbers("损失约为1.93，困惑度 6.9。").map((n) => n.value)).toEqual([1.93, 6.9]);
  });
  it("matches at the prose's precision, and fails a contradiction", () => {
    const printed = printedNumbers([{ output_type: "stream", text: "step 300  loss 1.9312  acc 0.125\n" }]);
    expect(matches({ value: 1.93, decimals: 2, percent: false }, printed)).toBe(true);
    expect(matches({ value: 1.9, decimals: 1, percent: false }, printed)).toBe(true);
    expect(matches({ value: 12.5, decimals: 1, percent: true }, printed)).toBe(true);
    expect(matches({ value: 300, decimals: 0, percent: false }, printed)).toBe(true);
    expect(matches({ value: 1.95, decimals: 2, percent: false }, printed)).toBe(false);
    const nb: Notebook = { cells: [
      { cell_type: "code", source: "", outputs: [{ output_type: "stream", text: "loss = 1.9312\n" }] },
      { cell_type: "markdown", source: "<!-- cites -->\nThe loss is 1.93." },
      { cell_type: "markdown", source: "<!-- cites -->\nThe loss is 2.31." },
      { cell_type: "markdown", source: "Uncited prose may say 2.31." },
    ] };
    expect(citeProblems(nb, "nb")).toEqual(["nb cell 2: the prose cites 2.31, but no output above prints it (to 2 decimals)"]);
  });
});

// ───────────── the notebooks ─────────────

describe("zh/en teaching checks", () => {
  const largest: string[] = [];
  for (const name of names) {
    describe(name, () => {
      const zh = read(path.join(nbDir, `${name}.zh.ipynb`));
      const en = read(path.join(nbDir, `${name}.en.ipynb`));
      it("both editions have the same section skeleton (heading levels in the same cells)", () => {
        const shape = (nb: Notebook) => headings(nb).map(([i, level]) => `${i}:h${level}`);
        expect(shape(en)).toEqual(shape(zh));
      });
      if (!name.startsWith("99-"))
        it("goals, summary, exercises (≥ 3) and solutions (with runnable cells) come in that order", () => {
          for (const [lang, nb] of [["zh", zh], ["en", en]] as const) {
            const hs = headings(nb).filter(([, level]) => level === 2);
            const at = SECTIONS[lang].map((title) => hs.findIndex(([, , t]) => t === title));
            expect(at.every((a) => a >= 0), `${name}.${lang}: sections ${SECTIONS[lang].join(", ")} found at ${at}`).toBe(true);
            expect([...at].sort((a, b) => a - b), `${name}.${lang}: in order`).toEqual(at);
            // the exercises: list items between the exercises heading and the next level-2 heading
            const src = nb.cells.map((c) => (c.cell_type === "markdown" ? text(c.source) : "\n")).join("\n");
            const ex = src.split(new RegExp(`^## ${SECTIONS[lang][2]}\\s*$`, "m"))[1]?.split(/^## /m)[0] ?? "";
            expect((ex.match(/^\s*(\d+\.|[-*])\s+/gm) ?? []).length + (ex.match(/^###\s/gm) ?? []).length, `${name}.${lang}: exercises`).toBeGreaterThanOrEqual(3);
            const solStart = hs[at[3]][0];
            const solEnd = hs.find(([i]) => i > solStart)?.[0] ?? nb.cells.length;
            expect(nb.cells.slice(solStart + 1, solEnd).filter((c) => c.cell_type === "code").length, `${name}.${lang}: solution cells`).toBeGreaterThan(0);
          }
        });
      it(`cells stay small (code ≤ ${LIMITS.codeLines} lines, markdown ≤ ${LIMITS.markdownChars} characters)`, () => {
        const lines = (c: Cell) => text(c.source).split("\n").filter((l) => l.trim()).length;
        const code = zh.cells.map((c, i) => [i, c] as const).filter(([, c]) => c.cell_type === "code");
        const [ci, cc] = code.reduce((a, b) => (lines(b[1]) > lines(a[1]) ? b : a), code[0] ?? [0, { cell_type: "code", source: "" }]);
        const md = [...zh.cells, ...en.cells].map((c) => (c.cell_type === "markdown" ? text(c.source).length : 0));
        const mdMax = Math.max(0, ...md);
        largest.push(`${name}: largest code cell ${ci} (${lines(cc)} lines), largest markdown cell ${mdMax} characters`);
        const big = code.filter(([, c]) => lines(c) > LIMITS.codeLines).map(([i, c]) => `cell ${i}: ${lines(c)} lines`);
        expect(big, `${name}: split these cells or move their logic into lib/`).toEqual([]);
        expect(mdMax).toBeLessThanOrEqual(LIMITS.markdownChars);
      });
      it("numbers the prose cites (<!-- cites -->) match the outputs above them", (ctx) => {
        for (const lang of ["zh", "en"]) {
          const file = path.join(executedDir, `${name}.${lang}.ipynb`);
          const committed = lang === "zh" ? zh : en;
          const code = (nb: Notebook) => nb.cells.filter((c) => c.cell_type === "code").map((c) => text(c.source)).join("\0");
          const ran = fs.existsSync(file) ? read(file) : null;
          if (!ran || code(ran) !== code(committed)) {
            if (process.env.BOOK_REQUIRE_EXECUTED) throw new Error(`build/executed/${name}.${lang}.ipynb is ${ran ? "stale" : "missing"}: run \`npm run notebooks -- ${name}\``);
            ctx.skip();
            return;
          }
          // the markdown is the committed one (the prose may have changed since the run; the code has not)
          const merged: Notebook = { cells: committed.cells.map((c, i) => (c.cell_type === "code" ? ran.cells[i] : c)) };
          expect(citeProblems(merged, `${name}.${lang}`)).toEqual([]);
        }
      });
    });
  }
  it("reports the largest cells", () => {
    console.log(`book: ${largest.join("; ")}`);
    expect(largest.length).toBe(names.length);
  });
});

// ───────────── the HTML builder, on the hostile fixture notebook ─────────────

describe("the book's renderer", () => {
  type Rendered = { title: string; body: string; headings: { level: number; id: string; text: string }[]; figures: { id: string }[]; demos: string[]; mathErrors: number };
  const load = async () => (await import(pathToFileURL(path.join(root, "tools", "book", "render.mjs")).href)) as {
    renderNotebook(nb: object, ctx: object): Rendered; slug(s: string): string; stripAnsi(s: string): string; scriptJson(v: unknown): string;
  };
  const render = async (lang: "zh" | "en") => (await load()).renderNotebook(fixtureNotebook(lang), { lang, name: FIXTURE, t: { code: "Code" }, demos: { sampling: '<section class="demo">' } });

  it("escapes every <script> a notebook carries; only the plot spec stays JSON in a non-running <script>", async () => {
    const r = await render("en");
    const scripts = r.body.match(/<script[^>]*>/g) ?? [];
    expect(scripts).toEqual(['<script type="application/json" class="plot-spec">']);
    expect(r.body).toContain("&lt;script&gt;window.__pwned = &quot;markdown&quot;&lt;/script&gt;");
    expect(r.body).toContain("&lt;script&gt;window.__pwned = 'stream'&lt;/script&gt;");
    expect(r.body).not.toMatch(/<img src=x/);
    const spec = r.body.match(/<script type="application\/json" class="plot-spec">([\s\S]*?)<\/script>/)![1];
    expect(spec).not.toContain("<");
    expect(JSON.parse(spec).layout.title.text).toContain("</script>");
    expect(r.body).toMatch(/<iframe class="out html" sandbox="allow-same-origin" srcdoc="&lt;b&gt;bold html/);
    expect(r.body).not.toContain("\u001b");
  });
  it("typesets math with KaTeX at build time and leaves no $$", async () => {
    const r = await render("zh");
    expect(r.mathErrors).toBe(0);
    expect((r.body.match(/class="katex"/g) ?? []).length).toBeGreaterThanOrEqual(3);
    expect(r.body.replace(/<annotation[\s\S]*?<\/annotation>/g, "")).not.toContain("$$");
  });
  it("folds the solutions up to the next level-2 heading, links between notebooks become pages, demos are placed", async () => {
    const r = await render("en");
    const folded = r.body.match(/<details class="solutions" id="solutions">([\s\S]*?)<\/div><\/details>/)![1];
    expect(folded).toContain("solution output");
    expect(folded).not.toContain("Further reading");
    expect(r.body.indexOf("Further reading")).toBeGreaterThan(r.body.indexOf("</details>"));
    expect(r.body).toContain(`<a href="${FIXTURE}.html">this page</a>`);
    expect(r.body).toContain(`<a href="../zh/${FIXTURE}.html#summary">`);
    expect(r.demos).toEqual(["sampling"]);
    expect(r.body).toContain('<section class="demo">');
    expect(r.body).not.toContain("cites");
    expect(r.headings.filter((h) => h.level === 2).map((h) => h.id)).toEqual(["goals", "try-it", "summary", "exercises", "solutions", "further-reading"]);
    expect(r.figures.map((f) => f.id)).toEqual([`${FIXTURE}/plot`]);
    expect(r.title).toBe("Fixture: every kind of content");
  });
  it("slugs keep Chinese, strip ANSI, escape JSON for <script>", async () => {
    const m = await load();
    expect(m.slug("参考答案")).toBe("参考答案");
    expect(m.slug("Top-p: the nucleus!")).toBe("top-p-the-nucleus");
    expect(m.stripAnsi("\u001b[32mgreen\u001b[0m \u001b]8;;x\u0007link")).toBe("green link");
    expect(m.scriptJson({ a: "</script><!--" })).toBe('{"a":"\\u003c/script>\\u003c!--"}');
  });
});
