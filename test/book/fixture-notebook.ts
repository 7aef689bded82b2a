// A hostile, feature-complete executed notebook for the book tests: math, a table, a link to another
// notebook, a long code line, ANSI colours, stderr, an HTML output, a plot, a demo marker, exercises
// and solutions — and a <script> wherever a notebook can smuggle one (markdown, stream, HTML output,
// a plot title). Written in both editions, as tools/run-notebooks.mjs writes build/executed/.
import * as fs from "fs";
import * as path from "path";

export const FIXTURE = "98-fixture";
const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="420"><rect width="720" height="420" fill="#eef"/><text x="20" y="40">fixture</text></svg>`;

const md = (source: string) => ({ cell_type: "markdown", metadata: {}, source });
const code = (source: string, outputs: unknown[]) => ({ cell_type: "code", execution_count: 1, metadata: {}, outputs, source });

export function fixtureNotebook(lang: "zh" | "en"): object {
  const zh = lang === "zh";
  const spec = {
    data: [{ type: "scatter", x: [1, 2, 3], y: [2, 4, 8] }],
    layout: { title: { text: `</script><script>window.__pwned = "spec"</script>${zh ? "夹具图" : "fixture plot"}` }, width: 720, height: 420 },
  };
  return {
    metadata: { kernelspec: { name: "tslab", display_name: "TypeScript", language: "typescript" }, book: { notebook: FIXTURE, edition: lang } },
    nbformat: 4,
    nbformat_minor: 5,
    cells: [
      md(zh ? "# 夹具：书的每一种内容" : "# Fixture: every kind of content"),
      md((zh ? "## 学习目标\n\n- 公式 $\\sqrt{d_k}$ 渲染\n- 表格\n" : "## Goals\n\n- the formula $\\sqrt{d_k}$ renders\n- tables\n") +
        "\n$$\\mathrm{Attention}(Q,K,V) = \\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d_k}}\\right)V \\qquad \\text{a long display formula that has to scroll inside itself on a phone}$$\n\n" +
        "<script>window.__pwned = \"markdown\"</script>\n\n<img src=x onerror=\"window.__pwned='img'\">\n\n" +
        `[${zh ? "本页" : "this page"}](${FIXTURE}.${lang}.ipynb) · [${zh ? "English" : "中文"}](${FIXTURE}.${zh ? "en" : "zh"}.ipynb#summary)\n\n` +
        "| T | top-k | top-p |\n|---|---|---|\n| 0.7 | 40 | 0.9 |\n"),
      code("const veryLongLineToForceHorizontalScrollingInsideTheCodeBlockOnly = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];\nconsole.log(\"<script>window.__pwned = 'stream'</script>\");", [
        { output_type: "stream", name: "stdout", text: ["\u001b[32mloss = 1.9312\u001b[0m\n", "<script>window.__pwned = 'stream'</script>\n"] },
        { output_type: "stream", name: "stderr", text: "a warning on stderr\n" },
      ]),
      code("display.html(\"<b>bold</b>\")", [
        { output_type: "display_data", metadata: {}, data: { "text/html": ["<b>bold html</b><script>parent.__pwned = 'html'; window.__ran = 1</script>"], "text/plain": "html" } },
      ]),
      code(`show(fig, "${FIXTURE}/plot")`, [
        { output_type: "display_data", metadata: {}, data: { "application/vnd.plotly.v1+json": spec, "text/plain": [`[figure ${FIXTURE}/plot]`], "image/svg+xml": SVG } },
      ]),
      md((zh ? "## 试一试\n\n" : "## Try it\n\n") + "<!-- demo: sampling -->\n\n<!-- cites -->\n" + (zh ? "损失约为 1.93。" : "The loss is about 1.93.")),
      md(zh ? "## 小结\n\n夹具到此为止。" : "## Summary\n\nThat is the fixture."),
      md(zh ? "## 练习\n\n1. 改变 $T$。" : "## Exercises\n\n1. Change $T$."),
      md(zh ? "## 参考答案\n\n**练习 1。** 见下面的代码。" : "## Solutions\n\n**Exercise 1.** See the code below."),
      code("const solutionCell = 1;", [{ output_type: "stream", name: "stdout", text: "solution output\n" }]),
      md(zh ? "## 延伸阅读\n\n答案之后的一节，不折叠。" : "## Further reading\n\nA section after the solutions, not folded."),
    ],
  };
}

export function writeFixtureNotebook(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const lang of ["zh", "en"] as const)
    fs.writeFileSync(path.join(dir, `${FIXTURE}.${lang}.ipynb`), JSON.stringify(fixtureNotebook(lang), null, 1) + "\n");
}
