// A stand-in for the model notebook 00-overview exports, for the browser tests when build/models/ has
// none yet (and for working on the demos): the TINY decoder over Shakespeare's characters, written
// exactly as 00-overview writes its own — lib/train.ts saveParams + {config, vocab, prompt}.
//   npx tsx test/book/fixture-model.ts DIR [STEPS]   (STEPS 0 = untrained weights, the default)
import * as fs from "fs";
import * as path from "path";
import { Rng } from "../../lib/tf";
import { TINY, initDecoder, lmLoss } from "../../lib/decoder";
import { loadCorpus } from "../../lib/data";
import { CharTokenizer } from "../../lib/tokenizer";
import { batches, saveParams, train } from "../../lib/train";

export function writeFixtureModel(dir: string, steps = 0): string {
  const text = loadCorpus("shakespeare");
  const tok = new CharTokenizer(text);
  const config = { ...TINY, vocabSize: tok.vocabSize };
  const params = initDecoder(config, 42);
  if (steps > 0) {
    const ids = tok.encode(text.slice(0, 200_000));
    train(params, (p, b) => lmLoss(p, config, b), { train: batches(ids, 16, 64, new Rng(1)) },
      { steps, lr: 3e-3, batchSize: 16, seqLen: 64, logEvery: Math.max(1, Math.round(steps / 5)) });
  }
  fs.mkdirSync(dir, { recursive: true });
  saveParams(params, path.join(dir, "overview-en.safetensors"));
  fs.writeFileSync(path.join(dir, "overview-en.json"), JSON.stringify({ config, vocab: tok.vocab, prompt: "ROMEO:" }) + "\n");
  return dir;
}

if (require.main === module) {
  const [dir, steps] = process.argv.slice(2);
  if (!dir) throw new Error("usage: tsx test/book/fixture-model.ts DIR [STEPS]");
  writeFixtureModel(dir, Number(steps ?? 0));
  console.log(`fixture model written to ${dir}`);
}
