// Instruction tuning in miniature: a dataset of questions and answers in one fixed format.
//
// What the chapter means by instruction tuning (Wei et al. 2022, FLAN; Ouyang et al. 2022,
// InstructGPT, its supervised first stage): fine-tune a pre-trained language model on many tasks
// written as an instruction followed by the wanted answer, so that afterwards it ANSWERS a request
// instead of merely continuing the text. Ours is a toy with three tasks built from the lines of the
// book's own Shakespeare, each a question in one format:
//
//   Q: Is it a question: What says the queen      Q: Next letter: Good night sweet pri      Q: Repeat: Good night sweet
//   A: yes                                        A: n                                       A: Good night sweet
//
// They ask for different things: a judgement the text itself decides (did the sentence end in "?";
// the mark is removed from the question), what pre-training practised on every character (the next
// letter of a word), and a skill it never needed (copying a phrase just read). Every answer follows
// from its question and the language; none is a fact to recall.
//
// The held-out questions are made from the held-out speeches (splitText, the same split the
// pre-trained model was scored on), so a held-out question is one the model never saw — neither in
// pre-training nor in tuning.
import { loadCorpus, splitText } from "./data";
import { CharTokenizer } from "./tokenizer";
import { tf, Rng } from "./tf";
import type { LanguageModel } from "./sampling";
import { decoderForward, type Adapter } from "./decoder";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

const words = (s: string): string[] => s.match(/[A-Za-z']+/g) ?? [];

export interface Task {
  /** One line of a speech and k ∈ {2, 3, 4} -> (input, answer), or null if the line does not suit the task. */
  make(line: string, k: number): { input: string; answer: string } | null;
  /** The possible answers of a closed question (drawn in equal numbers), or undefined for an open one. */
  answers?: string[];
}

export const TASKS: { [task: string]: Task } = {
  // the line's first sentence without its final mark; "yes" iff that mark was "?"
  "Is it a question": {
    make: (line) => {
      const m = /^([^.?!]*)([.?!])/.exec(line);
      const w = m ? words(m[1]) : [];
      return w.length >= 2 ? { input: w.join(" "), answer: m![2] === "?" ? "yes" : "no" } : null;
    },
    answers: ["yes", "no"],
  },
  // the line's first clause cut inside its k-th word (after ⌈half⌉ of its letters), and the letter that follows
  "Next letter": {
    make: (line, k) => {
      const w = words(line.split(/[^A-Za-z' ]/)[0]);
      if (w.length < k || !/^[a-z]{3,}$/.test(w[k - 1])) return null;
      const cut = Math.ceil(w[k - 1].length / 2);
      return { input: [...w.slice(0, k - 1), w[k - 1].slice(0, cut)].join(" "), answer: w[k - 1][cut] };
    },
  },
  // the first k words of the line, and the same words again
  "Repeat": {
    make: (line, k) => {
      const w = words(line);
      return w.length >= k ? { input: w.slice(0, k).join(" "), answer: w.slice(0, k).join(" ") } : null;
    },
  },
};

export interface Instruction {
  task: string;
  input: string;
  prompt: string; // "Q: <task>: <input>\nA:" — what the model is given
  answer: string; // " <answer>\n" — what it should write (a leading space; the newline ends the answer)
}

// prompt = "Q: " + task + ": " + input + "\nA:",  answer = " " + answer + "\n"
// task name, input, answer -> Instruction
export function makeInstruction(task: string, input: string, answer: string): Instruction {
  need(task in TASKS, `task must be one of ${Object.keys(TASKS).map((t) => JSON.stringify(t)).join(", ")}, got ${JSON.stringify(task)}`);
  need(input.length > 0 && !input.includes("\n"), `input must be a non-empty single line, got ${JSON.stringify(input)}`);
  need(answer.length > 0 && !answer.includes("\n"), `answer must be a non-empty single line, got ${JSON.stringify(answer)}`);
  return { task, input, prompt: `Q: ${task}: ${input}\nA:`, answer: ` ${answer}\n` };
}

// A spoken line, or null for a speaker line ("Ham.") or a title in capitals.
function spoken(line: string): string | null {
  const t = line.trim();
  return t.length === 0 || /^[A-Z][A-Za-z ]*\.$/.test(t) || /^[A-Z ]+$/.test(t) ? null : t;
}

// Every line of text, in order, turned into one question: task = tasks[i mod 3], k = 2 + (i mod 3)
// for the i-th usable line (so every task and length occurs), each distinct question once, at most
// maxChars of input
export function questionsOf(text: string, maxChars = 24): Instruction[] {
  const tasks = Object.keys(TASKS);
  const seen = new Set<string>();
  const out: Instruction[] = [];
  let i = 0;
  for (const line of text.split("\n")) {
    const t = spoken(line);
    if (t === null) continue;
    const task = tasks[i % tasks.length];
    const made = TASKS[task].make(t, 2 + (Math.floor(i / tasks.length) % 3));
    i++;
    if (made === null || made.input.length > maxChars) continue;
    const q = makeInstruction(task, made.input, made.answer);
    if (seen.has(q.prompt)) continue;
    seen.add(q.prompt);
    out.push(q);
  }
  return out;
}

export interface InstructionSet {
  train: Instruction[];
  heldOut: Instruction[];
}

// nTrain questions drawn (seeded, without replacement, the same number of each task) from the lines
// of Shakespeare's training speeches, nHeldOut from the held-out speeches, none of whose prompts
// occurs among the training ones -> { train, heldOut } (each in a seeded random order)
export function instructionSet(options: { nTrain: number; nHeldOut: number; seed?: number }): InstructionSet {
  const { nTrain, nHeldOut } = options;
  const tasks = Object.keys(TASKS);
  need(Number.isInteger(nTrain) && nTrain >= tasks.length, `options.nTrain must be an integer ≥ ${tasks.length} (one per task), got ${nTrain}`);
  need(Number.isInteger(nHeldOut) && nHeldOut >= tasks.length, `options.nHeldOut must be an integer ≥ ${tasks.length} (one per task), got ${nHeldOut}`);
  const rng = new Rng(options.seed ?? 42);
  const split = splitText(loadCorpus("shakespeare"), 0.1);
  const trainPool = questionsOf(split.train);
  const trainPrompts = new Set(trainPool.map((q) => q.prompt));
  const heldPool = questionsOf(split.heldOut).filter((q) => !trainPrompts.has(q.prompt)); // a line can recur in two speeches
  const shuffle = <T>(a: T[]): T[] => {
    const p = a.slice();
    for (let i = p.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  };
  const draw = (pool: Instruction[], n: number, side: string): Instruction[] => {
    const out: Instruction[] = [];
    tasks.forEach((task, i) => {
      const m = Math.floor(n / tasks.length) + (i < n % tasks.length ? 1 : 0);
      // a closed question gets each of its answers equally often, so guessing one scores 1/answers
      const kinds = TASKS[task].answers ?? [null];
      kinds.forEach((answer, j) => {
        const mj = Math.floor(m / kinds.length) + (j < m % kinds.length ? 1 : 0);
        const mine = pool.filter((q) => q.task === task && (answer === null || q.answer === ` ${answer}\n`));
        need(mj <= mine.length, `options.${side} asks for ${mj} "${task}" questions${answer === null ? "" : ` answered "${answer}"`}, but only ${mine.length} can be made; ask for fewer`);
        out.push(...shuffle(mine).slice(0, mj));
      });
    });
    return shuffle(out);
  };
  return { train: draw(trainPool, nTrain, "nTrain"), heldOut: draw(heldPool, nHeldOut, "nHeldOut") };
}

// the tuning text: prompt + answer of every example, one after another (a blank line between them,
// as between the speeches the model was pre-trained on), then the first examples again so that a
// window of `wrap` characters can start at every example; and where each example starts
// examples -> { text, starts (character offsets = token offsets for a character tokenizer) }
export function instructionText(examples: Instruction[], wrap = 80): { text: string; starts: number[] } {
  need(Array.isArray(examples) && examples.length >= 1, `examples must be a non-empty list of Instructions, got ${Array.isArray(examples) ? "an empty list" : typeof examples}`);
  const starts: number[] = [];
  let text = "";
  let length = 0; // in code points, the character tokenizer's unit
  for (const e of examples) {
    starts.push(length);
    const one = e.prompt + e.answer + "\n";
    text += one;
    length += [...one].length;
  }
  let tail = "";
  for (let i = 0; [...tail].length < wrap; i = (i + 1) % examples.length) tail += examples[i].prompt + examples[i].answer + "\n";
  return { text: text + tail, starts };
}

// what the model wrote after the prompt, up to (not including) its first newline, without the leading space
// generated text -> the answer it gives
export function answerOf(generated: string): string {
  const line = generated.split("\n")[0];
  return line.startsWith(" ") ? line.slice(1) : line;
}

// c_i = the greedy continuation of prompt_i, maxNewTokens characters (answerOf(c_i) is the answer)
// model, tokenizer, prompts, maxNewTokens (one number, or one per prompt) -> continuations
//
// All prompts advance together, one character per step: every row is padded on the right to the
// longest and the batch is run whole, each row read at its own last position. A causal model's output
// at a position never depends on what lies to its right, so the padding changes nothing, and a
// sequence longer than the context keeps its last contextLength characters, as lib/sampling.ts's
// generate does. ~maxNewTokens passes for any number of prompts, instead of one generate per length.
export function replies(model: LanguageModel, tokenizer: CharTokenizer, prompts: string[], maxNewTokens: number | number[] = 28, adapter?: Adapter): string[] {
  need(Array.isArray(prompts) && prompts.length >= 1, `prompts must be a non-empty list of strings, got ${Array.isArray(prompts) ? "an empty list" : typeof prompts}`);
  const budget = typeof maxNewTokens === "number" ? prompts.map(() => maxNewTokens) : maxNewTokens;
  need(Array.isArray(budget) && budget.length === prompts.length && budget.every((n) => Number.isInteger(n) && n >= 1),
    `maxNewTokens must be a positive integer or one per prompt (${prompts.length}), got ${JSON.stringify(maxNewTokens).slice(0, 60)}`);
  const { params, config } = model;
  const C = config.contextLength;
  const seqs = prompts.map((p) => tokenizer.encode(p));
  seqs.forEach((s, i) => need(s.length >= 1, `prompts[${i}] must have at least one character, got an empty string`));
  const out = prompts.map(() => [] as number[]);
  for (let step = 0; step < Math.max(...budget); step++) {
    const active = out.map((o, i) => i).filter((i) => out[i].length < budget[i]);
    const windows = active.map((i) => seqs[i].slice(-C));
    const T = Math.max(...windows.map((w) => w.length));
    const next = tf.tidy(() => {
      const ids = tf.tensor2d(windows.map((w) => [...w, ...new Array<number>(T - w.length).fill(0)]), [windows.length, T], "int32");
      const { logits } = decoderForward(params, config, ids, { adapter });
      const at = tf.tensor1d(windows.map((w, b) => b * T + w.length - 1), "int32");
      return tf.argMax(tf.gather(logits.reshape([windows.length * T, config.vocabSize]), at), 1).arraySync() as number[];
    });
    active.forEach((i, b) => {
      seqs[i].push(next[b]);
      out[i].push(next[b]);
    });
  }
  return out.map((o) => tokenizer.decode(o));
}
