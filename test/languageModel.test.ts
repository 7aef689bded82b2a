// lib/languageModel.ts and the aligned windows of lib/train.ts's batches.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../lib/tf";
import { batches } from "../lib/train";
import { OVERVIEW_EN, QUATRAIN, complete, corpusText, corpusTokens, nextTokenProbs, trainLanguageModel } from "../lib/languageModel";

const cache = fs.mkdtempSync(path.join(os.tmpdir(), "lm-cache-"));
process.env.BOOK_CACHE = cache;
afterAll(() => fs.rmSync(cache, { recursive: true, force: true }));

describe("batches with align", () => {
  it("starts every window on a multiple of align, and align 1 draws what it always drew", () => {
    const tokens = Int32Array.from({ length: 100 }, (_, i) => i);
    const rows = batches(tokens, 50, 9, new Rng(3), 10)().arraySync();
    for (const r of rows) expect(r[0] % 10).toBe(0);
    expect(new Set(rows.map((r) => r[0])).size).toBeGreaterThan(3); // every record can be drawn
    expect(batches(tokens, 4, 9, new Rng(3), 1)().arraySync()).toEqual(batches(tokens, 4, 9, new Rng(3))().arraySync());
    expect(() => batches(tokens, 4, 9, new Rng(3), 0)).toThrow(/align must be a positive integer, got 0/);
  });
});

describe("the book's corpora as the models read them", () => {
  it("keeps of the Tang poems only quatrains, each exactly QUATRAIN tokens with its newline", () => {
    const lines = corpusText("tang").split("\n").filter((l) => l);
    expect(lines.length).toBeGreaterThan(1000);
    for (const l of lines.slice(0, 200)) {
      expect([...l].length).toBe(QUATRAIN - 1);
      expect([...l][5]).toBe("，");
      expect([...l][23]).toBe("。");
    }
    const { train, heldOut } = corpusTokens("tang");
    expect(train.length % QUATRAIN).toBe(0);
    expect(heldOut.length % QUATRAIN).toBe(0);
  });
});

describe("trainLanguageModel", () => {
  const recipe = { ...OVERVIEW_EN, model: { ...OVERVIEW_EN.model, dModel: 16, dFF: 32, nLayers: 1, contextLength: 16 }, steps: 6, batchSize: 4, seqLen: 16 };
  it("trains, caches by recipe, and the cached model is the same model", async () => {
    const a = await trainLanguageModel(recipe, () => {});
    expect(a.history.steps.length).toBe(6);
    expect(a.history.evalLoss[a.history.evalLoss.length - 1]).toBeLessThan(Math.log(a.config.vocabSize) + 0.5);
    const b = await trainLanguageModel(recipe, () => { throw new Error("should not train again"); });
    expect(b.history).toEqual(a.history);
    expect(nextTokenProbs(b, "To be")).toEqual(nextTokenProbs(a, "To be"));
    const p = nextTokenProbs(a, "To be");
    expect(p.length).toBe(a.config.vocabSize);
    expect(p.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
    expect(complete(a, "To be", { maxNewTokens: 5, temperature: 0 })).toHaveLength(5);
  });
  it("refuses a window longer than the model's context", async () => {
    await expect(trainLanguageModel({ ...recipe, seqLen: 32 })).rejects.toThrow(/recipe.seqLen must be ≤ model.contextLength \(16\), got 32/);
  });
});
