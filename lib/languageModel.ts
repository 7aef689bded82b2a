// The book's language model: a corpus, its character tokenizer, and a decoder trained on it.
//
// Every notebook that needs "a trained model" asks for one here by recipe; the run is cached under
// .cache/runs keyed by everything it depends on, so the notebooks share one training run and CI, which
// starts without a cache, trains it once from scratch.
import { tf, Rng, SEED } from "./tf";
import { CorpusName, loadCorpus, splitText } from "./data";
import { CharTokenizer } from "./tokenizer";
import { BASE, DecoderConfig, Params, TINY, initDecoder, lmLoss, decoderForward } from "./decoder";
import * as fs from "fs";
import * as path from "path";
import { TrainResult, batches, cached, evalLoss, repoRoot, saveParams, train } from "./train";
import { DistillOptions, distillFrom } from "./distillation";
import { generate, GenerateOptions, softmax } from "./sampling";

export interface Recipe {
  corpus: CorpusName;
  /** The decoder's shape; vocabSize comes from the corpus. */
  model: Omit<DecoderConfig, "vocabSize">;
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  /** Windows start at multiples of this (default 1); with one record per align tokens, positions are record positions. */
  align?: number;
}

export interface TrainedModel {
  params: Params;
  config: DecoderConfig;
  tokenizer: CharTokenizer;
  history: TrainResult;
  recipe: Recipe;
}

const { vocabSize: _unused, ...tinyShape } = TINY;

/** A quatrain's body and its newline: 4 × (5 characters + a punctuation mark) + "\n". */
export const QUATRAIN = 25;

/** The overview's model: English, trains in about half a minute on 2 cores. */
export const OVERVIEW_EN: Recipe = { corpus: "shakespeare", model: tinyShape, steps: 400, lr: 1e-2, batchSize: 32, seqLen: 64, seed: SEED };
/**
 * The book's model (notebooks 02, 06, 07 share this one run): BASE's shape. Tuned to reach ≤ 2.0 nats/char
 * held out with the fewest steps: lr 1e-2 learns fastest (5e-3 and 3e-3 are slower, 2e-2 unstable), batch
 * 32 × 64 beats 16 × 64 and 16 × 128 at equal time, and 340 steps land at ≈ 1.95 (300 steps: ≈ 2.00).
 * Its windows are 64 characters: positions 64 … 127 of its context are never trained.
 */
const { vocabSize: _v, ...baseShape } = BASE;
export const BOOK_EN: Recipe = { corpus: "shakespeare", model: baseShape, steps: 340, lr: 1e-2, batchSize: 32, seqLen: 64, seed: SEED };
/** The overview's Chinese model: five-character quatrains, each window one whole poem (positions = places in the poem). */
export const OVERVIEW_ZH: Recipe = { corpus: "tang", model: tinyShape, steps: 300, lr: 1e-2, batchSize: 32, seqLen: QUATRAIN - 1, seed: SEED, align: QUATRAIN };

// The text a model reads: Shakespeare as it is; of the Tang poems only the quatrains' bodies (绝句:
// four lines of five characters, 24 characters with punctuation), one a line, so every poem and its
// newline is exactly QUATRAIN tokens and a window can start where a poem starts.
export function corpusText(corpus: CorpusName): string {
  const text = loadCorpus(corpus);
  if (corpus !== "tang") return text;
  const bodies = text.split("\n").map((l) => l.split("|")[2] ?? "").filter((b) => [...b].length === QUATRAIN - 1);
  return bodies.join("\n") + "\n";
}

// corpus -> (tokenizer over the whole corpus, train ids, held-out ids); held-out units never occur in train
export function corpusTokens(corpus: CorpusName): { tokenizer: CharTokenizer; train: Int32Array; heldOut: Int32Array } {
  const text = corpusText(corpus);
  const split = splitText(text, 0.1);
  const tokenizer = new CharTokenizer(text);
  return { tokenizer, train: Int32Array.from(tokenizer.encode(split.train)), heldOut: Int32Array.from(tokenizer.encode(split.heldOut)) };
}

// θ* = argmin_θ mean −log P_θ(x_{t+1} | x_≤t) over the corpus's train text (AdamW, lib/train.ts);
// with a teacher, the loss is lib/distillation.ts's instead (the student learns the teacher's distributions)
// recipe -> the trained decoder, its tokenizer and its loss curves (cached by the recipe and the teacher's)
export async function trainLanguageModel(recipe: Recipe, log?: (line: string) => void,
  distill?: { teacher: TrainedModel } & DistillOptions): Promise<TrainedModel> {
  const { tokenizer, train: trainIds, heldOut } = corpusTokens(recipe.corpus);
  const config: DecoderConfig = { ...recipe.model, vocabSize: tokenizer.vocabSize };
  if (recipe.seqLen > config.contextLength)
    throw new Error(`recipe.seqLen must be ≤ model.contextLength (${config.contextLength}), got ${recipe.seqLen}.`);
  if (distill && distill.teacher.recipe.corpus !== recipe.corpus)
    throw new Error(`distill.teacher must be trained on the student's corpus "${recipe.corpus}", got "${distill.teacher.recipe.corpus}".`);
  const teacher = distill ? { recipe: distill.teacher.recipe, temperature: distill.temperature, alpha: distill.alpha } : undefined;
  const loss = distill ? distillFrom(distill.teacher, config, distill) : (p: Params, batch: tf.Tensor2D) => lmLoss(p, config, batch);
  const run = await cached({ what: "language-model", version: 1, recipe, vocabSize: config.vocabSize, teacher }, () => {
    const params = initDecoder(config, recipe.seed);
    const history = train(params, loss, {
      train: batches(trainIds, recipe.batchSize, recipe.seqLen, new Rng(recipe.seed), recipe.align),
      eval: batches(heldOut, recipe.batchSize, recipe.seqLen, new Rng(recipe.seed + 1), recipe.align),
    }, { steps: recipe.steps, lr: recipe.lr, batchSize: recipe.batchSize, seqLen: recipe.seqLen, seed: recipe.seed, log });
    return { params, history };
  });
  return { params: run.params, config, tokenizer, history: run.history, recipe };
}

// L = mean −log P(x_{t+1} | x_≤t) on held-out windows drawn with a fixed seed, so every model is scored on the same text
// model, number of [32, seqLen+1] batches -> nats per token
export function heldOutLoss(model: TrainedModel, nBatches = 8, seqLen = Math.min(64, model.config.contextLength)): number {
  const { heldOut } = corpusTokens(model.recipe.corpus);
  const draw = batches(heldOut, 32, seqLen, new Rng(SEED + 7), model.recipe.align);
  return evalLoss(model.params, (p, batch) => lmLoss(p, model.config, batch), draw, nBatches);
}

// P(w | prompt) = softmax(logits at the prompt's last position)
// model, prompt text -> probabilities over the vocabulary [V] (plain numbers)
export function nextTokenProbs(model: TrainedModel, prompt: string): number[] {
  const ids = model.tokenizer.encode(prompt).slice(-model.config.contextLength);
  if (ids.length === 0) throw new Error("prompt must have at least one character, got an empty string.");
  return tf.tidy(() => {
    const { logits } = decoderForward(model.params, model.config, tf.tensor2d([ids], [1, ids.length], "int32"));
    const last = logits.slice([0, ids.length - 1, 0], [1, 1, model.config.vocabSize]).reshape([1, model.config.vocabSize]) as tf.Tensor2D;
    return softmax(last).arraySync()[0];
  });
}

// prompt + w_1 … w_n with w_i drawn by lib/sampling.ts's generate (KV cache, seeded)
// model, prompt text, options -> the continuation only (text)
export function complete(model: TrainedModel, prompt: string, options: GenerateOptions): string {
  const ids = model.tokenizer.encode(prompt);
  const out = generate(model, ids, options) as number[];
  return model.tokenizer.decode(out.slice(ids.length));
}

// What the HTML book's live demos load: the weights (safetensors layout) and {config, vocab, recipe}.
// model, name -> build/models/<name>.safetensors + build/models/<name>.json (returns the folder)
export function exportModel(model: TrainedModel, name: string): string {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`name must be lower-case letters, digits and dashes, got "${name}".`);
  const dir = path.join(repoRoot(), "build", "models");
  fs.mkdirSync(dir, { recursive: true });
  saveParams(model.params, path.join(dir, `${name}.safetensors`));
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ config: model.config, vocab: model.tokenizer.vocab, recipe: model.recipe }) + "\n");
  return dir;
}
