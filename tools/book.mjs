// npm run book: the static HTML edition of the book, built from the executed notebooks.
//
//   build/executed/NN-name.{zh,en}.ipynb  ─►  site/zh/NN-name.html, site/en/NN-name.html, indexes,
//   site/{zh,en}/playground.html (live demos), site/assets (CSS, KaTeX, plotly, demos.js, tfjs wasm),
//   site/figures/<nb>/<id>.svg (the no-JS fallback of every plot), site/models (build/models/*).
//
//   node tools/book.mjs            build (after `npm run notebooks`); prints what it built and how long it took
//   node tools/book.mjs --all      also the 99-* test notebooks
// Nothing is fetched: every script, style and font is copied from node_modules; pages work from file://.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { page, LABELS } from "./book/page.mjs";
import { renderNotebook, text } from "./book/render.mjs";
import { samplingDemo, attentionDemo } from "./book/demos-html.mjs";
import { escapeHtml } from "./book/highlight.mjs";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const here = path.join(root, "tools", "book");
export const SITE = path.join(root, "site");
export const EXECUTED = path.join(root, "build", "executed");
export const MODELS = process.env.BOOK_MODELS_DIR ? path.resolve(process.env.BOOK_MODELS_DIR) : path.join(root, "build", "models");
const LANGS = ["zh", "en"];
export const DEFAULT_MODEL = "overview-en";

const pkgDir = (name) => path.dirname(require.resolve(`${name}/package.json`));

/** The notebooks the book shows: executed in both editions; 99-* only with --all (or if nothing else ran). */
export function bookNotebooks({ all = false, executed = EXECUTED } = {}) {
  if (!fs.existsSync(executed)) return [];
  const names = [...new Set(fs.readdirSync(executed).map((f) => f.match(/^(\d\d-[\w-]+)\.(zh|en)\.ipynb$/)?.[1]).filter(Boolean))].sort();
  const both = names.filter((n) => LANGS.every((l) => fs.existsSync(path.join(executed, `${n}.${l}.ipynb`))));
  const real = both.filter((n) => !n.startsWith("99-"));
  return all || real.length === 0 ? both : real;
}

/** The code of an executed copy still equals the committed notebook's (else it is stale). */
function stale(name, nb) {
  const file = path.join(root, "notebooks", `${name}.zh.ipynb`);
  if (!fs.existsSync(file)) return "its notebook is gone from notebooks/";
  const code = (n) => n.cells.filter((c) => c.cell_type === "code").map((c) => text(c.source)).join("\n\0");
  return code(JSON.parse(fs.readFileSync(file, "utf8"))) === code(nb) ? null : "its code changed since it ran";
}

// The bundle depends on lib/, tools/book/*.ts and the installed packages: reuse it while they stay the same.
function bundleKey() {
  const h = crypto.createHash("sha256");
  const files = [
    ...fs.readdirSync(path.join(root, "lib")).filter((f) => f.endsWith(".ts")).sort().map((f) => path.join(root, "lib", f)),
    ...fs.readdirSync(here).filter((f) => f.endsWith(".ts")).sort().map((f) => path.join(here, f)),
    path.join(root, "tools", "book.mjs"), path.join(root, "package-lock.json"),
  ];
  for (const f of files) if (fs.existsSync(f)) h.update(f).update(fs.readFileSync(f));
  return h.digest("hex").slice(0, 16);
}

async function bundleDemos(outDir) {
  const cache = path.join(root, "build", "book-cache", `demos-${bundleKey()}.js`);
  if (fs.existsSync(cache)) {
    fs.copyFileSync(cache, path.join(outDir, "demos.js"));
    return { bytes: fs.statSync(cache).size, cached: true };
  }
  const esbuild = await import("esbuild");
  // lib/ is written for Node (tfjs-node, fs); in the browser those pieces are empty modules
  const empty = /^(@tensorflow\/tfjs-node(\/.*)?|fs|path|crypto|os|child_process|gpt-tokenizer\/.*)$/;
  const result = await esbuild.build({
    entryPoints: [path.join(here, "demos.ts")],
    outfile: path.join(outDir, "demos.js"),
    bundle: true,
    format: "iife",
    platform: "browser",
    target: ["es2020"],
    minify: true,
    legalComments: "none",
    logLevel: "silent",
    define: { "process.env.BOOK_BACKEND": "undefined", "process.env.NODE_ENV": '"production"' },
    plugins: [{
      name: "empty-node-modules",
      setup(b) {
        b.onResolve({ filter: /.*/ }, (a) => (empty.test(a.path) ? { path: a.path, namespace: "empty" } : undefined));
        b.onLoad({ filter: /.*/, namespace: "empty" }, () => ({ contents: "module.exports = {};", loader: "js" }));
      },
    }],
  });
  for (const w of result.warnings) if (!/require-call|indirect-require/.test(w.id ?? "")) console.warn(`book: esbuild: ${w.text}`);
  fs.mkdirSync(path.dirname(cache), { recursive: true });
  for (const old of fs.readdirSync(path.dirname(cache))) fs.rmSync(path.join(path.dirname(cache), old));
  fs.copyFileSync(path.join(outDir, "demos.js"), cache);
  return { bytes: fs.statSync(cache).size, cached: false };
}

function copyAssets(assets) {
  fs.mkdirSync(assets, { recursive: true });
  fs.copyFileSync(path.join(here, "book.css"), path.join(assets, "book.css"));
  fs.copyFileSync(path.join(here, "book.js"), path.join(assets, "book.js"));
  const katex = path.join(pkgDir("katex"), "dist");
  fs.mkdirSync(path.join(assets, "katex"), { recursive: true });
  fs.copyFileSync(path.join(katex, "katex.min.css"), path.join(assets, "katex", "katex.min.css"));
  fs.cpSync(path.join(katex, "fonts"), path.join(assets, "katex", "fonts"), { recursive: true, filter: (f) => !/\.(ttf|woff)$/.test(f) });
  fs.copyFileSync(path.join(pkgDir("plotly.js-dist-min"), "plotly.min.js"), path.join(assets, "plotly.min.js"));
  const wasm = path.join(pkgDir("@tensorflow/tfjs-backend-wasm"), "dist");
  fs.mkdirSync(path.join(assets, "wasm"), { recursive: true });
  for (const f of fs.readdirSync(wasm).filter((f) => f.endsWith(".wasm"))) fs.copyFileSync(path.join(wasm, f), path.join(assets, "wasm", f));
}

/** A model's weights beside its <name>.json: <name>.safetensors (lib/train.ts saveParams) or <name>.params.bin. */
export function modelWeights(dir, name) {
  return [`${name}.safetensors`, `${name}.params.bin`].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f)) ?? null;
}

/** build/models/<name>.json + its weights -> site/models/, plus <name>.js so file:// pages can load them. */
function copyModels(MODELS, out) {
  const names = [];
  if (!fs.existsSync(MODELS)) return names;
  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(MODELS).filter((f) => f.endsWith(".json")).sort()) {
    const name = f.slice(0, -5);
    const bin = modelWeights(MODELS, name);
    if (!bin) continue;
    const meta = JSON.parse(fs.readFileSync(path.join(MODELS, f), "utf8"));
    fs.copyFileSync(path.join(MODELS, f), path.join(out, f));
    fs.copyFileSync(bin, path.join(out, path.basename(bin)));
    const js = `(self.BOOK_MODELS = self.BOOK_MODELS || {})[${JSON.stringify(name)}] = {meta: ${JSON.stringify(meta)}, params: "${fs.readFileSync(bin).toString("base64")}"};\n`;
    fs.writeFileSync(path.join(out, `${name}.js`), js);
    names.push(name);
  }
  return names;
}

function rootIndex(sections) {
  const list = (lang) => `<ol>${sections[lang].map((s) => `<li><a href="${lang}/${s.file}">${escapeHtml(s.title)}</a></li>`).join("")}</ol>`;
  return `<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>${LABELS.zh.book} · ${LABELS.en.book}</title>
<link rel="stylesheet" href="assets/book.css"></head>
<body class="root-index"><main>
<h1>${LABELS.zh.book}<br><span lang="en">${LABELS.en.book}</span></h1>
<div class="editions">
<section><h2><a href="zh/index.html">中文版</a></h2><p>${LABELS.zh.subtitle}</p>${list("zh")}<p><a href="zh/playground.html">${LABELS.zh.playground}</a></p></section>
<section lang="en"><h2><a href="en/index.html">English edition</a></h2><p>${LABELS.en.subtitle}</p>${list("en")}<p><a href="en/playground.html">${LABELS.en.playground}</a></p></section>
</div></main></body></html>
`;
}

/** Build the site. Every folder can be changed (the tests build a hostile notebook into a temp site). */
export async function buildBook({ all = false, quiet = false, executed = EXECUTED, site = SITE, models: modelsDir = MODELS } = {}) {
  const t0 = Date.now();
  const SITE = site, EXECUTED = executed;
  const log = quiet ? () => {} : (s) => console.log(s);
  const warnings = [];
  const names = bookNotebooks({ all, executed });
  if (fs.existsSync(SITE) && fs.readdirSync(SITE).length && !fs.existsSync(path.join(SITE, "assets", "book.css")))
    throw new Error(`${SITE} is not empty and is not a built book; refusing to replace it`);
  fs.rmSync(SITE, { recursive: true, force: true });
  fs.mkdirSync(SITE, { recursive: true });
  const assets = path.join(SITE, "assets");
  copyAssets(assets);
  const bundle = await bundleDemos(assets);
  const models = copyModels(modelsDir, path.join(SITE, "models"));
  if (!models.includes(DEFAULT_MODEL)) warnings.push(`no build/models/${DEFAULT_MODEL}.{json,safetensors} yet (notebook 00-overview exports it): the demos will say so`);
  const modelFor = (lang) => (models.includes(`overview-${lang}`) ? `overview-${lang}` : DEFAULT_MODEL);
  const demoScripts = (lang) => [...(models.includes(modelFor(lang)) ? [`../models/${modelFor(lang)}.js`] : []), "../assets/demos.js"];

  // render every notebook in both editions first: titles feed the contents and the pager
  const rendered = { zh: [], en: [] };
  const figures = new Map();
  let mathErrors = 0;
  for (const name of names) {
    for (const lang of LANGS) {
      const nb = JSON.parse(fs.readFileSync(path.join(EXECUTED, `${name}.${lang}.ipynb`), "utf8"));
      if (lang === "zh") {
        const why = stale(name, nb);
        if (why) warnings.push(`build/executed/${name} is stale (${why}): run \`npm run notebooks -- ${name}\``);
      }
      const demos = { sampling: samplingDemo(lang, modelFor(lang)), attention: attentionDemo(lang, modelFor(lang)) };
      const r = renderNotebook(nb, { lang, name, t: LABELS[lang], demos });
      for (const f of r.figures) if (!figures.has(f.id) || f.svg) figures.set(f.id, f.svg ?? figures.get(f.id) ?? null);
      mathErrors += r.mathErrors;
      if (r.mathErrors) warnings.push(`${name}.${lang}: ${r.mathErrors} formula(s) KaTeX could not parse (shown in red)`);
      rendered[lang].push({ name, file: `${name}.html`, nb, ...r });
    }
  }
  // figures: the SVG the runner put into the executed copy, else the committed or built one
  for (const [id, svg] of figures) {
    const out = path.join(SITE, "figures", `${id}.svg`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const from = [path.join(root, "build", "figures", `${id}.svg`), path.join(root, "figures", `${id}.svg`)].find((f) => fs.existsSync(f));
    if (svg) fs.writeFileSync(out, svg);
    else if (from) fs.copyFileSync(from, out);
    else warnings.push(`figure ${id} has no SVG (run \`npm run notebooks\`): it shows only where plotly runs`);
  }
  fs.mkdirSync(path.join(SITE, "notebooks"), { recursive: true });
  const sections = {};
  for (const lang of LANGS) {
    const dir = path.join(SITE, lang);
    fs.mkdirSync(dir, { recursive: true });
    const list = rendered[lang];
    sections[lang] = list.map((r) => ({ file: r.file, title: r.title }));
    list.forEach((r, i) => {
      fs.copyFileSync(path.join(EXECUTED, `${r.name}.${lang}.ipynb`), path.join(SITE, "notebooks", `${r.name}.${lang}.ipynb`));
      const scripts = [...(r.figures.length ? ["../assets/plotly.min.js"] : []), "../assets/book.js", ...(r.demos.length ? demoScripts(lang) : [])];
      fs.writeFileSync(path.join(dir, r.file), page({
        lang, file: r.file, title: r.title, body: r.body, sections: sections[lang], headings: r.headings,
        prev: list[i - 1] ?? null, next: list[i + 1] ?? null, scripts, notebook: `../notebooks/${r.name}.${lang}.ipynb`,
      }));
    });
    const t = LABELS[lang];
    const indexBody = `<div class="cell markdown"><h1 id="top">${escapeHtml(t.book)}</h1><p class="subtitle">${escapeHtml(t.subtitle)}</p>` +
      `<ol class="index-list">${sections[lang].map((s) => `<li><a href="${s.file}">${escapeHtml(s.title)}</a></li>`).join("")}</ol>` +
      `<p><a href="playground.html">${t.playground} →</a></p></div>`;
    fs.writeFileSync(path.join(dir, "index.html"), page({ lang, file: "index.html", title: t.contents, body: indexBody, sections: sections[lang], next: list[0] ?? null, scripts: ["../assets/book.js"] }));
    const playBody = `<div class="cell markdown"><h1 id="playground">${escapeHtml(t.playground)}</h1></div>` +
      samplingDemo(lang, modelFor(lang)) + attentionDemo(lang, modelFor(lang));
    fs.writeFileSync(path.join(dir, "playground.html"), page({ lang, file: "playground.html", title: t.playground, body: playBody, sections: sections[lang], prev: list.at(-1) ?? null, scripts: ["../assets/book.js", ...demoScripts(lang)] }));
  }
  fs.writeFileSync(path.join(SITE, "index.html"), rootIndex(sections));
  const seconds = (Date.now() - t0) / 1000;
  if (!quiet) for (const w of warnings) console.warn(`book: warning: ${w}`);
  log(`book: ${names.length} notebook(s) × 2 editions → ${names.length * 2} pages + 2 indexes + 2 playgrounds, ${figures.size} figure(s), ` +
    `model(s): ${models.join(", ") || "none"}, demos.js ${(bundle.bytes / 1e6).toFixed(1)} MB${bundle.cached ? " (cached)" : ""}, in ${seconds.toFixed(1)} s → ${path.relative(process.cwd(), SITE) || "."}/index.html`);
  return { names, pages: names.length * 2 + 5, figures: [...figures.keys()], models, warnings, mathErrors, seconds };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildBook({ all: process.argv.includes("--all") }).catch((e) => {
    console.error(`book: ${e.message}`);
    process.exit(1);
  });
}
