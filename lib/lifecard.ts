// The "digital life card" (数字生命卡) of the chapter's closing question, answered small and exact.
//
// A life card is one small file that changes how a frozen, general base model behaves: low-rank
// weight deltas (LoRA, Hu et al. 2021; lib/lora.ts) that can shift knowledge and tone, steering
// vectors added to the residual stream (activation addition: Turner et al. 2023, "Activation
// Addition"; Rimsky et al. 2024, "Steering Llama 2 via Contrastive Activation Addition"), and a
// short profile in words. The base never changes: a card plugs into the decoder's sockets at run
// time, per row of a batch, with a strength; several cards mix exactly; and with no card plugged
// in the model is the base, bit for bit.
//
// File layout (safetensors-style, written here by hand):
//   [8 bytes: header length N, unsigned little-endian] [N bytes: JSON header, UTF-8, space-padded
//   to a multiple of 8] [data: every tensor's float32 values, little-endian, back to back]
// The header holds {format, name, profile, base, modules, training, effect, tensors}; each tensor
// entry is {dtype: "F32", shape, offsets: [begin, end]} with byte offsets into the data section.
// `base` is the fingerprint of the base model the card was trained on: a card only means something
// on the exact weights it was trained against, so loading it anywhere else is refused.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import { tf, Rng } from "./tf";
import type { Adapter, DecoderConfig, Params } from "./decoder";
import { decoderForward, lmLoss } from "./decoder";
import { initLora, loraAdapter, loraSockets } from "./lora";
import * as trainLib from "./train";

export const CARD_FORMAT = "lifecard/1";

/** What a card holds: LoRA deltas on some projections, and/or steering vectors after some blocks. */
export type CardModule =
  | { kind: "lora"; targets: string[]; rank: number; alpha: number }
  | { kind: "steer"; layers: number[] };

/** How the card was made, so it can be made again. `data` is a digest of the training tokens. */
export interface CardTraining { how: string; steps: number; seconds: number; seed: number; data: string }

export interface Card {
  format: string;
  name: string;
  profile: string;
  base: string; // fingerprint(params, config) of the base model
  modules: CardModule[];
  training: CardTraining;
  effect: { [measure: string]: number };
  tensors: Params; // "h{l}.{target}.lora.A" [in,r], "h{l}.{target}.lora.B" [r,out], "h{l}.steer" [d]
}

/** One card plugged into a row, at a strength s (0 = unplugged, 1 = as trained). */
export interface Plug { card: Card; strength: number }

/** A row's socket: no card, one card at strength 1, or a weighted mix of cards. */
export type Slot = Card | null | Plug[];

/** What a card is checked against: the base's weights and config (or its fingerprint and config). */
export type CardBase = { params: Params; config: DecoderConfig } | { fingerprint: string; config: DecoderConfig };

const LE = os.endianness() === "LE";

// The bytes of a float32 array in little-endian order (a view where the machine is already LE).
function float32LE(a: Float32Array): Uint8Array {
  if (LE) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setFloat32(4 * i, a[i], true);
  return out;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

// sha256(config as sorted JSON ‖ for each weight in name order: name, dtype, shape, float32 LE bytes)
// params, config -> "sha256:<64 hex>" (one changed weight changes it)
export function fingerprint(params: Params, config: DecoderConfig): string {
  const h = crypto.createHash("sha256");
  h.update(canonicalJson(config));
  for (const name of Object.keys(params).sort()) {
    const t = params[name];
    h.update(`\n${name} ${t.dtype} [${t.shape.join(",")}]\n`);
    const data = t.dataSync();
    h.update(data instanceof Float32Array ? float32LE(data) : Buffer.from(new Int32Array(data as Int32Array).buffer));
  }
  return `sha256:${h.digest("hex")}`;
}

// sha256 of token ids as int32 LE: names the training data of a card without storing it
// ids (number[][] or number[]) -> "sha256:<64 hex>"
export function dataDigest(ids: number[][] | number[]): string {
  const flat = (ids as (number | number[])[]).flatMap((r) => (Array.isArray(r) ? [...r, -1] : [r])); // -1 separates texts
  const buf = Buffer.alloc(flat.length * 4);
  flat.forEach((v, i) => buf.writeInt32LE(v, 4 * i));
  return `sha256:${crypto.createHash("sha256").update(buf).digest("hex")}`;
}

function short(fp: string): string {
  return fp.length > 19 ? `${fp.slice(0, 19)}…` : fp;
}

function shapeStr(shape: number[]): string {
  return `[${shape.join(",")}]`;
}

// The tensors a card's modules declare, with the shape each must have on this base.
// modules, config -> Map name -> shape
function expectedTensors(modules: CardModule[], config: DecoderConfig, cardName: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const add = (name: string, shape: number[]) => {
    if (out.has(name)) throw new Error(`life card "${cardName}" declares tensor "${name}" in two modules; each tensor belongs to one module`);
    out.set(name, shape);
  };
  for (const m of modules) {
    if (m.kind === "lora") {
      for (const s of loraSockets(config, m.targets)) {
        add(`${s.name}.lora.A`, [s.in, m.rank]);
        add(`${s.name}.lora.B`, [m.rank, s.out]);
      }
    } else {
      for (const l of m.layers) {
        if (l >= config.nLayers) throw new Error(`life card "${cardName}" steers layer ${l}, but this base has layers 0..${config.nLayers - 1}`);
        add(`h${l}.steer`, [config.dModel]);
      }
    }
  }
  return out;
}

// Checks the header's fields (not the tensors) and returns them typed; throws one sentence.
function checkFields(h: Record<string, unknown>): void {
  const where = typeof h.name === "string" ? `life card "${h.name}"` : "life card";
  if (h.format !== CARD_FORMAT) throw new Error(`${where} must have format "${CARD_FORMAT}", got ${JSON.stringify(h.format)}`);
  if (typeof h.name !== "string" || h.name.length === 0) throw new Error(`life card name must be a non-empty string, got ${JSON.stringify(h.name)}`);
  if (typeof h.profile !== "string") throw new Error(`${where} profile must be text, got ${JSON.stringify(h.profile)}`);
  if (typeof h.base !== "string" || !/^sha256:[0-9a-f]{64}$/.test(h.base))
    throw new Error(`${where} base must be a fingerprint "sha256:<64 hex>" from fingerprint(params, config), got ${JSON.stringify(h.base)}`);
  if (!Array.isArray(h.modules) || h.modules.length === 0) throw new Error(`${where} modules must be a non-empty list, got ${JSON.stringify(h.modules)}`);
  for (const m of h.modules as Record<string, unknown>[]) {
    const ok =
      m !== null && typeof m === "object" &&
      ((m.kind === "lora" && Array.isArray(m.targets) && (m.targets as unknown[]).every((t) => typeof t === "string") &&
        Number.isInteger(m.rank) && (m.rank as number) >= 1 && typeof m.alpha === "number" && Number.isFinite(m.alpha)) ||
        (m.kind === "steer" && Array.isArray(m.layers) && (m.layers as unknown[]).every((l) => Number.isInteger(l) && (l as number) >= 0)));
    if (!ok)
      throw new Error(`${where} module must be {kind: "lora", targets, rank ≥ 1, alpha} or {kind: "steer", layers}, got ${JSON.stringify(m)}`);
  }
  const t = h.training as Record<string, unknown>;
  if (t === null || typeof t !== "object" || typeof t.how !== "string" || typeof t.data !== "string" ||
    !["steps", "seconds", "seed"].every((k) => typeof t[k] === "number" && Number.isFinite(t[k])))
    throw new Error(`${where} training must be {how, steps, seconds, seed, data}, got ${JSON.stringify(h.training)}`);
  const e = h.effect as Record<string, unknown>;
  if (e === null || typeof e !== "object" || Array.isArray(e) || !Object.values(e).every((v) => typeof v === "number" && Number.isFinite(v)))
    throw new Error(`${where} effect must map measure names to finite numbers, got ${JSON.stringify(h.effect)}`);
}

// The base a card is checked against: its fingerprint and its config.
function baseOf(base: CardBase): { fp: string; config: DecoderConfig } {
  if (base === undefined || base === null || typeof base !== "object" || !("config" in base))
    throw new Error(`base must be {params, config} or {fingerprint, config}, got ${JSON.stringify(base)}`);
  return { fp: "fingerprint" in base ? base.fingerprint : fingerprint(base.params, base.config), config: base.config };
}

// Everything about a card but its values: fields, base, the tensor list against the modules, shapes.
function checkAgainstBase(h: Record<string, unknown>, shapes: { [name: string]: number[] }, fp: string, config: DecoderConfig): void {
  checkFields(h);
  const name = h.name as string;
  if (h.base !== fp)
    throw new Error(`life card "${name}" was made for base ${short(h.base as string)}, but this base is ${short(fp)}; load the base it was trained on, or train the card again on this one`);
  const want = expectedTensors(h.modules as CardModule[], config, name);
  for (const [t, shape] of want) {
    if (!(t in shapes)) throw new Error(`life card "${name}" is missing tensor "${t}" ${shapeStr(shape)} that its modules declare`);
    if (shapeStr(shapes[t]) !== shapeStr(shape))
      throw new Error(`life card "${name}" tensor "${t}" has shape ${shapeStr(shapes[t])}, but its module needs ${shapeStr(shape)} on this base`);
  }
  for (const t of Object.keys(shapes))
    if (!want.has(t)) throw new Error(`life card "${name}" holds tensor "${t}" that none of its modules declares`);
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

function header(card: Card): Record<string, unknown> {
  return { format: card.format, name: card.name, profile: card.profile, base: card.base, modules: card.modules, training: card.training, effect: card.effect };
}

// A card from its parts, checked against the base it is for (tensors are copied: the card owns them)
// fields + tensors, base {params, config} -> Card
export function makeCard(
  fields: { name: string; profile?: string; modules: CardModule[]; tensors: Params; training?: Partial<CardTraining>; effect?: { [m: string]: number } },
  base: CardBase,
): Card {
  const { fp, config } = baseOf(base);
  const training: CardTraining = { how: "by hand", steps: 0, seconds: 0, seed: 0, data: "", ...(fields.training ?? {}) };
  const h = { format: CARD_FORMAT, name: fields.name, profile: fields.profile ?? "", base: fp, modules: fields.modules, training, effect: fields.effect ?? {} };
  const shapes: { [n: string]: number[] } = {};
  for (const [n, t] of Object.entries(fields.tensors ?? {})) shapes[n] = t.shape;
  checkAgainstBase(h, shapes, fp, config);
  for (const [n, t] of Object.entries(fields.tensors)) {
    const at = firstNonFinite(new Float32Array(t.dataSync()));
    if (at >= 0) throw new Error(`life card "${fields.name}" tensor "${n}" holds a non-finite value at index ${at}`);
  }
  const tensors: Params = {};
  for (const [n, t] of Object.entries(fields.tensors)) tensors[n] = tf.tidy(() => tf.cast(t, "float32").clone());
  return { ...h, tensors };
}

// frees every tensor the card owns (a card from makeCard or loadCard owns copies, never the caller's)
// Card -> nothing
export function disposeCard(card: Card): void {
  tf.dispose(Object.values(card.tensors));
}

// card -> bytes: [u64 LE header length][JSON header, space-padded to 8][float32 LE data]
// Card -> Uint8Array (tensors in name order, so the same card always gives the same bytes)
export function cardToBytes(card: Card): Uint8Array {
  checkFields(header(card) as Record<string, unknown>);
  const names = Object.keys(card.tensors).sort();
  const chunks: Uint8Array[] = [];
  const entries: Record<string, unknown> = {};
  let offset = 0;
  for (const n of names) {
    const t = card.tensors[n];
    if (t.dtype !== "float32") throw new Error(`life card "${card.name}" tensor "${n}" must be float32, got ${t.dtype}`);
    const values = t.dataSync() as Float32Array;
    const at = firstNonFinite(values);
    if (at >= 0) throw new Error(`life card "${card.name}" tensor "${n}" holds a non-finite value at index ${at}; a card stores finite numbers only`);
    const bytes = float32LE(values);
    entries[n] = { dtype: "F32", shape: t.shape, offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify({ ...header(card), tensors: entries });
  let head = Buffer.from(json, "utf8");
  // Pad so the data starts on an 8-byte boundary (safetensors does the same; readers can view it directly).
  const pad = (8 - ((8 + head.length) % 8)) % 8;
  if (pad) head = Buffer.concat([head, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

// bytes -> Card, every check first (file, JSON, fields, base, tensor list, shapes, offsets, finite
// values), tensors created last: a refused card leaves nothing behind.  Uint8Array, base -> Card
export function cardFromBytes(bytes: Uint8Array, base: CardBase): Card {
  const { fp, config } = baseOf(base);
  if (!(bytes instanceof Uint8Array)) throw new Error(`bytes must be a Uint8Array (or Buffer), got ${typeof bytes}`);
  if (bytes.length < 8) throw new Error(`life card is truncated: it has ${bytes.length} bytes, fewer than the 8 that give the header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8))
    throw new Error(`life card is truncated: its first 8 bytes announce a ${n}-byte header, but only ${bytes.length - 8} bytes follow`);
  const headerBytes = bytes.subarray(8, 8 + Number(n));
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new Error(`life card header is not valid UTF-8 JSON (${String((e as Error).message).split("\n")[0]})`);
  }
  if (h === null || typeof h !== "object" || Array.isArray(h)) throw new Error(`life card header must be a JSON object, got ${JSON.stringify(h)}`);
  const entries = h.tensors as Record<string, { dtype?: unknown; shape?: unknown; offsets?: unknown }>;
  const cardName = typeof h.name === "string" ? h.name : "?";
  if (entries === null || typeof entries !== "object" || Array.isArray(entries))
    throw new Error(`life card "${cardName}" header must list its tensors as {name: {dtype, shape, offsets}}, got ${JSON.stringify(h.tensors)}`);
  const shapes: { [t: string]: number[] } = {};
  for (const [t, e] of Object.entries(entries)) {
    if (e === null || typeof e !== "object" || !Array.isArray(e.shape) || !(e.shape as unknown[]).every((d) => Number.isInteger(d) && (d as number) >= 0))
      throw new Error(`life card "${cardName}" tensor "${t}" must have a shape of non-negative integers, got ${JSON.stringify(e)}`);
    shapes[t] = e.shape as number[];
  }
  const { tensors: _, ...fields } = h;
  checkAgainstBase(fields, shapes, fp, config);
  // Offsets: each tensor's bytes, back to back from 0 to the end of the file, nothing left over.
  const data = bytes.subarray(8 + Number(n));
  const spans: [string, number, number][] = [];
  for (const [t, e] of Object.entries(entries)) {
    if (e.dtype !== "F32") throw new Error(`life card "${cardName}" tensor "${t}" has dtype ${JSON.stringify(e.dtype)}; life cards store "F32" only`);
    const o = e.offsets as number[];
    if (!Array.isArray(o) || o.length !== 2 || !o.every((v) => Number.isInteger(v) && v >= 0) || o[1] < o[0])
      throw new Error(`life card "${cardName}" tensor "${t}" offsets must be [begin, end] byte positions, got ${JSON.stringify(e.offsets)}`);
    const size = shapes[t].reduce((a, b) => a * b, 1) * 4;
    if (o[1] - o[0] !== size)
      throw new Error(`life card "${cardName}" tensor "${t}" spans ${o[1] - o[0]} bytes, but shape ${shapeStr(shapes[t])} of float32 needs ${size}`);
    if (o[1] > data.length)
      throw new Error(`life card "${cardName}" is truncated: tensor "${t}" ends at data byte ${o[1]}, but the data holds only ${data.length} bytes`);
    spans.push([t, o[0], o[1]]);
  }
  spans.sort((a, b) => a[1] - b[1]);
  let end = 0;
  for (const [t, b, e] of spans) {
    if (b !== end) throw new Error(`life card "${cardName}" tensor "${t}" starts at data byte ${b}, but the tensors before it end at ${end}; tensors must lie back to back`);
    end = e;
  }
  if (end !== data.length) throw new Error(`life card "${cardName}" has ${data.length - end} bytes after its last tensor that no tensor declares`);
  // Values: decode everything and refuse NaN/∞ before making a single tensor.
  const values: { [t: string]: Float32Array } = {};
  for (const [t, b, e] of spans) {
    const dv = new DataView(data.buffer, data.byteOffset + b, e - b);
    const a = new Float32Array((e - b) / 4);
    for (let i = 0; i < a.length; i++) a[i] = dv.getFloat32(4 * i, true);
    const at = firstNonFinite(a);
    if (at >= 0) throw new Error(`life card "${cardName}" tensor "${t}" holds a non-finite value (${a[at]}) at index ${at}`);
    values[t] = a;
  }
  const tensors: Params = {};
  for (const t of Object.keys(values).sort()) tensors[t] = tf.tensor(values[t], shapes[t], "float32");
  return { ...(fields as unknown as Omit<Card, "tensors">), tensors };
}

// file = cardToBytes(card): [u64 LE header length][JSON header][float32 LE data]
// Card, path -> a file of a few kilobytes
export function saveCard(card: Card, file: string): void {
  fs.writeFileSync(file, cardToBytes(card));
}

// cardFromBytes(read(file), base): refused with one sentence unless everything checks out
// path, base {params, config} -> Card
export function loadCard(file: string, base: CardBase): Card {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`life card file ${JSON.stringify(file)} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return cardFromBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), base);
}

// ---------------------------------------------------------------------------------------------------
// Sockets: plug cards into rows of a batch.

// The scale a card tensor carries: α/r for a LoRA pair, 1 for a steering vector.
function loraScaleOf(card: Card, socket: string): number | null {
  if (!(`${socket}.lora.A` in card.tensors)) return null;
  const suffix = socket.replace(/^h\d+\./, "");
  for (const m of card.modules)
    if (m.kind === "lora" && (m.targets.includes(suffix) || m.targets.includes(socket))) return m.alpha / m.rank;
  throw new Error(`life card "${card.name}" holds "${socket}.lora.A" but none of its lora modules targets "${socket}"`);
}

function normalise(slots: Slot[]): Plug[][] {
  if (!Array.isArray(slots) || slots.length === 0)
    throw new Error(`slots must list one entry per batch row (a card, null, or [{card, strength}, ...]), got ${JSON.stringify(slots)}`);
  return slots.map((slot, i) => {
    const plugs: Plug[] = slot === null ? [] : Array.isArray(slot) ? slot : [{ card: slot, strength: 1 }];
    for (const p of plugs) {
      if (!p || !p.card || typeof p.card !== "object" || !p.card.tensors)
        throw new Error(`slots[${i}] must be a card, null, or a list of {card, strength}, got ${JSON.stringify(p)}`);
      if (typeof p.strength !== "number" || !Number.isFinite(p.strength))
        throw new Error(`slots[${i}] strength for card "${p.card.name}" must be a finite number, got ${p.strength}`);
    }
    // A card at strength 0 is not plugged in at all: that is what makes s = 0 the base bit for bit.
    return plugs.filter((p) => p.strength !== 0);
  });
}

// Row i of a batch: y = x·W + Σₖ sᵢₖ(αₖ/rₖ)·(x·Aₖ)·Bₖ at every LoRA socket, h + Σₖ sᵢₖ·vₖ after each block
// slots [B] (one per row) -> Adapter for batches of B rows, or undefined when no row has a card
// All cards at a socket run as one rank-concatenated adapter: Σₖ wₖ·(x·Aₖ)·Bₖ = ((x·[A₁|A₂|…]) ⊙ m)·[B₁;B₂;…]
// where m repeats wₖ over card k's r columns — the exact mix Σₖ wₖAₖBₖ = [A₁|A₂]·[w₁B₁; w₂B₂], one matMul pair.
// Rows with no card at a socket take y itself (tf.where), so they are the base bit for bit — the base
// run on the same batch: the base alone differs from itself across batch sizes by ~1e-8 (the matMul
// kernels block differently), so a row with a card equals that row run alone to float tolerance.
export function cardAdapter(slots: Slot[], options: { config?: DecoderConfig } = {}): Adapter | undefined {
  const rows = normalise(slots);
  const B = rows.length;
  if (rows.every((r) => r.length === 0)) return undefined; // unplugged: the decoder runs no adapter code
  const cards: Card[] = [];
  for (const r of rows) for (const p of r) if (!cards.includes(p.card)) cards.push(p.card);
  if (options.config) {
    for (const c of cards) {
      const shapes: { [n: string]: number[] } = {};
      for (const [n, t] of Object.entries(c.tensors)) shapes[n] = t.shape;
      const want = expectedTensors(c.modules, options.config, c.name);
      for (const [n, s] of want)
        if (!(n in shapes) || shapeStr(shapes[n]) !== shapeStr(s))
          throw new Error(`life card "${c.name}" tensor "${n}" must be ${shapeStr(s)} for this config, got ${n in shapes ? shapeStr(shapes[n]) : "nothing"}`);
    }
  }
  // Weight of card k in row i (a card plugged twice in one row adds up).
  const weight = rows.map((r) => cards.map((c) => r.filter((p) => p.card === c).reduce((a, p) => a + p.strength, 0)));

  // Per socket, built once on first use: which cards, the column scales m [B, Σr], which rows.
  type Plan = { A: tf.Tensor[]; Bs: tf.Tensor[]; m: Float32Array; width: number; rows: boolean[] } | null;
  const plans = new Map<string, Plan>();
  function loraPlan(socket: string): Plan {
    if (plans.has(socket)) return plans.get(socket)!;
    const A: tf.Tensor[] = [], Bs: tf.Tensor[] = [], cols: { k: number; r: number; scale: number }[] = [];
    cards.forEach((c, k) => {
      const scale = loraScaleOf(c, socket);
      if (scale === null) return;
      A.push(c.tensors[`${socket}.lora.A`]);
      Bs.push(c.tensors[`${socket}.lora.B`]);
      cols.push({ k, r: c.tensors[`${socket}.lora.A`].shape[1] as number, scale });
    });
    const width = cols.reduce((a, c) => a + c.r, 0);
    const m = new Float32Array(B * width);
    const used = new Array<boolean>(B).fill(false);
    for (let i = 0; i < B; i++) {
      let j = 0;
      for (const c of cols) {
        const w = weight[i][c.k] * c.scale;
        if (w !== 0) used[i] = true;
        for (let q = 0; q < c.r; q++) m[i * width + j++] = w;
      }
    }
    const plan = used.some((u) => u) ? { A, Bs, m, width, rows: used } : null;
    plans.set(socket, plan);
    return plan;
  }
  function checkBatch(where: string, t: tf.Tensor): void {
    if (t.shape[0] !== B)
      throw new Error(`the card adapter has ${B} slots (one per batch row), but ${where} got a batch of ${t.shape[0]} rows, shape [${t.shape}]`);
  }
  // Rows that take the adapted value; the others keep the base tensor exactly.
  function select(used: boolean[], adapted: tf.Tensor, base: tf.Tensor): tf.Tensor {
    if (used.every((u) => u)) return adapted;
    const mask = tf.tensor(used.map((u) => (u ? 1 : 0)), [B, ...base.shape.slice(1).map(() => 1)], "bool");
    return tf.where(mask, adapted, base);
  }

  const hasLora = cards.some((c) => c.modules.some((m) => m.kind === "lora"));
  const hasSteer = cards.some((c) => c.modules.some((m) => m.kind === "steer"));
  const adapter: Adapter = {};
  if (hasLora)
    adapter.project = (name: string, x: tf.Tensor, y: tf.Tensor): tf.Tensor => {
      const plan = loraPlan(name);
      if (plan === null) return y;
      checkBatch(`socket "${name}"`, x);
      return tf.tidy(() => {
        const inDim = x.shape[x.rank - 1];
        if (plan.A[0].shape[0] !== inDim)
          throw new Error(`socket "${name}" gets inputs of width ${inDim}, but its card tensors expect ${plan.A[0].shape[0]}; is the card for this model?`);
        const Acat = plan.A.length === 1 ? plan.A[0] : tf.concat(plan.A, 1); // [in, Σr]
        const Bcat = plan.Bs.length === 1 ? plan.Bs[0] : tf.concat(plan.Bs, 0); // [Σr, out]
        const xa = tf.matMul(x.reshape([-1, inDim]), Acat).reshape([B, -1, plan.width]); // [B, T, Σr]
        const scaled = tf.mul(xa, tf.tensor(plan.m, [B, 1, plan.width])); // row i, column of card k: × sᵢₖαₖ/rₖ
        const delta = tf.matMul(scaled.reshape([-1, plan.width]), Bcat).reshape(y.shape);
        return select(plan.rows, tf.add(y, delta), y);
      });
    };
  if (hasSteer)
    adapter.residual = (layer: number, h: tf.Tensor): tf.Tensor => {
      const name = `h${layer}.steer`;
      const ks = cards.map((c, k) => (name in c.tensors ? k : -1)).filter((k) => k >= 0);
      const used = weight.map((w) => ks.some((k) => w[k] !== 0));
      if (!used.some((u) => u)) return h;
      checkBatch(`block ${layer}`, h);
      return tf.tidy(() => {
        const V = tf.stack(ks.map((k) => cards[k].tensors[name])); // [K, d]
        const W = tf.tensor(weight.flatMap((w) => ks.map((k) => w[k])), [B, ks.length]); // [B, K]
        const v = tf.matMul(W, V).reshape([B, 1, -1]); // [B, 1, d]: the same vector at every position
        return select(used, tf.add(h, v), h);
      });
    };
  return adapter;
}

// W' = W + Σₖ sₖ(αₖ/rₖ)·Aₖ·Bₖ,  b'_{h{l}.mlp.proj} = b + Σₖ sₖ·v_{k,l}   (cards folded into the weights)
// params, plugs -> new Params (owns its tensors). Steering after block l adds v to every position,
// which is exactly what the block's last bias (mlp.proj.b) does — so a steering vector merges too.
export function mergeCards(params: Params, plugs: Plug[]): Params {
  const merged: Params = {};
  const delta = new Map<string, tf.Tensor[]>();
  for (const { card, strength } of plugs) {
    if (strength === 0) continue;
    for (const n of Object.keys(card.tensors)) {
      const m = /^(.*)\.lora\.A$/.exec(n);
      if (m) {
        const scale = loraScaleOf(card, m[1])! * strength;
        const key = `${m[1]}.w`;
        if (!params[key]) throw new Error(`params has no weight "${key}" for life card "${card.name}"`);
        const d = tf.tidy(() => tf.mul(tf.matMul(card.tensors[n], card.tensors[`${m[1]}.lora.B`]), scale));
        delta.set(key, [...(delta.get(key) ?? []), d]);
      }
      const s = /^h(\d+)\.steer$/.exec(n);
      if (s) {
        const key = `h${s[1]}.mlp.proj.b`;
        if (!params[key]) throw new Error(`params has no bias "${key}" for life card "${card.name}"'s steering vector`);
        delta.set(key, [...(delta.get(key) ?? []), tf.mul(card.tensors[n], strength)]);
      }
    }
  }
  for (const key of Object.keys(params)) {
    const ds = delta.get(key);
    merged[key] = ds ? tf.tidy(() => ds.reduce((acc, d) => tf.add(acc, d), params[key] as tf.Tensor)) : tf.clone(params[key]);
  }
  for (const ds of delta.values()) tf.dispose(ds);
  return merged;
}

// ---------------------------------------------------------------------------------------------------
// Making a card.

export interface TrainCardOptions {
  rank: number;
  alpha?: number; // default = rank, so α/r = 1
  targets?: string[]; // default ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"]
  steps: number;
  lr: number;
  batchSize?: number;
  seqLen?: number;
  seed?: number;
  weightDecay?: number; // default 0: decay would pull the adapter toward zero, i.e. toward the base
  log?: (line: string) => void;
  logEvery?: number;
}

// θ_LoRA = argmin L(base ⊕ LoRA; texts) by Adam on the LoRA tensors only; the base stays frozen
// base, config, texts (token id lists) -> the card parts: tensors, module, training record, losses
export function trainCardLora(base: Params, config: DecoderConfig, texts: number[][], options: TrainCardOptions): {
  tensors: Params; module: CardModule; training: CardTraining; result: trainLib.TrainResult;
} {
  const { rank, steps, lr } = options;
  const alpha = options.alpha ?? rank;
  const targets = options.targets ?? ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"];
  const seed = options.seed ?? 42;
  const batchSize = options.batchSize ?? 8;
  const seqLen = options.seqLen ?? Math.min(32, config.contextLength);
  if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t) => Array.isArray(t)))
    throw new Error(`texts must be a non-empty list of token id lists, got ${JSON.stringify(texts)?.slice(0, 80)}`);
  const tokens = texts.flat();
  if (tokens.length < seqLen + 2) throw new Error(`texts must hold more than seqLen + 1 = ${seqLen + 1} tokens in all, got ${tokens.length}`);
  const lora = initLora(config, { rank, alpha, targets, seed });
  const names = Object.keys(lora);
  const rng = new Rng(seed + 1); // the batches' own stream, apart from initLora's
  const data = { train: trainLib.batches(tokens, batchSize, seqLen, rng) };
  const loss = (p: Params, batch: tf.Tensor2D) => {
    const adapterParams: Params = {};
    for (const n of names) adapterParams[n] = p[n];
    return lmLoss(p, config, batch, { adapter: loraAdapter(adapterParams, { alpha, rank }) });
  };
  const result = trainLib.train({ ...base, ...lora }, loss, data, {
    steps, lr, batchSize, seqLen, seed, trainable: names, weightDecay: options.weightDecay ?? 0, log: options.log, logEvery: options.logEvery ?? Math.max(1, Math.floor(steps / 5)),
  });
  // The card owns plain tensors (not variables): freeze the trained values.
  const tensors: Params = {};
  for (const n of names) tensors[n] = tf.clone(lora[n]);
  tf.dispose(Object.values(lora));
  return {
    tensors,
    module: { kind: "lora", targets, rank, alpha },
    training: { how: `LoRA r=${rank} α=${alpha} on ${targets.join(",")}, Adam lr ${lr}, batch ${batchSize}×${seqLen}`, steps, seconds: result.seconds, seed, data: dataDigest(texts) },
    result,
  };
}

// v_l = mean_{positive tokens} h_l − mean_{negative tokens} h_l   (h_l: the residual stream after block l)
// Contrastive activation addition (Turner et al. 2023; Rimsky et al. 2024): the direction between two
// kinds of text; adding s·v_l at run time pushes the model toward the positive kind.
// base, config, positiveIds, negativeIds (token id lists), layers -> { "h{l}.steer": [d] }
export function steeringVector(base: Params, config: DecoderConfig, positiveIds: number[][], negativeIds: number[][], layers: number[]): Params {
  for (const [arg, ids] of [["positiveIds", positiveIds], ["negativeIds", negativeIds]] as const)
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((r) => Array.isArray(r) && r.length >= 1 && r.length <= config.contextLength))
      throw new Error(`${arg} must be a non-empty list of token id lists of length 1..${config.contextLength}, got ${JSON.stringify(ids)?.slice(0, 80)}`);
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => Number.isInteger(l) && l >= 0 && l < config.nLayers))
    throw new Error(`layers must be a non-empty list of layer indices in 0..${config.nLayers - 1}, got ${JSON.stringify(layers)}`);
  // The mean residual activation over every position of every text of one kind, per chosen layer.
  const meanOf = (texts: number[][]): tf.Tensor[] =>
    tf.tidy(() => {
      let sums: tf.Tensor[] = layers.map(() => tf.zeros([config.dModel]));
      let count = 0;
      for (const ids of texts) {
        const seen: tf.Tensor[] = new Array(config.nLayers);
        const recorder: Adapter = { residual: (l, h) => ((seen[l] = h.sum([0, 1])), h) }; // record, change nothing
        const input = tf.tensor2d([ids], [1, ids.length], "int32");
        decoderForward(base, config, input, { adapter: recorder });
        sums = sums.map((s, i) => s.add(seen[layers[i]]));
        count += ids.length;
      }
      return sums.map((s) => s.div(count));
    });
  const pos = meanOf(positiveIds);
  const neg = meanOf(negativeIds);
  const out: Params = {};
  layers.forEach((l, i) => (out[`h${l}.steer`] = tf.sub(pos[i], neg[i])));
  tf.dispose([...pos, ...neg]);
  return out;
}
