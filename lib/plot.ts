// Plotly figures: shown interactively in JupyterLab, recorded as byte-stable specs for figures/.
//
// show(fig, "00-overview/loss") sends the spec as application/vnd.plotly.v1+json (the plotly
// JupyterLab extension draws it, even in an untrusted notebook) and, when the book's runner has set
// BOOK_FIGURES_DIR, writes it to <dir>/00-overview/loss.json; the runner renders that JSON to SVG.
// Specs are byte-stable: floats rounded to 6 significant digits, keys sorted, a fixed size.
import * as fs from "fs";
import * as path from "path";

export interface Figure {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
}

const ID = /^[0-9]{2}-[a-z0-9-]+\/[a-z0-9-]+$/;

/** Round every float to 6 significant digits and sort object keys, recursively. */
export function stable(value: unknown): unknown {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return null; // JSON has no NaN/Infinity; plotly treats null as a gap
    return Number.isInteger(value) ? value : Number(value.toPrecision(6));
  }
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>, stable);
  if (Array.isArray(value)) return value.map(stable);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = stable(v);
    }
    return out;
  }
  return value;
}

/** The spec exactly as it is saved: defaults filled in, then made stable. */
export function spec(fig: Figure): { data: unknown; layout: unknown } {
  if (!fig || !Array.isArray(fig.data)) throw new Error(`fig must be {data: [...traces], layout?}, got ${typeof fig}.`);
  const layout = {
    width: 720,
    height: 420,
    margin: { l: 60, r: 20, t: 50, b: 50 },
    font: { family: "Noto Sans SC, WenQuanYi Micro Hei, PingFang SC, Microsoft YaHei, DejaVu Sans, sans-serif", size: 13 },
    template: { layout: { paper_bgcolor: "white", plot_bgcolor: "#f7f7f7" } },
    ...(fig.layout ?? {}),
  };
  return stable({ data: fig.data, layout }) as { data: unknown; layout: unknown };
}

/**
 * Show a figure in the notebook and record it under its id, "<notebook>/<figure>".
 * options.measured: the figure plots wall-clock measurements (times), which differ from run to run;
 * the book's figure check then asks only that it is drawn, not that its numbers repeat.
 */
export function show(fig: Figure, id: string, options: { measured?: boolean } = {}): void {
  if (!ID.test(id)) throw new Error(`id must look like "00-overview/loss" (notebook/figure, lower-case), got "${id}".`);
  const s: { data: unknown; layout: unknown; measured?: boolean } = spec(fig);
  if (options.measured) s.measured = true;
  const dir = process.env.BOOK_FIGURES_DIR;
  if (dir) {
    const file = path.join(dir, `${id}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(s) + "\n");
  }
  let write: ((d: unknown, update: boolean) => void) | null = null;
  try {
    write = require("tslab/dist/jupyter").lastWriteDisplayData;
  } catch {
    write = null; // not inside a tslab kernel (a test or a script): recording is enough
  }
  if (write) {
    write({ data: { "application/vnd.plotly.v1+json": s, "text/plain": `[figure ${id}]` }, metadata: {}, transient: {} }, false);
  }
}
