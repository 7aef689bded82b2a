// lib/plot.ts: specs are byte-stable and recorded under their id.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { show, spec, stable } from "../lib/plot";

describe("plot", () => {
  afterEach(() => delete process.env.BOOK_FIGURES_DIR);

  it("rounds floats to 6 significant digits, sorts keys, turns non-finite numbers into gaps", () => {
    expect(JSON.stringify(stable({ b: 1 / 3, a: [2, NaN, Infinity, 123456789.123], c: new Float32Array([0.1]) })))
      .toBe('{"a":[2,null,null,123457000],"b":0.333333,"c":[0.1]}');
  });

  it("gives the same bytes whatever the key order or float noise", () => {
    const a = spec({ data: [{ y: [0.1 + 0.2], type: "bar" }], layout: { title: { text: "t" } } });
    const b = spec({ layout: { title: { text: "t" } }, data: [{ type: "bar", y: [0.3] }] } as never);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it("records the spec under figures dir/<notebook>/<id>.json when the runner asks", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fig-"));
    process.env.BOOK_FIGURES_DIR = dir;
    show({ data: [{ x: [1, 2], y: [3, 4] }] }, "00-overview/test-line");
    const saved = JSON.parse(fs.readFileSync(path.join(dir, "00-overview", "test-line.json"), "utf8"));
    expect(saved.data[0].y).toEqual([3, 4]);
    expect(saved.layout.width).toBe(720);
  });

  it("refuses an id that is not notebook/figure, and a figure without data", () => {
    expect(() => show({ data: [] }, "loss")).toThrow(/id must look like "00-overview\/loss".*got "loss"/);
    expect(() => spec({} as never)).toThrow(/fig must be \{data/);
  });
});

describe("measured figures", () => {
  it("carry a measured flag so the figure check asks only that they are drawn", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fig-"));
    process.env.BOOK_FIGURES_DIR = dir;
    show({ data: [{ x: [1], y: [0.123] }] }, "06-limits/time", { measured: true });
    show({ data: [{ x: [1], y: [0.123] }] }, "06-limits/flops");
    expect(JSON.parse(fs.readFileSync(path.join(dir, "06-limits", "time.json"), "utf8")).measured).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "06-limits", "flops.json"), "utf8")).measured).toBeUndefined();
    delete process.env.BOOK_FIGURES_DIR;
  });
});
