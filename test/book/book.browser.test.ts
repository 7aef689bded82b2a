// The static book in Debian's Chromium, served on 127.0.0.1 (and once from file://): every page loads
// cleanly and stays on the machine, math is typeset, figures are there and plotly draws them, the
// language switch works, the demos answer their sliders and give Node's tokens for the same seed, a
// phone sees no sideways scroll, and nothing a notebook carries can run as a script.
import * as fs from "fs";
import * as path from "path";
import { pathToFileURL } from "url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { BookTools, ServeTools, launch, root, tmpDir, tool, watch, within } from "./helpers";
import { FIXTURE, writeFixtureNotebook } from "./fixture-notebook";
import { writeFixtureModel } from "./fixture-model";
import { loadParams } from "../../lib/train";
import { generate } from "../../lib/sampling";
import { CharTokenizer } from "../../lib/tokenizer";
import type { DecoderConfig } from "../../lib/decoder";

const SHOTS = path.join(root, "build", "book-screenshots");
const work = tmpDir("site");
const site = path.join(work, "site");
let url = "";
let close: () => Promise<void> = async () => {};
let browser: Browser;
let modelsDir = path.join(root, "build", "models");
let modelNote = "";
let pages: string[] = []; // paths under site/, e.g. "zh/00-overview.html"
let sections: string[] = []; // the notebooks the book shows, fixture included

const allowFixtureErrors = [/Blocked script execution in 'about:srcdoc'/]; // the sandbox refusing the fixture's <script>

beforeAll(async () => {
  const { buildBook } = await tool<BookTools>("tools/book.mjs");
  const { serveSite } = await tool<ServeTools>("tools/serve.mjs");
  // the executed notebooks the book would show, plus the hostile fixture
  const executed = path.join(work, "executed");
  fs.mkdirSync(executed);
  const ran = path.join(root, "build", "executed");
  if (fs.existsSync(ran)) for (const f of fs.readdirSync(ran)) if (f.endsWith(".ipynb")) fs.copyFileSync(path.join(ran, f), path.join(executed, f));
  writeFixtureNotebook(executed);
  if (!fs.existsSync(path.join(modelsDir, "overview-en.json")) || !fs.existsSync(path.join(modelsDir, "overview-en.safetensors"))) {
    modelsDir = writeFixtureModel(path.join(work, "models"));
    modelNote = " (build/models/overview-en is not there yet: untrained stand-in weights)";
  }
  const real = fs.readdirSync(executed).filter((f) => /^\d\d-/.test(f) && !f.startsWith("99-") && !f.startsWith(FIXTURE));
  const built = await buildBook({ executed, site, models: modelsDir, all: real.length === 0, quiet: true });
  sections = built.names;
  expect(built.mathErrors, "formulas KaTeX could not parse").toBe(0);
  console.log(`book: built ${built.names.join(", ")} in ${built.seconds.toFixed(1)} s; model ${built.models.join(", ")}${modelNote}`);
  pages = ["index.html", ...["zh", "en"].flatMap((l) => fs.readdirSync(path.join(site, l)).filter((f) => f.endsWith(".html")).sort().map((f) => `${l}/${f}`))];
  const served = await serveSite({ dir: site, port: 0 });
  url = served.url;
  close = served.close;
  browser = await launch();
  fs.mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await close();
  fs.rmSync(work, { recursive: true, force: true });
});

const local = (u: string) => u.startsWith(url);

/** Open a page, wait for its scripts (plots drawn, demos ready), return what went wrong. */
async function open(page: Page, rel: string, base = url): Promise<void> {
  await page.goto(base + rel, { waitUntil: "load", timeout: 90_000 });
  await page.waitForFunction(() => !document.querySelector(".demo") || !!document.documentElement.dataset.demos, null, { timeout: 60_000 });
  await page.evaluate(() => (window as unknown as { bookDrawAllPlots?: () => void }).bookDrawAllPlots?.());
  await page.waitForFunction(() => [...document.querySelectorAll("figure.plot")].every((f) => (f as HTMLElement).dataset.state === "drawn" || (f as HTMLElement).dataset.state === "failed"), null, { timeout: 60_000 });
}

describe("the static book", () => {
  it("builds pages for both editions, indexes and playgrounds", () => {
    for (const lang of ["zh", "en"]) {
      for (const name of sections) expect(pages).toContain(`${lang}/${name}.html`);
      expect(pages).toContain(`${lang}/index.html`);
      expect(pages).toContain(`${lang}/playground.html`);
    }
  });

  it("every page loads with no console error, no request leaving 127.0.0.1, math typeset, every figure drawn, no broken link, no sideways scroll at 390 px", async () => {
    await within(420_000, "loading every page", async () => {
      const problems: string[] = [];
      const checked = new Set<string>();
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const w = watch(page, local);
      for (const rel of pages) {
        w.allow = rel.includes(FIXTURE) ? allowFixtureErrors : [];
        await page.setViewportSize({ width: 1280, height: 900 });
        await open(page, rel);
        const r = await page.evaluate(() => {
          const main = document.querySelector("main") ?? document.body;
          return {
            text: (main as HTMLElement).innerText,
            katex: document.querySelectorAll(".katex").length,
            katexErrors: document.querySelectorAll(".katex-error").length,
            figures: [...document.querySelectorAll("figure.plot")].map((f) => ({
              id: (f as HTMLElement).dataset.figure, state: (f as HTMLElement).dataset.state,
              live: !!f.querySelector(".js-plotly-plot .main-svg"), img: (f.querySelector("img.plot-fallback") as HTMLImageElement | null)?.src ?? "",
            })),
            links: [...document.querySelectorAll("a[href]")].map((a) => (a as HTMLAnchorElement).href).filter((h) => !h.startsWith("mailto:")),
            lang: document.documentElement.lang,
          };
        });
        if (/\$\$/.test(r.text)) problems.push(`${rel}: raw $$ in the text`);
        if (r.katexErrors) problems.push(`${rel}: ${r.katexErrors} KaTeX error(s)`);
        const name = rel.match(/^(zh|en)\/(\d\d-[\w-]+)\.html$/);
        if (name) {
          const nb = JSON.parse(fs.readFileSync(path.join(site, "notebooks", `${name[2]}.${name[1]}.ipynb`), "utf8"));
          const md = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "markdown").map((c: { source: string | string[] }) => [c.source].flat().join("")).join("\n");
          if (/\$[^$\s][^$]*\$/.test(md) && r.katex === 0) problems.push(`${rel}: the notebook has math but the page has no typeset formula`);
          const plots = nb.cells.flatMap((c: { outputs?: { data?: object }[] }) => c.outputs ?? []).filter((o: { data?: object }) => o.data && "application/vnd.plotly.v1+json" in o.data).length;
          if (r.figures.length !== plots) problems.push(`${rel}: ${plots} plot output(s) in the notebook, ${r.figures.length} figure(s) on the page`);
        }
        for (const f of r.figures) {
          if (!f.live) problems.push(`${rel}: plotly did not draw ${f.id} (${f.state})`);
          const svg = await page.request.get(f.img);
          if (!svg.ok() || !(await svg.text()).includes("<svg")) problems.push(`${rel}: the fallback SVG of ${f.id} is missing (${f.img})`);
        }
        for (const href of new Set(r.links.map((h) => h.split("#")[0]))) {
          if (!local(href) || checked.has(href)) continue;
          checked.add(href);
          const res = await page.request.get(href);
          if (!res.ok()) problems.push(`${rel}: broken link ${href} (${res.status()})`);
        }
        // a phone: the same page at 390 px (media queries apply, plotly redraws at the new width)
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(400);
        const sw = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth));
        if (sw > 390) problems.push(`${rel}: ${sw} px wide at a 390 px phone width (sideways scroll)`);
      }
      await page.close();
      problems.push(...w.problems);
      expect(problems).toEqual([]);
    });
  }, 450_000);

  it("the language switch leads to the same section in the other edition and back", async () => {
    const page = await browser.newPage();
    const w = watch(page, local);
    const first = sections.find((s) => s !== FIXTURE) ?? sections[0];
    await page.goto(`${url}zh/${first}.html`);
    const zhTitle = await page.locator("main h1").first().innerText();
    expect(await page.getAttribute("html", "lang")).toBe("zh-CN");
    await page.click("a.lang-en");
    await page.waitForURL(`${url}en/${first}.html`);
    expect(await page.getAttribute("html", "lang")).toBe("en");
    const enTitle = await page.locator("main h1").first().innerText();
    expect(enTitle).not.toBe(zhTitle);
    await page.click("a.lang-zh");
    await page.waitForURL(`${url}zh/${first}.html`);
    expect(await page.locator("main h1").first().innerText()).toBe(zhTitle);
    await page.close();
    expect(w.problems).toEqual([]);
  }, 120_000);

  it("the sampling playground answers a slider move, and its Generate button", async () => {
    const page = await browser.newPage();
    const w = watch(page, local);
    await open(page, "en/playground.html");
    expect(await page.evaluate(() => document.documentElement.dataset.demos)).toBe("ready");
    const bars = page.locator(".demo-sampling .bars");
    const V = Number(await bars.getAttribute("data-kept"));
    expect(V).toBeGreaterThan(20);
    const slide = (name: string, value: string) => page.evaluate(([n, v]) => {
      const el = document.querySelector(`.demo-sampling input[name=${n}]`) as HTMLInputElement;
      el.value = v;
      el.dispatchEvent(new Event("input", { bubbles: true }));
    }, [name, value]);
    await slide("topk", "5");
    await expect.poll(async () => Number(await bars.getAttribute("data-kept")), { timeout: 10_000 }).toBeLessThanOrEqual(5);
    expect(await page.locator(".demo-sampling output[name=topk-value]").innerText()).toBe("5");
    await slide("topk", "0");
    await slide("topp", "0.5");
    await expect.poll(async () => Number(await bars.getAttribute("data-kept")), { timeout: 10_000 }).toBeLessThan(V);
    await slide("temperature", "0");
    await expect.poll(async () => Number(await bars.getAttribute("data-kept")), { timeout: 10_000 }).toBe(1);
    await slide("temperature", "1");
    await slide("topp", "1");
    await expect.poll(async () => Number(await bars.getAttribute("data-kept")), { timeout: 10_000 }).toBe(V);
    // a new prompt changes the distribution
    const before = await bars.getAttribute("data-q");
    await page.fill(".demo-sampling input[name=prompt]", "The king said");
    await expect.poll(() => bars.getAttribute("data-q"), { timeout: 10_000 }).not.toBe(before);
    await page.click(".demo-sampling button[name=generate]");
    const out = page.locator(".demo-sampling .demo-output");
    await expect.poll(() => out.getAttribute("data-ids"), { timeout: 30_000 }).toMatch(/^\d+(,\d+){79}$/);
    // the attention explorer drew one heatmap per head
    const heads = await page.locator(".demo-attention .heads canvas").count();
    expect(heads).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SHOTS, "desktop-playground.png"), fullPage: true });
    await page.close();
    expect(w.problems).toEqual([]);
  }, 180_000);

  it("the same seed gives the same tokens in the browser (webgl, wasm, cpu) as in Node", async () => {
    const meta = JSON.parse(fs.readFileSync(path.join(modelsDir, "overview-en.json"), "utf8")) as { config: DecoderConfig; vocab: string[]; prompt?: string };
    const specials = meta.vocab.slice(0, Math.max(0, meta.vocab.findIndex((v) => [...v].length === 1)));
    const tok = CharTokenizer.fromVocab(meta.vocab, specials);
    const known = new Set(meta.vocab.slice(specials.length));
    const prompt = [...(meta.prompt ?? "The ")].filter((c) => known.has(c)).join("") || meta.vocab[specials.length];
    const params = loadParams(path.join(modelsDir, "overview-en.safetensors"));
    const cases = [
      { seed: 42, temperature: 1, topK: 0, topP: 1, length: 32 },
      { seed: 7, temperature: 0.8, topK: 20, topP: 1, length: 32 },
      { seed: 2024, temperature: 1.2, topK: 0, topP: 0.9, length: 32 },
      { seed: 1, temperature: 0, topK: 0, topP: 1, length: 16 },
    ];
    const node = cases.map((c) => (generate({ params, config: meta.config }, tok.encode(prompt), {
      maxNewTokens: c.length, seed: c.seed, temperature: c.temperature, topK: c.topK > 0 ? c.topK : undefined, topP: c.topP < 1 ? c.topP : undefined,
    }) as number[]).slice(tok.encode(prompt).length));
    for (const t of Object.values(params)) t.dispose();
    const page = await browser.newPage();
    const w = watch(page, local);
    const seen: string[] = [];
    for (const backend of ["", "webgl", "wasm", "cpu"]) {
      await open(page, `en/playground.html${backend ? `?backend=${backend}` : ""}`);
      // WebGL here is a software rasteriser (~1 s a token): two settings, 8 tokens (the first 8 of Node's)
      const run = backend === "webgl" ? cases.slice(1, 3).map((c) => ({ ...c, length: 8 })) : cases;
      const want = backend === "webgl" ? node.slice(1, 3).map((ids) => ids.slice(0, 8)) : node;
      const got = await page.evaluate(([p, cs]) => {
        const d = (window as unknown as { bookDemos: { backend: string; generate(p: string, o: object): { ids: number[] } } }).bookDemos;
        const t0 = performance.now();
        const ids = (cs as object[]).map((c) => d.generate(p as string, c).ids);
        return { backend: d.backend, ids, ms: performance.now() - t0 };
      }, [prompt, run] as const);
      if (backend) expect(got.backend).toBe(backend);
      seen.push(`${got.backend} ${(got.ms / got.ids.flat().length).toFixed(1)} ms/token`);
      got.ids.forEach((ids, i) => expect(ids, `${got.backend}, case ${JSON.stringify(run[i])}`).toEqual(want[i]));
    }
    console.log(`book: same tokens in Node and in Chromium on ${seen.join(", ")} (the first is the page's own choice) for ${cases.length} settings (${node[0].length} tokens each)`);
    await page.close();
    expect(w.problems).toEqual([]);
  }, 300_000);

  it("on a phone (390 px, touch, 2× pixels) a section, the playground and the fixture do not scroll sideways (screenshots)", async () => {
    await within(240_000, "phone screenshots", async () => {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      const w = watch(page, local);
      const wide: string[] = [];
      const first = sections.find((s) => s !== FIXTURE) ?? sections[0];
      for (const rel of [`zh/${first}.html`, "zh/playground.html", `en/${FIXTURE}.html`]) {
        w.allow = rel.includes(FIXTURE) ? allowFixtureErrors : [];
        await open(page, rel);
        const sw = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth));
        if (sw > 390) wide.push(`${rel}: ${sw} px wide`);
        const shot = path.join(SHOTS, `phone-${rel.replace(/\.html$/, "").replace(/\W+/g, "-")}`);
        await page.screenshot({ path: `${shot}-top.png` });
        await page.screenshot({ path: `${shot}.png`, fullPage: true });
      }
      await page.close();
      expect(wide).toEqual([]);
      expect(w.problems).toEqual([]);
    });
  }, 260_000);

  it("a notebook cannot run a script in the book: markdown, outputs, HTML outputs and plot titles stay text", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const w = watch(page, local);
    w.allow = allowFixtureErrors;
    await open(page, `en/${FIXTURE}.html`);
    const r = await page.evaluate(() => ({
      pwned: (window as unknown as { __pwned?: string }).__pwned ?? null,
      text: (document.querySelector("main") as HTMLElement).innerText,
      frameRan: (() => {
        const f = document.querySelector("iframe.out.html") as HTMLIFrameElement | null;
        return f ? ((f.contentWindow as unknown as { __ran?: number }).__ran ?? null) : "no iframe";
      })(),
      frameText: (document.querySelector("iframe.out.html") as HTMLIFrameElement).contentDocument?.body.innerText ?? "",
      open: (document.querySelector("details.solutions") as HTMLDetailsElement).open,
      folded: (document.querySelector("details.solutions") as HTMLElement).innerText,
      after: !!document.querySelector("details.solutions #further-reading"),
      ansi: document.body.innerHTML.includes("\u001b"),
    }));
    expect(r.pwned).toBeNull();
    expect(r.frameRan).toBeNull();
    expect(r.frameText).toContain("bold html");
    expect(r.text).toContain('<script>window.__pwned = "markdown"</script>');
    expect(r.text).toContain("<script>window.__pwned = 'stream'</script>");
    expect(r.text).toContain("loss = 1.9312");
    expect(r.ansi).toBe(false);
    expect(r.open).toBe(false);
    expect(r.after).toBe(false);
    await page.click("details.solutions > summary");
    expect(await page.locator("details.solutions").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(await page.locator("details.solutions").innerText()).toContain("solution output");
    await page.screenshot({ path: path.join(SHOTS, `desktop-${FIXTURE}.png`), fullPage: true });
    await page.close();
    expect(w.problems).toEqual([]);
  }, 180_000);

  it("works offline from file:// (plots drawn by the local plotly, demos on a backend that needs no server)", async () => {
    const page = await browser.newPage();
    const base = pathToFileURL(site).href + "/";
    const w = watch(page, (u) => u.startsWith(base));
    const first = sections.find((s) => s !== FIXTURE) ?? sections[0];
    await open(page, `zh/${first}.html`, base);
    const figs = await page.locator("figure.plot").count();
    expect(await page.locator("figure.plot .js-plotly-plot").count()).toBe(figs);
    await open(page, "zh/playground.html", base);
    const backend = await page.evaluate(() => (window as unknown as { bookDemos?: { backend: string } }).bookDemos?.backend);
    expect(["webgl", "cpu"]).toContain(backend);
    expect(Number(await page.locator(".demo-sampling .bars").getAttribute("data-kept"))).toBeGreaterThan(0);
    await page.close();
    expect(w.problems).toEqual([]);
  }, 180_000);
});
