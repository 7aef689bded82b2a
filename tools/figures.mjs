// Renders recorded plotly specs (<dir>/<notebook>/<id>.json) to SVG in one headless Chromium page.
// plotly needs a real DOM with text metrics (jsdom is not enough), so this is Debian's chromium,
// driven by playwright-core; nothing is downloaded and the page makes no requests.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export async function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
}

/** Render every spec file to an .svg beside it; returns the list of rendered ids. */
export async function renderAll(specFiles) {
  if (specFiles.length === 0) return [];
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setContent("<!doctype html><meta charset=utf-8><body><div id=fig></div></body>");
    await page.addScriptTag({ path: require.resolve("plotly.js-dist-min") });
    for (const file of specFiles) {
      const spec = JSON.parse(fs.readFileSync(file, "utf8"));
      const svg = await page.evaluate(async (s) => {
        const url = await window.Plotly.toImage({ data: s.data, layout: s.layout, config: { staticPlot: true } }, { format: "svg", width: s.layout.width, height: s.layout.height });
        return decodeURIComponent(url.slice(url.indexOf(",") + 1));
      }, spec);
      // plotly names clip paths and defs after a random id: fix it so a rerun writes the same bytes
      const uid = svg.match(/id="defs-([0-9a-z]+)"/)?.[1];
      fs.writeFileSync(file.replace(/\.json$/, ".svg"), (uid ? svg.replaceAll(uid, "fig") : svg) + "\n");
    }
  } finally {
    await browser.close();
  }
  return specFiles;
}

export function specFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".json")).sort().map((f) => path.join(dir, f));
}
