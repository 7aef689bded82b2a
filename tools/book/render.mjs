// One executed notebook -> the HTML of its page body. Markdown by markdown-it (html: false, so a
// <script> in a markdown cell is shown as text), math by KaTeX at build time, code cells highlighted,
// outputs escaped (text) or isolated (a text/html output goes into a sandboxed iframe that cannot run
// scripts), plots as plotly specs with their SVG as the fallback, solutions folded in <details>.
import katex from "katex";
import MarkdownIt from "markdown-it";
import texmath from "markdown-it-texmath";
import { escapeHtml, highlight } from "./highlight.mjs";

export const text = (v) => (Array.isArray(v) ? v.join("") : v ?? "");
// CSI / OSC / two-byte escapes, as terminals and tslab's console print them
export const stripAnsi = (s) => s.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g, "");
/** JSON safe inside <script type="application/json">: no "<" can close the element. */
export const scriptJson = (v) => JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

export const SOLUTIONS = /^##\s+(参考答案|Solutions)\s*$/;
const SECTION_BREAK = /^#{1,2}\s/;
const DEMO = /^\s*<!--\s*demo:\s*([a-z-]+)\s*-->\s*$/;

/** A heading's id: its words (any script) joined by "-". */
export function slug(s) {
  return s.toLowerCase().normalize("NFKC").replace(/[^\p{L}\p{N}\s-]/gu, "").trim().replace(/\s+/g, "-") || "section";
}

export function makeMarkdown() {
  const md = new MarkdownIt({
    html: false,
    linkify: false,
    highlight: (code, lang) => (/^(ts|typescript|js|javascript|tsx)$/i.test(lang) ? highlight(code) : escapeHtml(code)),
  });
  md.use(texmath, { engine: katex, delimiters: "dollars", katexOptions: { throwOnError: false, strict: "ignore" } });
  // ids on headings (unique on the page), collected for the page's table of contents
  md.core.ruler.push("book_headings", (state) => {
    const env = state.env;
    state.tokens.forEach((tok, i) => {
      if (tok.type !== "heading_open") return;
      const inline = state.tokens[i + 1];
      const plain = inline.children.filter((c) => c.type === "text" || c.type === "code_inline").map((c) => c.content).join("") || inline.content;
      let id = slug(plain);
      for (let n = 2; env.ids.has(id); n++) id = `${slug(plain)}-${n}`;
      env.ids.add(id);
      tok.attrSet("id", id);
      env.headings.push({ level: Number(tok.tag.slice(1)), text: plain, id });
    });
  });
  // links between notebooks become links between pages; figure images point into site/figures
  md.core.ruler.push("book_links", (state) => {
    const walk = (tokens) => {
      for (const tok of tokens) {
        if (tok.children) walk(tok.children);
        if (tok.type === "link_open") {
          const href = tok.attrGet("href") ?? "";
          const m = href.match(/^(?:\.\/)?(\d\d-[\w-]+)\.(zh|en)\.ipynb(#.*)?$/);
          if (m) tok.attrSet("href", `${m[2] === state.env.lang ? "" : `../${m[2]}/`}${m[1]}.html${m[3] ?? ""}`);
          else if (/^https?:/.test(href)) tok.attrSet("rel", "noopener");
        }
        if (tok.type === "image") {
          const src = tok.attrGet("src") ?? "";
          if (src.startsWith("../figures/")) tok.attrSet("src", src); // site/<lang>/ sits where notebooks/ does
        }
      }
    };
    walk(state.tokens);
  });
  md.renderer.rules.table_open = () => '<div class="table-wrap"><table>\n';
  md.renderer.rules.table_close = () => "</table></div>\n";
  return md;
}

/** Split markdown at level-1/2 headings and at demo markers (outside code fences). */
export function segments(src) {
  const out = [];
  let cur = [];
  let fence = null;
  const flush = () => {
    if (cur.join("").trim()) out.push({ kind: "md", text: cur.join("\n") });
    cur = [];
  };
  for (const line of src.split("\n")) {
    const f = line.match(/^\s*(`{3,}|~{3,})/);
    if (f) fence = fence === null ? f[1][0] : line.trim().startsWith(fence) ? null : fence;
    if (fence === null && !f && DEMO.test(line)) {
      flush();
      out.push({ kind: "demo", name: line.match(DEMO)[1] });
      continue;
    }
    if (fence === null && SECTION_BREAK.test(line)) flush();
    cur.push(line);
  }
  flush();
  return out;
}

// markers for authors (<!-- cites -->, …) are invisible in JupyterLab and must stay so here
const stripComments = (s) => s.replace(/<!--[\s\S]*?-->/g, "");

function outputHtml(out, ctx) {
  const t = out.output_type;
  if (t === "stream") {
    const body = stripAnsi(text(out.text));
    if (!body.trim()) return "";
    return `<pre class="out ${out.name === "stderr" ? "stderr" : "stdout"}">${escapeHtml(body.replace(/\n$/, ""))}</pre>`;
  }
  if (t === "error") {
    const tb = stripAnsi((out.traceback ?? []).join("\n") || `${out.ename}: ${out.evalue}`);
    return `<pre class="out error">${escapeHtml(tb)}</pre>`;
  }
  const data = out.data ?? {};
  const plain = text(data["text/plain"]);
  const spec = data["application/vnd.plotly.v1+json"];
  if (spec) {
    const id = plain.match(/^\[figure (.+)\]$/)?.[1] ?? `${ctx.name}/figure-${ctx.figures.length + 1}`;
    const svg = text(data["image/svg+xml"]);
    ctx.figures.push({ id, svg: svg || null });
    const title = spec.layout?.title?.text ?? spec.layout?.title ?? id;
    const w = spec.layout?.width ?? 720, h = spec.layout?.height ?? 420;
    return `<figure class="plot" id="fig-${escapeHtml(id.replace(/\//g, "-"))}" data-figure="${escapeHtml(id)}">` +
      `<img class="plot-fallback" src="../figures/${escapeHtml(id)}.svg" alt="${escapeHtml(String(title))}" width="${w}" height="${h}" loading="lazy">` +
      `<script type="application/json" class="plot-spec">${scriptJson(spec)}</script></figure>`;
  }
  if (data["text/html"] !== undefined) {
    // no allow-scripts: a <script> in an output cannot run; allow-same-origin only lets book.js size the frame
    return `<iframe class="out html" sandbox="allow-same-origin" srcdoc="${escapeHtml(text(data["text/html"]))}" title="output"></iframe>`;
  }
  if (data["image/svg+xml"] !== undefined) {
    const b64 = Buffer.from(text(data["image/svg+xml"]), "utf8").toString("base64");
    return `<img class="out image" alt="output" src="data:image/svg+xml;base64,${b64}">`;
  }
  for (const mime of ["image/png", "image/jpeg", "image/gif"])
    if (data[mime] !== undefined) return `<img class="out image" alt="output" src="data:${mime};base64,${text(data[mime]).replace(/\s/g, "")}">`;
  if (data["text/markdown"] !== undefined) return `<div class="out markdown">${ctx.md.render(stripComments(text(data["text/markdown"])), ctx.env)}</div>`;
  if (plain) return `<pre class="out stdout">${escapeHtml(stripAnsi(plain))}</pre>`;
  return "";
}

function codeCellHtml(cell, ctx) {
  const tags = cell.metadata?.tags ?? [];
  if (tags.includes("remove-cell")) return "";
  const src = text(cell.source).replace(/\s+$/, "");
  const input = `<div class="in"><pre class="code"><code class="language-ts">${highlight(src)}</code></pre></div>`;
  const outs = (cell.outputs ?? []).map((o) => outputHtml(o, ctx)).filter(Boolean).join("\n");
  const wrapped = tags.includes("hide-input") ? `<details class="hidden-input"><summary>${ctx.t.code}</summary>${input}</details>` : input;
  return `<div class="cell code">${wrapped}${outs ? `<div class="outputs">${outs}</div>` : ""}</div>`;
}

/**
 * Render one notebook. ctx: {lang, name, t (labels), demos: {name -> html}}.
 * Returns {title, body, headings, figures, demos, mathErrors}.
 */
export function renderNotebook(nb, ctx) {
  const md = makeMarkdown();
  const env = { ids: new Set(), headings: [], lang: ctx.lang };
  const c = { ...ctx, md, env, figures: [] };
  const usedDemos = [];
  const parts = [];
  let inSolutions = false;
  let title = null;
  const closeSolutions = () => {
    if (inSolutions) parts.push("</div></details>");
    inSolutions = false;
  };
  for (const cell of nb.cells) {
    if (cell.cell_type === "code") {
      parts.push(codeCellHtml(cell, c));
      continue;
    }
    if (cell.cell_type !== "markdown") continue;
    for (const seg of segments(text(cell.source))) {
      if (seg.kind === "demo") {
        usedDemos.push(seg.name);
        parts.push(ctx.demos?.[seg.name] ?? `<p class="missing">[demo ${escapeHtml(seg.name)}]</p>`);
        continue;
      }
      const first = seg.text.trimStart().split("\n")[0];
      if (SECTION_BREAK.test(first)) closeSolutions();
      const hs = env.headings.length;
      if (SOLUTIONS.test(first)) {
        const html = md.render(stripComments(seg.text), env);
        const h = env.headings[hs];
        // the heading becomes the <summary>; the id moves to <details> so the contents link opens onto it
        const inner = html.replace(/^<h2 id="[^"]*">([\s\S]*?)<\/h2>\n?/, "");
        parts.push(`<details class="solutions" id="${h.id}"><summary><h2>${escapeHtml(h.text)}</h2></summary><div class="solutions-body">${inner}`);
        inSolutions = true;
        continue;
      }
      parts.push(`<div class="cell markdown">${md.render(stripComments(seg.text), env)}</div>`);
      if (title === null) title = env.headings.find((h) => h.level === 1)?.text ?? null;
    }
  }
  closeSolutions();
  const body = parts.join("\n");
  const mathErrors = (body.match(/class="katex-error"/g) ?? []).length;
  return { title: title ?? ctx.name, body, headings: env.headings, figures: c.figures, demos: usedDemos, mathErrors };
}
