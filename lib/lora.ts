// Low-rank adapters (LoRA, Hu et al. 2021): fine-tune a frozen model by learning a small update.
//
// The paper's observation: the change a fine-tune makes to a weight matrix has low "intrinsic rank",
// so instead of learning a full ΔW we learn two thin matrices whose product is ΔW. The base weights
// stay frozen and shared; one adapter is a few thousand numbers that can be swapped at run time.
//
// Layout. The paper writes h = W₀x + (α/r)·BAx with W₀ [out,in], A [r,in] (random), B [out,r]
// (zeros). Our weights are stored [in,out] and applied as y = x·W + b (lib/decoder.ts), so here
// A is [in,r] and B is [r,out] (each the transpose of the paper's), and
//     y = x·W + b + (α/r)·(x·A)·B,        ΔW = (α/r)·A·B  [in,out].
// It is the same arithmetic: (x·A)·B = ((BA)xᵀ)ᵀ with the paper's A and B transposed. B starts at
// zero, so an untrained adapter leaves the model exactly as it was.
//
// Sockets. The decoder calls `adapter.project(name, x, y)` after each linear layer, with names
// "h{l}.attn.qkv", "h{l}.attn.proj", "h{l}.mlp.fc", "h{l}.mlp.proj"; an adapter returns y + its
// delta. Adapter tensors are named after the socket: "h0.attn.qkv.lora.A", "h0.attn.qkv.lora.B".
import { tf, Rng } from "./tf";
import type { Adapter, DecoderConfig, Params } from "./decoder";

/** The four linear layers of a block that LoRA can adapt (the socket names without "h{l}."). */
export const LORA_TARGETS = ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"] as const;

export interface LoraSocket {
  name: string; // "h{l}.attn.qkv"
  in: number;
  out: number;
}

// [in, out] of each adaptable linear layer, read from the config (the decoder's weight layout).
function socketShape(config: DecoderConfig, target: string): [number, number] {
  const d = config.dModel;
  if (target === "attn.qkv") return [d, 3 * d];
  if (target === "attn.proj") return [d, d];
  if (target === "mlp.fc") return [d, config.dFF];
  if (target === "mlp.proj") return [config.dFF, d];
  throw new Error(`LoRA target must be one of ${LORA_TARGETS.join(", ")} (optionally prefixed "h{layer}."), got "${target}"`);
}

// sockets(config, ["attn.qkv"]) -> every layer's "h{l}.attn.qkv" with its [in, out]
// "attn.qkv" means that projection in every layer; "h1.attn.qkv" means layer 1 only.
export function loraSockets(config: DecoderConfig, targets: string[]): LoraSocket[] {
  if (!Array.isArray(targets) || targets.length === 0)
    throw new Error(`targets must be a non-empty list such as ["attn.qkv", "attn.proj"], got ${JSON.stringify(targets)}`);
  const names = new Set<string>();
  for (const t of targets) {
    const m = /^h(\d+)\.(.+)$/.exec(t);
    if (m) {
      const l = Number(m[1]);
      if (l >= config.nLayers) throw new Error(`LoRA target "${t}" names layer ${l}, but the model has layers 0..${config.nLayers - 1}`);
      socketShape(config, m[2]);
      names.add(t);
    } else {
      socketShape(config, t);
      for (let l = 0; l < config.nLayers; l++) names.add(`h${l}.${t}`);
    }
  }
  // A fixed order (layer, then the block's order of projections) so files and counts are stable.
  const order = (n: string) => {
    const m = /^h(\d+)\.(.+)$/.exec(n)!;
    return Number(m[1]) * 10 + LORA_TARGETS.indexOf(m[2] as (typeof LORA_TARGETS)[number]);
  };
  return [...names]
    .sort((a, b) => order(a) - order(b))
    .map((name) => {
      const [i, o] = socketShape(config, name.replace(/^h\d+\./, ""));
      return { name, in: i, out: o };
    });
}

export interface LoraOptions {
  rank: number;
  alpha: number;
  targets: string[];
  seed?: number;
}

function checkRankAlpha(rank: number, alpha: number): void {
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`rank must be a positive integer, got ${rank}`);
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) throw new Error(`alpha must be a finite number, got ${alpha}`);
}

// A ~ N(0, 1/in) [in,r], B = 0 [r,out] for every targeted socket: ΔW = A·B = 0 at the start
// -> { "h{l}.{target}.lora.A": tf.Variable [in,r], "h{l}.{target}.lora.B": tf.Variable [r,out] }
export function initLora(config: DecoderConfig, options: LoraOptions): Params {
  const { rank, alpha, targets } = options;
  checkRankAlpha(rank, alpha);
  const rng = new Rng(options.seed ?? 42);
  const out: Params = {};
  for (const s of loraSockets(config, targets)) {
    // Why std 1/√in: then x·A has the scale of x, whatever the width, and the (α/r) factor alone sets
    // how big the update is (the paper uses a Kaiming-uniform A, the same idea). B = 0 is what makes
    // the untrained adapter the identity — and the gradient still reaches B because A is not zero.
    const seed = rng.seed();
    // (tidy frees the initial values; variables outlive it. Unnamed: tfjs variable names are global.)
    out[`${s.name}.lora.A`] = tf.tidy(() => tf.variable(tf.randomNormal([s.in, rank], 0, 1 / Math.sqrt(s.in), "float32", seed)));
    out[`${s.name}.lora.B`] = tf.tidy(() => tf.variable(tf.zeros([rank, s.out])));
  }
  return out;
}

// r·(in+out) per adapted [in,out] weight, against in·out for fine-tuning that weight fully
// -> { lora: trainable numbers of the adapter, targeted: numbers in the weights it adapts }
export function loraParamCount(config: DecoderConfig, options: { rank: number; targets: string[] }): { lora: number; targeted: number } {
  checkRankAlpha(options.rank, 1);
  let lora = 0;
  let targeted = 0;
  for (const s of loraSockets(config, options.targets)) {
    lora += options.rank * (s.in + s.out);
    targeted += s.in * s.out;
  }
  return { lora, targeted };
}

export interface LoraScale {
  alpha: number;
  rank: number;
  strength?: number; // s: 0 = the base model, 1 = the adapter as trained; any real number works
}

// The sockets a LoRA parameter set fills: every name "X" with both "X.lora.A" and "X.lora.B".
function loraPairs(lora: Params, rank: number): string[] {
  const names: string[] = [];
  for (const key of Object.keys(lora)) {
    const m = /^(.*)\.lora\.A$/.exec(key);
    if (!m) continue;
    const A = lora[key];
    const B = lora[`${m[1]}.lora.B`];
    if (!B) throw new Error(`LoRA tensor "${key}" has no partner "${m[1]}.lora.B"`);
    if (A.rank !== 2 || B.rank !== 2 || A.shape[1] !== rank || B.shape[0] !== rank)
      throw new Error(`LoRA pair "${m[1]}" must be A [in, ${rank}] and B [${rank}, out] for rank ${rank}, got A [${A.shape}] and B [${B.shape}]`);
    names.push(m[1]);
  }
  for (const key of Object.keys(lora)) {
    const m = /^(.*)\.lora\.B$/.exec(key);
    if (m && !lora[`${m[1]}.lora.A`]) throw new Error(`LoRA tensor "${key}" has no partner "${m[1]}.lora.A"`);
  }
  return names;
}

// y + s·(α/r)·(x·A)·B at every socket the LoRA set names (other sockets pass y through)
// x [..., in], y [..., out] -> [..., out]
export function loraAdapter(lora: Params, options: LoraScale): Adapter {
  const { alpha, rank } = options;
  checkRankAlpha(rank, alpha);
  const strength = options.strength ?? 1;
  if (!Number.isFinite(strength)) throw new Error(`strength must be a finite number, got ${strength}`);
  const sockets = new Set(loraPairs(lora, rank));
  const scale = (strength * alpha) / rank;
  return {
    project(name: string, x: tf.Tensor, y: tf.Tensor): tf.Tensor {
      // Strength 0 returns y itself: the base bit for bit (y + 0 could turn −0 into +0).
      if (scale === 0 || !sockets.has(name)) return y;
      return tf.tidy(() => {
        const A = lora[`${name}.lora.A`];
        const B = lora[`${name}.lora.B`];
        const inDim = A.shape[0];
        if (x.shape[x.rank - 1] !== inDim)
          throw new Error(`x at socket "${name}" must end in ${inDim} features to match its LoRA A [${A.shape}], got shape [${x.shape}]`);
        const x2 = x.reshape([-1, inDim]);
        // Scale the thin [N, r] product, not the [N, out] one: fewer multiplications, same result.
        const xa = tf.matMul(x2, A);
        const delta = tf.matMul(scale === 1 ? xa : tf.mul(xa, scale), B); // (α = r, s = 1: one op fewer)
        return tf.add(y, delta.reshape(y.shape));
      });
    },
  };
}

// W' = W + s·(α/r)·A·B for every adapted socket (W = base["{socket}.w"] [in,out]); other tensors copied
// -> a new Params that owns all its tensors (dispose it freely; the base is untouched)
export function mergeLora(base: Params, lora: Params, options: LoraScale): Params {
  const { alpha, rank } = options;
  checkRankAlpha(rank, alpha);
  const strength = options.strength ?? 1;
  const sockets = loraPairs(lora, rank);
  const scale = (strength * alpha) / rank;
  const merged: Params = {};
  for (const name of sockets) {
    const W = base[`${name}.w`];
    if (!W) throw new Error(`base has no weight "${name}.w" for the LoRA socket "${name}"`);
    const A = lora[`${name}.lora.A`];
    const B = lora[`${name}.lora.B`];
    if (W.shape[0] !== A.shape[0] || W.shape[1] !== B.shape[1])
      throw new Error(`LoRA "${name}" makes a [${A.shape[0]}, ${B.shape[1]}] update, but base "${name}.w" is [${W.shape}]`);
  }
  for (const key of Object.keys(base)) {
    const name = key.endsWith(".w") ? key.slice(0, -2) : null;
    if (name !== null && sockets.includes(name) && scale !== 0) {
      merged[key] = tf.tidy(() => tf.add(base[key], tf.mul(tf.matMul(lora[`${name}.lora.A`], lora[`${name}.lora.B`]), scale)));
    } else {
      merged[key] = tf.clone(base[key]); // shares the buffer (tfjs counts references), costs nothing
    }
  }
  return merged;
}
