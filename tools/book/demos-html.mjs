// The markup of the live demos; tools/book/demos.ts (bundled to site/assets/demos.js) brings it to life.
// A notebook places one inline with a line `<!-- demo: sampling -->` or `<!-- demo: attention -->` in a
// markdown cell (invisible in JupyterLab); the playground page of each edition has both.
import { escapeHtml } from "./highlight.mjs";

const L = {
  zh: {
    samplingTitle: "采样游乐场",
    samplingIntro: "下面是本书小模型（第 0 节训练的字符级解码器）对你输入的提示给出的下一个字符的真实概率。拖动滑块：温度 T 把分布变尖或变平，top-k 只留最可能的 k 个，top-p 只留累计概率达到 p 的最小集合。",
    prompt: "提示",
    temperature: "温度 T",
    greedyNote: "T = 0 即贪心",
    topK: "top-k",
    off: "关",
    topP: "top-p",
    seed: "种子",
    length: "长度",
    generate: "生成",
    kept: "保留 {kept} / {V} 个字符（P′ 在它们上面归一）。",
    before: "原始 P",
    after: "调整后 P′",
    loading: "正在加载模型……",
    attentionTitle: "注意力头浏览器",
    attentionIntro: "同一个小模型读一句话时，每一层的每个注意力头把每个位置（行）的注意力分给它之前的哪些位置（列）。颜色越深，权重越大；把鼠标移到格子上看具体数值。",
    sentence: "句子",
    layer: "层",
    noModel: "模型还没有导出：先运行笔记本 00-overview（npm run notebooks -- 00-overview），再 npm run book。",
    backend: "运行在浏览器里，tfjs 后端：",
    ignored: "词表里没有、已忽略的字符：",
  },
  en: {
    samplingTitle: "Sampling playground",
    samplingIntro: "Below is the real next-character distribution of the book's tiny model (the character-level decoder trained in section 0) for the prompt you type. Move the sliders: temperature T sharpens or flattens it, top-k keeps the k most likely characters, top-p keeps the smallest set whose probability adds up to p.",
    prompt: "Prompt",
    temperature: "Temperature T",
    greedyNote: "T = 0 is greedy",
    topK: "top-k",
    off: "off",
    topP: "top-p",
    seed: "Seed",
    length: "Length",
    generate: "Generate",
    kept: "Kept {kept} of {V} characters (P′ renormalised over them).",
    before: "model P",
    after: "reshaped P′",
    loading: "Loading the model…",
    attentionTitle: "Attention-head explorer",
    attentionIntro: "As the same tiny model reads a sentence, each head of each layer spreads the attention of every position (row) over the positions before it (columns). Darker means more weight; hover a cell for the number.",
    sentence: "Sentence",
    layer: "Layer",
    noModel: "The model has not been exported yet: run notebook 00-overview (npm run notebooks -- 00-overview), then npm run book.",
    backend: "Running in your browser, tfjs backend: ",
    ignored: "Not in the vocabulary, ignored: ",
  },
};

export const demoLabels = L;

export function samplingDemo(lang, model) {
  const t = L[lang];
  return `<section class="demo demo-sampling" data-demo="sampling" data-model="${escapeHtml(model)}" data-lang="${lang}" data-labels="${escapeHtml(JSON.stringify(t))}">
<h3>${t.samplingTitle}</h3>
<p>${t.samplingIntro}</p>
<div class="demo-status" aria-live="polite">${t.loading}</div>
<label class="wide">${t.prompt} <input type="text" name="prompt" value="${model.endsWith("-zh") ? "床前明月光，" : "Once upon a time"}" autocomplete="off" spellcheck="false"></label>
<div class="controls">
  <label>${t.temperature} <output name="temperature-value">1.00</output><input type="range" name="temperature" min="0" max="2" step="0.05" value="1"><small>${t.greedyNote}</small></label>
  <label>${t.topK} <output name="topk-value">${t.off}</output><input type="range" name="topk" min="0" max="40" step="1" value="0"><small>0 = ${t.off}</small></label>
  <label>${t.topP} <output name="topp-value">1.00</output><input type="range" name="topp" min="0.05" max="1" step="0.01" value="1"><small>1 = ${t.off}</small></label>
</div>
<p class="demo-ignored" hidden></p>
<p class="demo-summary"></p>
<div class="bars" role="img" aria-label="${t.after}"></div>
<div class="controls generate">
  <label>${t.seed} <input type="number" name="seed" value="42" step="1"></label>
  <label>${t.length} <input type="number" name="length" value="80" min="1" max="200" step="1"></label>
  <button type="button" name="generate">${t.generate}</button>
</div>
<pre class="demo-output" aria-live="polite"></pre>
</section>`;
}

export function attentionDemo(lang, model) {
  const t = L[lang];
  return `<section class="demo demo-attention" data-demo="attention" data-model="${escapeHtml(model)}" data-lang="${lang}" data-labels="${escapeHtml(JSON.stringify(t))}">
<h3>${t.attentionTitle}</h3>
<p>${t.attentionIntro}</p>
<div class="demo-status" aria-live="polite">${t.loading}</div>
<label class="wide">${t.sentence} <input type="text" name="sentence" value="${model.endsWith("-zh") ? "春眠不觉晓，处处闻啼鸟。" : "The king and the queen"}" autocomplete="off" spellcheck="false"></label>
<div class="controls"><label>${t.layer} <select name="layer"></select></label></div>
<p class="demo-ignored" hidden></p>
<div class="heads"></div>
<p class="demo-hover" aria-live="polite">&nbsp;</p>
</section>`;
}
