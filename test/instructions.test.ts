import { describe, expect, it } from "vitest";
import { loadCorpus, splitText } from "../lib/data";
import { initDecoder } from "../lib/decoder";
import { CharTokenizer } from "../lib/tokenizer";
import { generate } from "../lib/sampling";
import { TASKS, answerOf, instructionSet, instructionText, makeInstruction, questionsOf, replies } from "../lib/instructions";

describe("the tasks", () => {
  it("turn a line into (input, answer) as documented", () => {
    expect(TASKS["Is it a question"].make("What says the queen? Good.", 2)).toEqual({ input: "What says the queen", answer: "yes" });
    expect(TASKS["Is it a question"].make("I will, my lord; and so.", 2)).toEqual({ input: "I will my lord and so", answer: "no" });
    expect(TASKS["Is it a question"].make("And so,", 2)).toBeNull(); // no sentence ends on this line
    expect(TASKS["Next letter"].make("Good night, sweet prince", 2)).toEqual({ input: "Good nig", answer: "h" });
    expect(TASKS["Next letter"].make("Good night sweet prince", 4)).toEqual({ input: "Good night sweet pri", answer: "n" });
    expect(TASKS["Next letter"].make("Good Night", 2)).toBeNull(); // capitalised: a name more often than a word
    expect(TASKS["Repeat"].make("To be, or not to be", 3)).toEqual({ input: "To be or", answer: "To be or" });
  });

  it("make a prompt in one format, and refuse a task or an input that does not fit", () => {
    expect(makeInstruction("Repeat", "To be", "To be")).toEqual({ task: "Repeat", input: "To be", prompt: "Q: Repeat: To be\nA:", answer: " To be\n" });
    expect(() => makeInstruction("Translate", "x", "y")).toThrow(/task must be one of "Is it a question", "Next letter", "Repeat", got "Translate"/);
    expect(() => makeInstruction("Repeat", "a\nb", "a")).toThrow(/input must be a non-empty single line/);
  });

  it("are only asked about spoken lines (no speaker lines, no titles)", () => {
    const qs = questionsOf("HAMLET\n\nHam.\nWho is there? Stand.\n\nHor.\nFriends unto this ground\n");
    expect(qs.map((q) => [q.task, q.input, q.answer])).toEqual([["Is it a question", "Who is there", " yes\n"], ["Next letter", "Friends un", " t\n"]]);
  });
});

describe("instructionSet", () => {
  const set = instructionSet({ nTrain: 90, nHeldOut: 30, seed: 1 });

  it("has the asked numbers, the same number of each task, and as many yes as no", () => {
    expect([set.train.length, set.heldOut.length]).toEqual([90, 30]);
    for (const side of [set.train, set.heldOut]) {
      const n = side.length / 3;
      for (const task of Object.keys(TASKS)) expect(side.filter((q) => q.task === task).length).toBe(n);
      const yn = side.filter((q) => q.task === "Is it a question");
      expect(yn.filter((q) => q.answer === " yes\n").length).toBe(yn.length / 2);
    }
  });

  it("never asks a held-out question seen in training, and is a function of its seed", () => {
    const train = new Set(set.train.map((q) => q.prompt));
    for (const q of set.heldOut) expect(train.has(q.prompt)).toBe(false);
    expect(instructionSet({ nTrain: 90, nHeldOut: 30, seed: 1 })).toEqual(set);
    expect(instructionSet({ nTrain: 90, nHeldOut: 30, seed: 2 })).not.toEqual(set);
  });

  it("draws the held-out questions from the held-out speeches", () => {
    const heldOut = splitText(loadCorpus("shakespeare"), 0.1).heldOut;
    const lines = heldOut.split("\n").map((l) => l.match(/[A-Za-z']+/g)?.join(" ") ?? "");
    for (const q of set.heldOut.filter((x) => x.task === "Repeat")) expect(lines.some((l) => l.startsWith(q.input))).toBe(true);
  });

  it("refuses more questions than the corpus can make", () => {
    expect(() => instructionSet({ nTrain: 3, nHeldOut: 1_000_000 })).toThrow(/options.nHeldOut asks for .* questions.*but only \d+ can be made/);
  });
});

describe("the tuning text", () => {
  const set = instructionSet({ nTrain: 30, nHeldOut: 3 });
  const { text, starts } = instructionText(set.train, 80);

  it("holds every example, each starting at its offset, and wraps around for a last window", () => {
    set.train.forEach((q, i) => expect(text.slice(starts[i]).startsWith(q.prompt + q.answer + "\n")).toBe(true));
    const last = starts[starts.length - 1];
    expect(text.length - last).toBeGreaterThanOrEqual(80);
  });

  it("answerOf takes the first line without its leading space", () => {
    expect(answerOf(" yes\nQ: more")).toBe("yes");
    expect(answerOf("the the the")).toBe("the the the");
  });
});

describe("replies", () => {
  it("answering in batches of equal-length prompts gives each prompt's own greedy continuation", () => {
    const tok = new CharTokenizer("abcdefgh \nQA:");
    const config = { vocabSize: tok.vocabSize, contextLength: 24, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, positional: "learned" as const };
    const model = { params: initDecoder(config, 3), config };
    // the last prompt is longer than the context: both keep its last contextLength characters
    const prompts = ["Q: abc\nA:", "Q: hgf\nA:", "Q: a\nA:", "Q: bcdef\nA:", "Q: abcdefgh abcdefgh abcdefgh\nA:"];
    const budgets = [4, 6, 3, 5, 3];
    const got = replies(model, tok, prompts, budgets);
    prompts.forEach((p, i) => {
      const ids = tok.encode(p);
      const one = generate(model, ids, { maxNewTokens: budgets[i], temperature: 0 });
      expect(got[i]).toBe(tok.decode(one.slice(ids.length)));
    });
    expect(() => replies(model, tok, prompts, [1, 2])).toThrow(/maxNewTokens must be a positive integer or one per prompt \(5\)/);
  });
});
