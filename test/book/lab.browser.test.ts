// The main user flow in real JupyterLab: start it as `npm start` does (tools/lab.mjs), open a notebook,
// Run → Run All Cells, see every code cell run, its outputs and an interactive plotly plot, then stop
// the server and its kernels and check that nothing of them is left.
//   BOOK_LAB_NOTEBOOK=01-attention.zh   another notebook (default 00-overview.en, else the first one)
//
// The run happens on a throwaway copy in notebooks/ (JupyterLab may autosave outputs into the file it
// has open; the committed notebooks stay output-free), deleted at the end.
import * as fs from "fs";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { LabTools, launch, root, tool, within } from "./helpers";

const nbDir = path.join(root, "notebooks");
const wanted = process.env.BOOK_LAB_NOTEBOOK ?? (fs.existsSync(path.join(nbDir, "00-overview.en.ipynb")) ? "00-overview.en"
  : fs.readdirSync(nbDir).filter((f) => /^\d\d-.*\.en\.ipynb$/.test(f)).sort()[0]?.replace(/\.ipynb$/, "") ?? "00-overview.en");
const copy = `labtest-${process.pid}-${wanted}.ipynb`;
let browser: Browser | undefined;
let stop: (() => void) | undefined;

afterAll(async () => {
  await browser?.close();
  stop?.();
  fs.rmSync(path.join(nbDir, copy), { force: true });
  fs.rmSync(path.join(nbDir, ".ipynb_checkpoints", copy.replace(/\.ipynb$/, "-checkpoint.ipynb")), { force: true });
});

const groupAlive = (pid: number) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("JupyterLab", () => {
  it(`opens ${wanted}.ipynb, runs all cells, shows outputs and an interactive plot, and stops with its kernels`, async () => {
    const source = JSON.parse(fs.readFileSync(path.join(nbDir, `${wanted}.ipynb`), "utf8"));
    const codeCells = source.cells.filter((c: { cell_type: string }) => c.cell_type === "code").length;
    fs.writeFileSync(path.join(nbDir, copy), JSON.stringify(source));
    const { startLab } = await tool<LabTools>("tools/lab.mjs");
    const t0 = Date.now();
    const lab = await startLab({ quiet: true });
    stop = lab.stop;
    const pid = lab.process.pid as number;
    const started = (Date.now() - t0) / 1000;
    browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const outside: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(lab.base) && !/^(data|blob|about):/.test(r.url())) outside.push(r.url());
    });
    await within(420_000, `running ${wanted} in JupyterLab`, async () => {
      await page.goto(`${lab.base}/lab/tree/${copy}?reset&token=${lab.token}`);
      await page.locator(".jp-NotebookPanel .jp-Cell").first().waitFor({ timeout: 90_000 });
      // the kernel (tslab) is up when the status bar names it and says Idle
      await page.locator("#jp-main-statusbar", { hasText: /TypeScript \| Idle/ }).waitFor({ timeout: 120_000 });
      await page.locator(".lm-MenuBar-itemLabel", { hasText: /^Run$/ }).click();
      await page.locator(".lm-Menu-itemLabel", { hasText: /^Run All Cells$/ }).click();
      const t1 = Date.now();
      // on a fresh kernel the last code cell is the codeCells-th to run; JupyterLab keeps it in view
      await page.waitForFunction((n) => {
        const panel = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden)");
        const prompts = [...(panel?.querySelectorAll(".jp-CodeCell .jp-InputPrompt") ?? [])].map((p) => p.textContent?.trim() ?? "");
        return prompts.includes(`[${n}]:`) && !prompts.includes("[*]:") && /TypeScript \| Idle/.test(document.querySelector("#jp-main-statusbar")?.textContent ?? "");
      }, codeCells, { timeout: 400_000, polling: 1000 });
      const seconds = (Date.now() - t1) / 1000;
      // JupyterLab only renders the cells near the view: walk the notebook from the top, collecting what shows
      const seen = { outputs: 0, plots: 0, hover: 0, errors: [] as string[] };
      const scroller = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first();
      await scroller.evaluate((el) => el.scrollTo(0, 0));
      for (let i = 0; i < 200; i++) {
        await page.waitForTimeout(300);
        const r = await scroller.evaluate((el) => {
          const panel = el.closest(".jp-NotebookPanel") as HTMLElement;
          const out = {
            outputs: panel.querySelectorAll(".jp-OutputArea-output").length,
            plots: [...panel.querySelectorAll(".js-plotly-plot")].filter((p) => p.querySelector(".main-svg")).length, // the output element itself is the plotly div
            hover: panel.querySelectorAll(".js-plotly-plot .hoverlayer").length,
            errors: [...panel.querySelectorAll(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
              .map((e) => (e as HTMLElement).innerText).filter((t) => /Error|Traceback/.test(t)),
            end: el.scrollTop + el.clientHeight >= el.scrollHeight - 2,
          };
          el.scrollBy(0, el.clientHeight * 0.8);
          return out;
        });
        seen.outputs = Math.max(seen.outputs, r.outputs);
        seen.plots = Math.max(seen.plots, r.plots);
        seen.hover = Math.max(seen.hover, r.hover);
        seen.errors.push(...r.errors);
        if (r.end) break;
      }
      console.log(`lab: JupyterLab answered in ${started.toFixed(1)} s; ${wanted}: ${codeCells} code cells ran in ${seconds.toFixed(1)} s; ` +
        `up to ${seen.outputs} outputs and ${seen.plots} interactive plotly plot(s) on screen at once`);
      expect([...new Set(seen.errors)]).toEqual([]);
      expect(seen.outputs).toBeGreaterThan(0);
      expect(seen.plots).toBeGreaterThan(0);
      expect(seen.hover, "plotly's hover layer (the plot is interactive)").toBeGreaterThan(0);
    });
    await browser.close();
    browser = undefined;
    lab.stop();
    for (let i = 0; i < 60 && groupAlive(pid); i++) await new Promise((res) => setTimeout(res, 250));
    const alive = groupAlive(pid);
    if (alive) process.kill(-pid, "SIGKILL");
    expect(alive, "JupyterLab or one of its kernels outlived stop()").toBe(false);
    await expect(fetch(`${lab.base}/api/status`)).rejects.toThrow();
    expect(outside).toEqual([]);
  }, 480_000);
});
