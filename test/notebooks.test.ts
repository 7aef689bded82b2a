// The notebooks as committed: two editions with identical code, no outputs, the section template.
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const dir = path.join(__dirname, "..", "notebooks");
const names = fs.readdirSync(path.join(dir, "src")).filter((f) => /^\d\d-.*\.md$/.test(f)).map((f) => f.slice(0, -3)).sort();
const read = (name: string, lang: string) => JSON.parse(fs.readFileSync(path.join(dir, `${name}.${lang}.ipynb`), "utf8"));
const text = (cell: { source: string[] | string }) => (Array.isArray(cell.source) ? cell.source.join("") : cell.source);
const SKELETON: Record<string, RegExp[]> = {
  zh: [/^## 学习目标/m, /^## 小结/m, /^## 练习/m, /^## 参考答案/m],
  en: [/^## Goals/m, /^## Summary/m, /^## Exercises/m, /^## Solutions/m],
};

describe("notebooks", () => {
  it("there are notebooks", () => expect(names.length).toBeGreaterThan(0));
  for (const name of names) {
    describe(name, () => {
      const zh = read(name, "zh");
      const en = read(name, "en");
      it("both editions have identical code cells in the same places", () => {
        expect(zh.cells.map((c: { cell_type: string }) => c.cell_type)).toEqual(en.cells.map((c: { cell_type: string }) => c.cell_type));
        const code = (nb: typeof zh) => nb.cells.filter((c: { cell_type: string }) => c.cell_type === "code").map(text);
        expect(code(zh)).toEqual(code(en));
      });
      it("is committed without outputs", () => {
        for (const nb of [zh, en])
          for (const c of nb.cells) if (c.cell_type === "code") expect([c.outputs.length, c.execution_count]).toEqual([0, null]);
      });
      it("runs on the tslab kernel and prints the versions and the seed first", () => {
        expect(zh.metadata.kernelspec.name).toBe("tslab");
        const first = zh.cells.find((c: { cell_type: string }) => c.cell_type === "code");
        expect(text(first)).toMatch(/versions\(/);
      });
      if (!name.startsWith("99-"))
        it("follows the section template (goals, summary, exercises, solutions) in both languages", () => {
          for (const [lang, nb] of [["zh", zh], ["en", en]] as const) {
            const md = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "markdown").map(text).join("\n");
            for (const heading of SKELETON[lang]) expect(md, `${name}.${lang}: ${heading}`).toMatch(heading);
          }
        });
      it("imports lib in one plain line through the notebooks/lib link", () => {
        for (const c of zh.cells) if (c.cell_type === "code") expect(text(c)).not.toMatch(/from "\.\.\/lib/);
      });
    });
  }
});
