// The one place that picks the TensorFlow.js backend and makes randomness reproducible.
//
// tfjs-node (TensorFlow's C library, built by `npm run setup`) is the fast backend. If its native
// addon is missing or fails to load, we say so in one line and fall back to the pure-JS cpu backend,
// which runs every op of the book (slowly). Every other file imports `tf` from here.
import * as tf from "@tensorflow/tfjs";

function loadNative(): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require("@tensorflow/tfjs-node");
    return null;
  } catch (e) {
    return String((e as Error).message ?? e).split("\n")[0];
  }
}

const nativeError = process.env.BOOK_BACKEND === "cpu" ? "BOOK_BACKEND=cpu was set" : loadNative();
if (nativeError !== null) {
  console.warn(`tfjs-node is unavailable (${nativeError}); using the pure-JS cpu backend, about 50x slower — run \`npm run setup\` to build it.`);
  tf.setBackend("cpu");
}
tf.enableProdMode(); // no per-op NaN checks; lib functions validate their own inputs

export { tf };

/** The book's default seed; every notebook prints it in its first cell. */
export const SEED = 42;

/** A seeded random number generator (mulberry32): the only source of randomness in lib/. */
export class Rng {
  private state: number;
  constructor(seed: number = SEED) {
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}.`);
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A fresh integer seed for a tfjs random op (tf.randomNormal(..., seed)). */
  seed(): number {
    return Math.floor(this.next() * 2 ** 31);
  }
}

/** What a reader needs to reproduce a run: printed by the first cell of every notebook. */
export function versions(seed: number = SEED): Record<string, string | number> {
  const pkg = (name: string): string => {
    try {
      return require(`${name}/package.json`).version;
    } catch {
      return "not installed";
    }
  };
  return {
    node: process.version,
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    tslab: pkg("tslab"),
    seed,
  };
}
