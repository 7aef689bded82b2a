// The book's live demos, running the book's own lib/ in the browser (bundled by tools/book.mjs with
// esbuild into site/assets/demos.js; lib/tf.ts's tfjs-node and other Node-only modules are empty there).
//
//   sampling playground: the tiny model's real next-character distribution for the reader's prompt,
//     reshaped by temperature, top-k and top-p (lib/sampling.ts), and text generated with a seed;
//   attention-head explorer: every head's weights on a sentence (decoderForward with attention: true).
//
// The weights come from site/models/<name>.js (a script, so pages work from file:// too), written by
// the book from build/models/<name>.safetensors (lib/train.ts's saveParams: the safetensors layout)
// and <name>.json ({config, vocab}). Backend: WebGL where the browser has it on a GPU, else WebAssembly
// (over http), else tfjs's plain-JavaScript cpu backend; the page says which (?backend=… picks one).
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { tf } from "../../lib/tf";
import { DecoderConfig, Params, decoderForward } from "../../lib/decoder";
import { applyTemperature, filterTopK, filterTopP, generate, softmax } from "../../lib/sampling";
import { CharTokenizer } from "../../lib/tokenizer";

interface ModelMeta { config: DecoderConfig; vocab: string[]; specials?: string[]; prompt?: string }
interface ModelScript { meta: ModelMeta; params: string }
interface Model { name: string; config: DecoderConfig; params: Params; tok: CharTokenizer; known: Set<string>; nParams: number }
interface Settings { temperature: number; topK: number; topP: number }

declare global {
  interface Window {
    BOOK_MODELS?: { [name: string]: ModelScript };
    bookDemos?: BookDemos;
  }
}

// ───────────── the model: safetensors bytes -> Params (the layout lib/train.ts saveParams writes) ─────────────

export function parseParams(bytes: Uint8Array): Params {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as
    { [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } };
  const params: Params = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = h.data_offsets;
    const raw = bytes.slice(8 + n + begin, 8 + n + end); // a copy: aligned for the typed array
    if (h.dtype === "F32") params[name] = tf.tensor(new Float32Array(raw.buffer), h.shape, "float32");
    else if (h.dtype === "I32") params[name] = tf.tensor(new Int32Array(raw.buffer), h.shape, "int32");
    else throw new Error(`params "${name}" is ${h.dtype}; the demos read F32 and I32`);
  }
  return params;
}

function base64Bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function loadModel(name: string): Model {
  const script = window.BOOK_MODELS?.[name];
  if (!script) throw new Error(`no model "${name}"`);
  const { config, vocab } = script.meta;
  const specials = script.meta.specials ?? vocab.slice(0, vocab.findIndex((v) => [...v].length === 1));
  const tok = CharTokenizer.fromVocab(vocab, specials);
  const params = parseParams(base64Bytes(script.params));
  const nParams = Object.values(params).reduce((a, t) => a + t.size, 0);
  return { name, config, params, tok, known: new Set(vocab.slice(specials.length)), nParams };
}

// ───────────── backend ─────────────

const scriptSrc = (document.currentScript as HTMLScriptElement | null)?.src ?? location.href;

/** A WebGL that runs on a GPU: a software rasteriser (SwiftShader, llvmpipe) is slower than WebAssembly. */
function hardwareWebGL(): boolean {
  try {
    const c = document.createElement("canvas");
    const gl = (c.getContext("webgl2") || c.getContext("webgl")) as WebGLRenderingContext | null;
    if (!gl) return false;
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
    return !/swiftshader|llvmpipe|software/i.test(renderer);
  } catch {
    return false;
  }
}

async function pickBackend(): Promise<string> {
  const want = new URLSearchParams(location.search).get("backend"); // ?backend=cpu|wasm|webgl to compare
  const tries = want ? [want] : ["webgl", "wasm", "cpu"];
  for (const b of tries) {
    if (b === "webgl" && !want && !hardwareWebGL()) continue;
    if (b === "wasm") {
      if (location.protocol === "file:") continue; // a page opened from disk cannot fetch the .wasm
      setWasmPaths(new URL("wasm/", scriptSrc).href);
    }
    try {
      if (await tf.setBackend(b)) {
        await tf.ready();
        return b;
      }
    } catch {
      // next one
    }
  }
  await tf.setBackend("cpu");
  return "cpu";
}

// ───────────── what both demos compute ─────────────

/** Characters of `text` the model knows, and the ones it does not (dropped). */
function encode(model: Model, text: string): { ids: number[]; ignored: string[] } {
  const keep: string[] = [];
  const ignored: string[] = [];
  for (const c of text) (model.known.has(c) ? keep : ignored).push(c);
  return { ids: keep.length ? model.tok.encode(keep.join("")) : [], ignored: [...new Set(ignored)] };
}

/** The logits of the next token after ids (the last contextLength of them): [V] numbers. */
function nextLogits(model: Model, ids: number[]): number[] {
  const x = ids.slice(-model.config.contextLength);
  return tf.tidy(() => {
    const { logits } = decoderForward(model.params, model.config, tf.tensor2d([x], [1, x.length], "int32"));
    return logits.slice([0, x.length - 1, 0], [1, 1, model.config.vocabSize]).reshape([model.config.vocabSize]).arraySync() as number[];
  });
}

/** P from the model and P′ after temperature, top-k and top-p (lib/sampling.ts, the order generate uses). */
function distribution(model: Model, ids: number[], s: Settings): { p: number[]; q: number[]; kept: number } {
  const row = nextLogits(model, ids);
  const p = softmax([row])[0];
  let q: number[];
  if (s.temperature === 0) {
    const best = row.indexOf(Math.max(...row));
    q = row.map((_, i) => (i === best ? 1 : 0));
  } else {
    let x = applyTemperature([row], s.temperature);
    if (s.topK > 0) x = filterTopK(x, Math.min(s.topK, model.config.vocabSize));
    if (s.topP < 1) x = filterTopP(x, s.topP);
    q = softmax(x)[0];
  }
  return { p, q, kept: q.filter((v) => v > 0).length };
}

function generateText(model: Model, prompt: string, s: Settings & { seed: number; length: number }): { ids: number[]; prompt: number[]; text: string } {
  const { ids } = encode(model, prompt);
  const start = ids.length ? ids : [model.tok.encode(" ")[0] ?? 0];
  const out = generate({ params: model.params, config: model.config }, start, {
    maxNewTokens: s.length, seed: s.seed, temperature: s.temperature,
    topK: s.topK > 0 ? Math.min(s.topK, model.config.vocabSize) : undefined, topP: s.topP < 1 ? s.topP : undefined,
  }) as number[];
  return { ids: out.slice(start.length), prompt: start, text: model.tok.decode(out.slice(start.length)) };
}

/** Attention weights on a sentence: per layer, per head, [T][T]. */
function attention(model: Model, ids: number[]): number[][][][] {
  const x = ids.slice(0, model.config.contextLength);
  return tf.tidy(() => {
    const out = decoderForward(model.params, model.config, tf.tensor2d([x], [1, x.length], "int32"), { attention: true });
    return (out.attention ?? []).map((w) => (w.arraySync() as number[][][][])[0]);
  });
}

// ───────────── the pages ─────────────

const show = (c: string) => (c === " " ? "␣" : c === "\n" ? "↵" : c === "\t" ? "⇥" : c);
type Labels = { [k: string]: string };

function settingsOf(root: HTMLElement): Settings {
  const v = (n: string) => Number((root.querySelector(`input[name=${n}]`) as HTMLInputElement).value);
  return { temperature: v("temperature"), topK: v("topk"), topP: v("topp") };
}

function setupSampling(root: HTMLElement, model: Model, t: Labels): void {
  const q = <E extends Element>(sel: string) => root.querySelector(sel) as E;
  const promptEl = q<HTMLInputElement>("input[name=prompt]");
  const suggested = window.BOOK_MODELS?.[model.name]?.meta.prompt;
  if (suggested) promptEl.value = suggested;
  const bars = q<HTMLDivElement>(".bars");
  let pending = 0;
  const update = () => {
    pending = 0;
    const s = settingsOf(root);
    q<HTMLOutputElement>("output[name=temperature-value]").value = s.temperature.toFixed(2);
    q<HTMLOutputElement>("output[name=topk-value]").value = s.topK > 0 ? String(s.topK) : t.off;
    q<HTMLOutputElement>("output[name=topp-value]").value = s.topP.toFixed(2);
    const { ids, ignored } = encode(model, promptEl.value);
    const ign = q<HTMLParagraphElement>(".demo-ignored");
    ign.hidden = ignored.length === 0;
    ign.textContent = ignored.length ? t.ignored + ignored.map(show).join(" ") : "";
    const context = ids.length ? ids : encode(model, " ").ids;
    const d = distribution(model, context, s);
    const order = d.p.map((_, i) => i).sort((a, b) => d.p[b] - d.p[a] || a - b).slice(0, 12);
    const pct = (x: number) => (x * 100).toFixed(1) + "%";
    const rows = order.map((i) => {
      const gone = d.q[i] === 0 ? " gone" : "";
      return `<div class="tok${gone}" title="id ${i}">${escape(show(model.tok.vocab[i]))}</div>` +
        `<div class="track${gone}"><span class="p0" style="width:${(d.p[i] * 100).toFixed(2)}%"></span><span class="p1" style="width:${(d.q[i] * 100).toFixed(2)}%"></span></div>` +
        `<div class="num${gone}">${pct(d.q[i])}</div>`;
    });
    bars.innerHTML = rows.join("") + `<div class="legend"><i style="background:#c9d6e6"></i>${t.before}<i style="background:var(--accent)"></i>${t.after}</div>`;
    bars.dataset.kept = String(d.kept);
    bars.dataset.top = String(order[0]);
    bars.dataset.q = d.q.map((x) => x.toFixed(6)).join(",");
    q<HTMLParagraphElement>(".demo-summary").textContent = t.kept.replace("{kept}", String(d.kept)).replace("{V}", String(model.config.vocabSize));
  };
  const schedule = () => {
    if (!pending) pending = requestAnimationFrame(update);
  };
  root.querySelectorAll("input[type=range]").forEach((el) => el.addEventListener("input", schedule));
  promptEl.addEventListener("input", schedule);
  const button = q<HTMLButtonElement>("button[name=generate]");
  const output = q<HTMLPreElement>(".demo-output");
  button.addEventListener("click", () => {
    button.disabled = true;
    output.textContent = "…";
    setTimeout(() => {
      try {
        const s = settingsOf(root);
        const seed = Math.trunc(Number(q<HTMLInputElement>("input[name=seed]").value) || 0);
        const length = Math.max(1, Math.min(200, Math.trunc(Number(q<HTMLInputElement>("input[name=length]").value) || 80)));
        const g = generateText(model, promptEl.value, { ...s, seed, length });
        output.innerHTML = `${escape(model.tok.decode(g.prompt))}<b>${escape(g.text)}</b>`;
        output.dataset.ids = g.ids.join(",");
      } catch (e) {
        output.textContent = String((e as Error).message ?? e);
      } finally {
        button.disabled = false;
      }
    }, 20);
  });
  update();
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function setupAttention(root: HTMLElement, model: Model, t: Labels): void {
  const input = root.querySelector("input[name=sentence]") as HTMLInputElement;
  const select = root.querySelector("select[name=layer]") as HTMLSelectElement;
  const heads = root.querySelector(".heads") as HTMLDivElement;
  const hover = root.querySelector(".demo-hover") as HTMLParagraphElement;
  select.innerHTML = Array.from({ length: model.config.nLayers }, (_, l) => `<option value="${l}">${l}</option>`).join("");
  let weights: number[][][][] = [];
  let chars: string[] = [];
  const draw = () => {
    const layer = weights[Number(select.value)] ?? [];
    heads.innerHTML = "";
    layer.forEach((w, h) => {
      const T = w.length;
      const cell = Math.max(6, Math.floor(288 / Math.max(T, 1)));
      const pad = cell >= 10 ? cell : 0; // room for the characters along the top and the left
      const fig = document.createElement("figure");
      fig.className = "head";
      const canvas = document.createElement("canvas");
      canvas.width = pad + T * cell;
      canvas.height = pad + T * cell;
      canvas.dataset.head = String(h);
      const g = canvas.getContext("2d");
      if (g) {
        g.fillStyle = "#ffffff";
        g.fillRect(0, 0, canvas.width, canvas.height);
        for (let i = 0; i < T; i++)
          for (let j = 0; j < T; j++) {
            const a = w[i][j];
            g.fillStyle = `rgba(11,99,182,${a.toFixed(3)})`;
            g.fillRect(pad + j * cell, pad + i * cell, cell, cell);
          }
        if (pad) {
          g.fillStyle = "#5b6572";
          g.font = `${Math.floor(cell * 0.75)}px monospace`;
          g.textAlign = "center";
          g.textBaseline = "middle";
          chars.forEach((c, i) => {
            g.fillText(show(c), pad + i * cell + cell / 2, pad / 2);
            g.fillText(show(c), pad / 2, pad + i * cell + cell / 2);
          });
        }
      }
      const at = (ev: PointerEvent): [number, number] | null => {
        const r = canvas.getBoundingClientRect();
        const sx = canvas.width / r.width;
        const x = (ev.clientX - r.left) * sx - pad, y = (ev.clientY - r.top) * sx - pad;
        const i = Math.floor(y / cell), j = Math.floor(x / cell);
        return i >= 0 && j >= 0 && i < T && j < T ? [i, j] : null;
      };
      canvas.addEventListener("pointermove", (ev) => {
        const ij = at(ev);
        if (ij) hover.textContent = `${t.layer} ${select.value} · head ${h}: "${show(chars[ij[0]])}" (${ij[0]}) → "${show(chars[ij[1]])}" (${ij[1]}) = ${w[ij[0]][ij[1]].toFixed(3)}`;
      });
      const cap = document.createElement("figcaption");
      cap.textContent = `head ${h}`;
      fig.append(canvas, cap);
      heads.append(fig);
    });
    heads.dataset.heads = String(layer.length);
  };
  const update = () => {
    const { ids, ignored } = encode(model, input.value);
    const ign = root.querySelector(".demo-ignored") as HTMLParagraphElement;
    ign.hidden = ignored.length === 0;
    ign.textContent = ignored.length ? t.ignored + ignored.map(show).join(" ") : "";
    const use = ids.slice(0, Math.min(model.config.contextLength, 48));
    chars = use.map((i) => model.tok.vocab[i]);
    weights = use.length ? attention(model, use) : [];
    draw();
  };
  let pending = 0;
  input.addEventListener("input", () => {
    if (!pending) pending = requestAnimationFrame(() => { pending = 0; update(); });
  });
  select.addEventListener("change", draw);
  update();
}

// ───────────── start ─────────────

export interface BookDemos {
  backend: string;
  model: string;
  /** The tokens generate() gives for this prompt and these settings (what the Generate button shows). */
  generate(prompt: string, o: Partial<Settings> & { seed?: number; length?: number }): { ids: number[]; text: string };
  distribution(prompt: string, o: Partial<Settings>): { p: number[]; q: number[]; kept: number };
}

async function main(): Promise<void> {
  const roots = Array.from(document.querySelectorAll<HTMLElement>(".demo[data-demo]"));
  if (roots.length === 0) return;
  const status = (text: string, error = false) => roots.forEach((r) => {
    const el = r.querySelector(".demo-status") as HTMLElement;
    el.textContent = text;
    el.classList.toggle("error", error);
  });
  const name = roots[0].dataset.model ?? "overview-en";
  const t = JSON.parse(roots[0].dataset.labels ?? "{}") as Labels;
  if (!window.BOOK_MODELS?.[name]) {
    status(t.noModel ?? `no model ${name}`, true);
    document.documentElement.dataset.demos = "no-model";
    return;
  }
  const backend = await pickBackend();
  const model = loadModel(name);
  const c = model.config;
  status(`${t.backend}${backend} · ${model.name}: ${(model.nParams / 1000).toFixed(0)}k params, ${c.nLayers} × ${c.nHeads} heads, d = ${c.dModel}, ${c.vocabSize} characters, context ${c.contextLength}`);
  for (const r of roots) {
    const labels = JSON.parse(r.dataset.labels ?? "{}") as Labels;
    if (r.dataset.demo === "sampling") setupSampling(r, model, labels);
    if (r.dataset.demo === "attention") setupAttention(r, model, labels);
  }
  const full = (o: Partial<Settings>): Settings => ({ temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1 });
  window.bookDemos = {
    backend,
    model: name,
    generate: (prompt, o) => generateText(model, prompt, { ...full(o), seed: o.seed ?? 42, length: o.length ?? 40 }),
    distribution: (prompt, o) => distribution(model, encode(model, prompt).ids, full(o)),
  };
  document.documentElement.dataset.demos = "ready";
}

main().catch((e) => {
  document.documentElement.dataset.demos = "failed";
  document.querySelectorAll(".demo-status").forEach((el) => {
    el.textContent = String((e as Error).message ?? e);
    el.classList.add("error");
  });
  console.error(e);
});
