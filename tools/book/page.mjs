// The page shell every page of the book shares: header with the 中文 / English switch, the book's
// contents and this page's headings, previous / next links. Static HTML; scripts are only the book's own.
import { escapeHtml } from "./highlight.mjs";

export const LABELS = {
  zh: {
    htmlLang: "zh-CN",
    book: "综述——大语言模型",
    subtitle: "可执行的一章：TypeScript 笔记本 + TensorFlow.js",
    contents: "目录",
    onThisPage: "本节",
    prev: "上一节",
    next: "下一节",
    code: "代码",
    playground: "在浏览器里试一试",
    switchTo: "English",
    notebook: "下载笔记本 (.ipynb)",
    home: "首页",
    footer: "本页由执行过的笔记本生成；代码与输出和 JupyterLab 中一致。",
  },
  en: {
    htmlLang: "en",
    book: "Large Language Models: a Survey",
    subtitle: "An executable chapter: TypeScript notebooks on TensorFlow.js",
    contents: "Contents",
    onThisPage: "On this page",
    prev: "Previous",
    next: "Next",
    code: "Code",
    playground: "Try it in the browser",
    switchTo: "中文",
    notebook: "Download the notebook (.ipynb)",
    home: "Home",
    footer: "Built from the executed notebooks; code and outputs are those JupyterLab shows.",
  },
};
export const OTHER = { zh: "en", en: "zh" };

/**
 * page({lang, file, title, body, sections: [{file, title}], headings, prev, next, scripts, otherFile, notebook})
 * Every path is relative to site/<lang>/.
 */
export function page(p) {
  const t = LABELS[p.lang];
  const other = OTHER[p.lang];
  const sectionList = (cls) =>
    `<ol class="${cls}">` +
    p.sections.map((s) => `<li${s.file === p.file ? ' aria-current="page"' : ""}><a href="${s.file}">${escapeHtml(s.title)}</a></li>`).join("") +
    `<li class="extra"${p.file === "playground.html" ? ' aria-current="page"' : ""}><a href="playground.html">${t.playground}</a></li></ol>`;
  const local = (p.headings ?? []).filter((h) => h.level === 2);
  const localList = local.length
    ? `<h2 class="toc-title">${t.onThisPage}</h2><ul class="toc-local">${local.map((h) => `<li><a href="#${h.id}">${escapeHtml(h.text)}</a></li>`).join("")}</ul>`
    : "";
  const pager =
    p.prev || p.next
      ? `<nav class="pager" aria-label="${t.prev} / ${t.next}">` +
        (p.prev ? `<a class="prev" rel="prev" href="${p.prev.file}"><span>← ${t.prev}</span>${escapeHtml(p.prev.title)}</a>` : "<span></span>") +
        (p.next ? `<a class="next" rel="next" href="${p.next.file}"><span>${t.next} →</span>${escapeHtml(p.next.title)}</a>` : "<span></span>") +
        "</nav>"
      : "";
  return `<!doctype html>
<html lang="${t.htmlLang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(p.title)} · ${escapeHtml(t.book)}</title>
<link rel="stylesheet" href="../assets/katex/katex.min.css">
<link rel="stylesheet" href="../assets/book.css">
<link rel="alternate" hreflang="${LABELS[other].htmlLang}" href="../${other}/${p.otherFile ?? p.file}">
</head>
<body>
<header class="bar">
  <a class="book-title" href="index.html">${escapeHtml(t.book)}</a>
  <nav class="lang" aria-label="language / 语言">
    <a class="lang-zh" lang="zh-CN" hreflang="zh-CN" href="../zh/${p.lang === "zh" ? p.file : p.otherFile ?? p.file}"${p.lang === "zh" ? ' aria-current="true"' : ""}>中文</a>
    <span aria-hidden="true">/</span>
    <a class="lang-en" lang="en" hreflang="en" href="../en/${p.lang === "en" ? p.file : p.otherFile ?? p.file}"${p.lang === "en" ? ' aria-current="true"' : ""}>English</a>
  </nav>
</header>
<div class="layout">
<nav class="toc" aria-label="${t.contents}">
  <h2 class="toc-title">${t.contents}</h2>
  ${sectionList("toc-book")}
  ${localList}
</nav>
<main>
<details class="toc-mobile"><summary>${t.contents}</summary>${sectionList("toc-book")}${localList}</details>
${p.body}
${p.notebook ? `<p class="download"><a href="${p.notebook}" download>${t.notebook}</a></p>` : ""}
${pager}
<footer>${t.footer}</footer>
</main>
</div>
${(p.scripts ?? []).map((s) => `<script src="${s}"></script>`).join("\n")}
</body>
</html>
`;
}
