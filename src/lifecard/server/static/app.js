// lifecard Studio: plain JS, no build step, no dependencies. Talks only to this server's own API.
// Everything from the server (card names, personas, error messages) is set as textContent, never HTML.
"use strict";

// ------------------------------------------------------------------ words (English and Chinese)

const STRINGS = {
  en: {
    "skip": "Skip to content", "studio": "Studio",
    "tagline": "One frozen model. Plug in a life card, and it becomes someone.",
    "lang.switch": "中文", "lang.label": "切换到中文",
    "key.label": "This server needs an API key. Paste yours (it stays in this browser):",
    "key.save": "Save key", "key.change": "API key", "key.bad": "That key was refused: {message}",
    "tabs.label": "Studio", "tabs.cards": "Cards", "tabs.make": "Make a card", "tabs.chat": "Chat",
    "tabs.dashboard": "Dashboard",
    "cards.title": "Your life cards",
    "cards.lead": "A life card is a small file that makes the model speak as one person. Use the cards here, bring your own, or make a new one under “Make a card”.",
    "cards.drop": "Drop a .card file or a character card (PNG, JSON or CHARX from SillyTavern, chub.ai, …) here.",
    "cards.choose": "Choose a file…", "cards.budget": "Character cards are baked with:",
    "cards.pending": "Cards being made", "cards.list": "Cards",
    "cards.empty": "No cards yet. Make one, or drop a file above.",
    "cards.uploading": "Uploading {file}…", "cards.uploaded": "Card “{name}” is ready.",
    "cards.replaced": "Card “{name}” was replaced by the new file.",
    "cards.importing": "Character card “{name}” imported: its life card is being made ({budget} budget).",
    "cards.deleted": "Card “{name}” deleted.", "cards.confirmDelete": "Delete the card “{name}”? This cannot be undone.",
    "cards.downloaded": "Saved {file}.",
    "card.base": "Base", "card.modules": "Modules", "card.size": "Size", "card.made": "Made",
    "card.eval": "Measured", "card.signature": "Signature", "card.owner": "by {owner}",
    "card.public": "public", "card.private": "private", "card.noModules": "persona only",
    "card.lora": "LoRA rank {rank} on {targets} projections × {layers} layers",
    "card.steer": "steering × {layers} layers",
    "card.budgetOf": "{budget} budget", "card.steps": "{steps} steps", "card.noEval": "not measured yet",
    "sig.absent": "unsigned", "sig.verified": "signed ✓", "sig.invalid": "signature INVALID",
    "sig.unverified": "signed (not checked)",
    "card.chat": "Chat", "card.download": "Download .card", "card.exportPng": "Export PNG",
    "card.exportJson": "Export JSON", "card.delete": "Delete",
    "card.chatLabel": "Chat with {name}", "card.downloadLabel": "Download {name} as a .card file",
    "card.exportPngLabel": "Export {name} as a character card PNG",
    "card.exportJsonLabel": "Export {name} as a character card JSON", "card.deleteLabel": "Delete {name}",
    "card.avatarOf": "Avatar of {name}",
    "make.title": "Make a card",
    "make.lead": "Describe a person in plain words. Only the name is required; the more you write, the more the card knows. The server turns it into a card and measures it.",
    "make.who": "Who they are", "make.name": "Name (required)", "make.name.hint": "e.g. Ada Quill",
    "make.id": "Card id", "make.id.hint": "Made from the name if empty: lowercase letters, digits, “-”.",
    "make.language": "Language of the card",
    "make.identity": "Identity: who they are, in their own words or yours",
    "make.tone": "How they speak", "make.tone.description": "Tone, described",
    "make.tone.like": "Speaks like… (a short instruction)",
    "make.tone.like.hint": "e.g. “speaks warmly, with sea metaphors”. Gives the card a steering vector.",
    "make.tone.unlike": "…and not like (its opposite)",
    "make.tone.markers": "Words that show the tone (comma-separated)",
    "make.prefs": "Preferences and values", "make.preferences": "Likes and dislikes (one per line)",
    "make.values": "What they care about (one per line)",
    "make.knowledge": "What they know about their life",
    "make.knowledge.hint": "Each fact with a few ways to ask about it; the last question is kept aside to test the card.",
    "make.knowledge.add": "+ Add a fact", "make.fact": "Fact",
    "make.questions": "Questions about it (one per line)", "make.answer": "A right answer contains (comma-separated)",
    "make.examples": "Example dialogues", "make.examples.add": "+ Add a dialogue",
    "make.user": "Someone says", "make.assistant": "They answer", "make.remove": "Remove",
    "make.more": "More: scenario, greeting, tags, creator", "make.scenario": "Scenario",
    "make.greeting": "Greeting (their first message)", "make.tags": "Tags (comma-separated)",
    "make.creator": "Creator", "make.budget": "How much work", "make.seed": "Seed",
    "make.submit": "Make the card", "make.needName": "Give the card a name first.",
    "make.started": "Started making “{name}”. You can leave this page; the work goes on.",
    "budget.tiny": "Tiny: a quick demo, seconds; the card will be weak",
    "budget.quick": "Quick: a few minutes on a laptop",
    "budget.standard": "Standard: the best card, several times longer",
    "budget.tiny.short": "tiny (a demo, seconds)", "budget.quick.short": "quick (minutes)",
    "budget.standard.short": "standard (best, longer)",
    "jobs.title": "Cards being made",
    "jobs.empty": "Nothing yet: the cards you make show up here with their progress.",
    "job.queued": "waiting", "job.running": "making", "job.done": "ready", "job.failed": "failed",
    "job.cancelled": "cancelled", "job.cancel": "Cancel", "job.cancelLabel": "Cancel making {name}",
    "job.chat": "Chat with it next to the base", "job.progress": "Progress of {name}",
    "job.stage": "{stage}: step {done} of {total}", "job.waiting": "waiting for its turn",
    "job.from": "from a character card", "job.took": "took {seconds}", "job.elapsed": "running for {time}", "job.plot": "Eval plot of {name} ({plot})",
    "time.s": "{s} s", "time.ms": "{m} min {s} s",
    "job.announce": "{name}: {status} {percent}%", "job.forge": "How it was made", "job.eval": "Measured",
    "job.restarted": "resumed after a server restart",
    "chat.title": "Chat", "chat.settings": "Chat settings", "chat.cards": "Cards to plug in",
    "chat.cards.hint": "Tick cards and set their strength; a change applies to the next reply. None ticked: the base model alone.",
    "chat.noCards": "No cards yet: make one first.", "chat.use": "Use {name}",
    "chat.strength": "Strength of {name}",
    "chat.side": "Side by side: the base next to the cards", "chat.sampling": "Sampling",
    "chat.temperature": "Temperature (0 = always the likeliest word)", "chat.top_p": "Top p",
    "chat.top_k": "Top k (0 = off)", "chat.repetition": "Repetition penalty (1 = off)",
    "chat.max_tokens": "Longest reply (tokens)", "chat.seed": "Seed (empty = random)",
    "chat.system": "System prompt (optional)", "chat.new": "New conversation",
    "chat.base": "Base model", "chat.withCards": "With {cards}", "chat.baseOnly": "Base model (no card)",
    "chat.message": "Message", "chat.placeholder": "Say something… (Enter sends, Shift+Enter for a new line)",
    "chat.send": "Send", "chat.stop": "Stop", "chat.you": "You", "chat.stopped": "(stopped)",
    "chat.empty": "(no words: the model ended its reply at once)",
    "chat.sideNeedsCards": "Side by side compares the base with cards: tick at least one card.",
    "dash.title": "Dashboard", "dash.lead": "What the server is doing now, refreshed every two seconds.",
    "dash.model": "Model", "dash.tps": "Tokens per second", "dash.tokens": "Tokens generated",
    "dash.rows": "Replies being written", "dash.queue": "Requests waiting", "dash.mounted": "Cards mounted",
    "dash.inUse": "{n} in use", "dash.memory": "Card memory (bank)", "dash.stored": "Cards stored",
    "dash.jobs": "Cards being made", "dash.jobsDetail": "{running} running, {queued} waiting",
    "dash.context": "context {context} tokens · {dtype}",
    "err.network": "The server cannot be reached: is `make run` still running?",
    "err.http": "The server answered {status}.",
  },
  zh: {
    "skip": "跳到正文", "studio": "工作室",
    "tagline": "一个冻结的模型。插上一张生命卡，它就成了那个人。",
    "lang.switch": "English", "lang.label": "Switch to English",
    "key.label": "此服务器需要 API 密钥。请粘贴你的密钥（只保存在本浏览器中）：",
    "key.save": "保存密钥", "key.change": "API 密钥", "key.bad": "密钥被拒绝：{message}",
    "tabs.label": "工作室", "tabs.cards": "卡片", "tabs.make": "制作卡片", "tabs.chat": "对话",
    "tabs.dashboard": "仪表盘",
    "cards.title": "你的生命卡",
    "cards.lead": "生命卡是一个小文件，能让模型以某个人的身份说话。可以使用这里的卡片、导入你自己的，或在“制作卡片”中新建一张。",
    "cards.drop": "把 .card 文件或角色卡（SillyTavern、chub.ai 等的 PNG、JSON 或 CHARX）拖到这里。",
    "cards.choose": "选择文件…", "cards.budget": "角色卡的烘焙强度：",
    "cards.pending": "正在制作的卡片", "cards.list": "卡片",
    "cards.empty": "还没有卡片。制作一张，或把文件拖到上方。",
    "cards.uploading": "正在上传 {file}…", "cards.uploaded": "卡片“{name}”已就绪。",
    "cards.replaced": "卡片“{name}”已被新文件替换。",
    "cards.importing": "已导入角色卡“{name}”：正在制作它的生命卡（{budget} 预算）。",
    "cards.deleted": "已删除卡片“{name}”。", "cards.confirmDelete": "删除卡片“{name}”？此操作无法撤销。",
    "cards.downloaded": "已保存 {file}。",
    "card.base": "基座", "card.modules": "模块", "card.size": "大小", "card.made": "制作",
    "card.eval": "评测", "card.signature": "签名", "card.owner": "所有者 {owner}",
    "card.public": "公开", "card.private": "私有", "card.noModules": "仅人设",
    "card.lora": "LoRA 秩 {rank}，{targets} 个投影 × {layers} 层", "card.steer": "引导向量 × {layers} 层",
    "card.budgetOf": "{budget} 预算", "card.steps": "{steps} 步", "card.noEval": "尚未评测",
    "sig.absent": "未签名", "sig.verified": "已签名 ✓", "sig.invalid": "签名无效",
    "sig.unverified": "已签名（未校验）",
    "card.chat": "对话", "card.download": "下载 .card", "card.exportPng": "导出 PNG",
    "card.exportJson": "导出 JSON", "card.delete": "删除",
    "card.chatLabel": "与 {name} 对话", "card.downloadLabel": "下载 {name} 的 .card 文件",
    "card.exportPngLabel": "把 {name} 导出为角色卡 PNG", "card.exportJsonLabel": "把 {name} 导出为角色卡 JSON",
    "card.deleteLabel": "删除 {name}", "card.avatarOf": "{name} 的头像",
    "make.title": "制作卡片",
    "make.lead": "用平常的话描述一个人。只有名字是必填的；写得越多，卡片知道得越多。服务器会把它做成卡片并评测。",
    "make.who": "他们是谁", "make.name": "名字（必填）", "make.name.hint": "例如：艾达·奎尔",
    "make.id": "卡片 ID", "make.id.hint": "留空则由名字生成：小写字母、数字、“-”。",
    "make.language": "卡片语言", "make.identity": "身份：他们是谁，用他们或你的话说",
    "make.tone": "说话方式", "make.tone.description": "语气描述",
    "make.tone.like": "说话像……（一句简短的指示）",
    "make.tone.like.hint": "例如“说话温暖，爱用大海的比喻”。会给卡片一个引导向量。",
    "make.tone.unlike": "……而不像（相反的说法）", "make.tone.markers": "体现语气的词（逗号分隔）",
    "make.prefs": "喜好与价值观", "make.preferences": "喜欢和不喜欢的（每行一条）",
    "make.values": "在乎的东西（每行一条）", "make.knowledge": "他们对自己生活的了解",
    "make.knowledge.hint": "每条事实配几种问法；最后一个问题会留出来检验卡片。",
    "make.knowledge.add": "+ 添加事实", "make.fact": "事实", "make.questions": "相关问题（每行一个）",
    "make.answer": "正确回答应包含（逗号分隔）", "make.examples": "示例对话", "make.examples.add": "+ 添加对话",
    "make.user": "有人说", "make.assistant": "他们回答", "make.remove": "移除",
    "make.more": "更多：场景、开场白、标签、作者", "make.scenario": "场景", "make.greeting": "开场白（第一句话）",
    "make.tags": "标签（逗号分隔）", "make.creator": "作者", "make.budget": "投入多少功夫", "make.seed": "随机种子",
    "make.submit": "制作卡片", "make.needName": "请先给卡片起个名字。",
    "make.started": "已开始制作“{name}”。你可以离开此页面，制作会继续。",
    "budget.tiny": "极小：演示用，几秒钟；卡片效果很弱", "budget.quick": "快速：笔记本上几分钟",
    "budget.standard": "标准：效果最好，耗时数倍",
    "budget.tiny.short": "极小（演示，几秒）", "budget.quick.short": "快速（几分钟）",
    "budget.standard.short": "标准（最好，更久）",
    "jobs.title": "正在制作的卡片", "jobs.empty": "还没有：你制作的卡片会带着进度显示在这里。",
    "job.queued": "排队中", "job.running": "制作中", "job.done": "已就绪", "job.failed": "失败",
    "job.cancelled": "已取消", "job.cancel": "取消", "job.cancelLabel": "取消制作 {name}",
    "job.chat": "与它对话，并与基座并排比较", "job.progress": "{name} 的进度",
    "job.stage": "{stage}：第 {done} / {total} 步", "job.waiting": "等待轮到它",
    "job.from": "来自角色卡", "job.took": "用时 {seconds}", "job.elapsed": "已运行 {time}", "job.plot": "{name} 的评测图（{plot}）",
    "time.s": "{s} 秒", "time.ms": "{m} 分 {s} 秒",
    "job.announce": "{name}：{status} {percent}%", "job.forge": "制作方式", "job.eval": "评测",
    "job.restarted": "服务器重启后已继续",
    "chat.title": "对话", "chat.settings": "对话设置", "chat.cards": "要插入的卡片",
    "chat.cards.hint": "勾选卡片并设置强度；改动从下一条回复起生效。不勾选：只用基座模型。",
    "chat.noCards": "还没有卡片：先制作一张。", "chat.use": "使用 {name}", "chat.strength": "{name} 的强度",
    "chat.side": "并排：基座与卡片对比", "chat.sampling": "采样",
    "chat.temperature": "温度（0 = 总选最可能的词）", "chat.top_p": "Top p", "chat.top_k": "Top k（0 = 关闭）",
    "chat.repetition": "重复惩罚（1 = 关闭）", "chat.max_tokens": "回复最长（token）",
    "chat.seed": "随机种子（留空 = 随机）", "chat.system": "系统提示（可选）", "chat.new": "新对话",
    "chat.base": "基座模型", "chat.withCards": "插入 {cards}", "chat.baseOnly": "基座模型（无卡片）",
    "chat.message": "消息", "chat.placeholder": "说点什么……（回车发送，Shift+回车换行）",
    "chat.send": "发送", "chat.stop": "停止", "chat.you": "你", "chat.stopped": "（已停止）",
    "chat.empty": "（没有文字：模型立刻结束了回复）",
    "chat.sideNeedsCards": "并排模式用于对比基座和卡片：请至少勾选一张卡片。",
    "dash.title": "仪表盘", "dash.lead": "服务器当前的状态，每两秒刷新。",
    "dash.model": "模型", "dash.tps": "每秒 token 数", "dash.tokens": "已生成 token",
    "dash.rows": "正在生成的回复", "dash.queue": "等待中的请求", "dash.mounted": "已挂载卡片",
    "dash.inUse": "{n} 个使用中", "dash.memory": "卡片内存（bank）", "dash.stored": "已存卡片",
    "dash.jobs": "正在制作的卡片", "dash.jobsDetail": "{running} 个进行中，{queued} 个等待",
    "dash.context": "上下文 {context} token · {dtype}",
    "err.network": "无法连接服务器：`make run` 还在运行吗？",
    "err.http": "服务器返回 {status}。",
  },
};

let lang = localStorage.getItem("lifecard.lang") ||
  ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en");

function t(key, vars) {
  let text = (STRINGS[lang] && STRINGS[lang][key]) ?? STRINGS.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** An element with attributes and children (strings become text nodes: never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

function applyWords() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of $$("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of $$("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of $$("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  const button = $("#lang");
  button.textContent = t("lang.switch");
  button.setAttribute("aria-label", t("lang.label"));
  button.lang = lang === "zh" ? "en" : "zh-CN";
  document.title = lang === "zh" ? "lifecard 工作室" : "lifecard Studio";
}

// ------------------------------------------------------------------ the API

const state = {
  key: localStorage.getItem("lifecard.key") || "",
  health: null,
  cards: [],
  jobs: [],
  tab: "cards",
};

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

/** fetch with the key; a non-2xx answer throws ApiError carrying the server's one-line message. */
async function call(method, path, { json, body, signal } = {}) {
  const headers = authHeaders();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: json !== undefined ? JSON.stringify(json) : body, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, t("err.network"));
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let message = t("err.http", { status: response.status }), code = null;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) ({ message, code } = body.error);
  } catch { /* not JSON */ }
  if (response.status === 401) showKeybar(message);
  return new ApiError(response.status, message, code);
}

const getJSON = async (path) => (await call("GET", path)).json();

function showKeybar(message) {
  const bar = $("#keybar");
  bar.hidden = false;
  $("#key-error").textContent = message && state.key ? t("key.bad", { message }) : "";
  if (!$("#key-input").value) $("#key-input").focus();
}

function say(target, text) { $(target).textContent = text; }

function fail(target, error) {
  if (error && error.name === "AbortError") return;
  $(target).textContent = error instanceof ApiError ? error.message : String(error);
}

// ------------------------------------------------------------------ tabs (the ARIA tabs pattern)

const TABS = ["cards", "make", "chat", "dashboard"];

function selectTab(name, { focus = false, push = true } = {}) {
  if (!TABS.includes(name)) name = "cards";
  state.tab = name;
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`), panel = $(`#panel-${tab}`);
    const on = tab === name;
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
    panel.hidden = !on;
  }
  if (focus) $(`#tab-${name}`).focus();
  if (push && location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "dashboard") refreshDashboard();
  if (name === "chat") renderMix();
}

function setupTabs() {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    button.addEventListener("click", () => selectTab(tab));
    button.addEventListener("keydown", (e) => {
      const i = TABS.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(TABS[(next + TABS.length) % TABS.length], { focus: true });
    });
  }
  window.addEventListener("hashchange", () => selectTab(location.hash.slice(1), { push: false }));
  selectTab(location.hash.slice(1) || "cards", { push: false });
}

// ------------------------------------------------------------------ formatting

function bytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function num(x) {
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString();
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return String(Number(Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3)));
}

/** The scalar figures of a nested dict, as [label, value] pairs ("recall", "drift", "sweep.0.drift" is skipped). */
function figures(obj, prefix = "") {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") out.push([prefix + k, v]);
    else if (v && typeof v === "object" && !Array.isArray(v) && !prefix) out.push(...figures(v, `${k}.`));
  }
  return out;
}

/** Only the numeric figures: what a tile or a result list has room for (notes and sweeps are left out). */
const numbers = (obj) => figures(obj).filter(([, v]) => typeof v === "number");

function hue(text) {
  let x = 0;
  for (const c of text) x = (x * 31 + c.codePointAt(0)) % 360;
  return x;
}

function avatar(card) {
  const name = card.name || card.id;
  if (card.avatar) {
    const img = h("img", { class: "avatar", alt: t("card.avatarOf", { name }) });
    blobUrl(`/v1/cards/${encodeURIComponent(card.id)}/avatar`).then((url) => { img.src = url; }).catch(() => {});
    return img;
  }
  const initial = h("div", { class: "avatar", "aria-hidden": "true", text: Array.from(name)[0]?.toUpperCase() || "?" });
  initial.style.background = `hsl(${hue(card.id)} 45% 36%)`;
  return initial;
}

const blobUrls = new Map();
async function blobUrl(path) {
  if (blobUrls.has(path)) return blobUrls.get(path);
  const url = URL.createObjectURL(await (await call("GET", path)).blob());
  blobUrls.set(path, url);
  return url;
}

async function download(path, filename) {
  const blob = await (await call("GET", path)).blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say("#cards-status", t("cards.downloaded", { file: filename }));
}

// ------------------------------------------------------------------ 1. the card gallery

async function refreshCards() {
  try {
    state.cards = (await getJSON("/v1/studio/cards")).data;
    $("#cards-error").textContent = "";
  } catch (e) {
    fail("#cards-error", e);
    return;
  }
  renderGallery();
  renderMix();
}

function moduleText(m) {
  if (m.kind === "lora") return t("card.lora", { rank: m.rank, targets: (m.targets || []).length, layers: m.layers });
  if (m.kind === "steer") return t("card.steer", { layers: m.layers });
  return m.kind;
}

function signatureBadge(status) {
  const [key, cls] = {
    absent: ["sig.absent", "none"], verified: ["sig.verified", "ok"], invalid: ["sig.invalid", "bad"],
  }[status] || ["sig.unverified", "none"];
  return h("span", { class: `badge ${cls}`, text: t(key) });
}

function cardTile(card) {
  const name = card.name || card.id;
  const persona = card.persona || {};
  const made = madeText(card.forge);
  const evals = numbers(card.eval).slice(0, 6);
  const facts = h("dl", { class: "facts" },
    h("dt", { text: t("card.base") }), h("dd", { text: card.base ? card.base.model_id : "–" }),
    h("dt", { text: t("card.modules") }),
    h("dd", { text: card.modules.length ? card.modules.map(moduleText).join("; ") : t("card.noModules") }),
    h("dt", { text: t("card.size") }), h("dd", { text: bytes(card.size) }),
    made && [h("dt", { text: t("card.made") }), h("dd", { text: made })],
    h("dt", { text: t("card.eval") }),
    h("dd", { text: evals.length ? evals.map(([k, v]) => `${k} ${num(v)}`).join(" · ") : t("card.noEval") }),
    h("dt", { text: t("card.signature") }), h("dd", {}, signatureBadge(card.signature)),
  );
  const id = encodeURIComponent(card.id);
  const actions = h("div", { class: "actions" },
    h("button", { type: "button", class: "primary", "aria-label": t("card.chatLabel", { name }), onclick: () => chatWith(card.id), text: t("card.chat") }),
    h("button", { type: "button", "aria-label": t("card.downloadLabel", { name }), onclick: () => download(`/v1/cards/${id}/file`, `${card.id}.card`).catch((e) => fail("#cards-error", e)), text: t("card.download") }),
    h("button", { type: "button", class: "ghost", "aria-label": t("card.exportPngLabel", { name }), onclick: () => download(`/v1/cards/${id}/export?format=png`, `${card.id}.png`).catch((e) => fail("#cards-error", e)), text: t("card.exportPng") }),
    h("button", { type: "button", class: "ghost", "aria-label": t("card.exportJsonLabel", { name }), onclick: () => download(`/v1/cards/${id}/export?format=json`, `${card.id}.json`).catch((e) => fail("#cards-error", e)), text: t("card.exportJson") }),
    card.can_manage && h("button", { type: "button", class: "danger", "aria-label": t("card.deleteLabel", { name }), onclick: () => deleteCard(card), text: t("card.delete") }),
  );
  return h("li", { "data-card": card.id },
    h("article", { class: "tile", "aria-labelledby": `card-${card.id}` },
      h("div", { class: "tile-head" }, avatar(card),
        h("div", {},
          h("h3", { id: `card-${card.id}`, text: name }),
          h("p", { class: "sub", text: `${card.id} · ${t("card.owner", { owner: card.owner })} · ${t(card.public ? "card.public" : "card.private")}` }))),
      (persona.description || card.description) && h("p", { text: clip(persona.description || card.description, 180) }),
      persona.tags && persona.tags.length && h("ul", { class: "tags", "aria-label": "tags" }, persona.tags.map((tag) => h("li", { text: tag }))),
      facts, actions));
}

/** "profile · tiny budget · 4 steps · 2.5 s": only what the card's `forge` field says. */
function madeText(forge) {
  if (!forge || !forge.method) return null;
  return [
    forge.method,
    forge.budget !== undefined && t("card.budgetOf", { budget: forge.budget }),
    forge.steps !== undefined && t("card.steps", { steps: forge.steps }),
    forge.seconds !== undefined && `${num(forge.seconds)} s`,
    forge.parts && forge.parts.length && forge.parts.map((p) => p.method).filter(Boolean).join(" + "),
  ].filter(Boolean).join(" · ");
}

function clip(text, n) { return text.length > n ? `${text.slice(0, n - 1)}…` : text; }

function renderGallery() {
  const list = $("#gallery");
  // keep focus where it was when the list is rebuilt (e.g. after a delete, on the next tile's first button)
  const focused = document.activeElement && list.contains(document.activeElement)
    ? document.activeElement.closest("li")?.dataset.card : null;
  list.replaceChildren(...state.cards.map(cardTile));
  $("#gallery-empty").hidden = state.cards.length > 0;
  if (focused) {
    const again = $(`li[data-card="${CSS.escape(focused)}"] button`, list) || $("button", list);
    again?.focus();
  }
}

async function deleteCard(card) {
  const name = card.name || card.id;
  if (!window.confirm(t("cards.confirmDelete", { name }))) return;
  const index = state.cards.findIndex((c) => c.id === card.id);
  try {
    await call("DELETE", `/v1/cards/${encodeURIComponent(card.id)}`);
    say("#cards-status", t("cards.deleted", { name }));
    $("#cards-error").textContent = "";
  } catch (e) {
    fail("#cards-error", e);
    return;
  }
  mix.delete(card.id);
  await refreshCards();
  const next = $$("#gallery > li")[Math.min(index, state.cards.length - 1)];
  ($("button", next || document.body) || $("#upload-input")).focus();
}

async function uploadFile(file) {
  $("#cards-error").textContent = "";
  say("#cards-status", t("cards.uploading", { file: file.name }));
  const form = new FormData();
  form.append("file", file, file.name);
  const budget = $("#import-budget").value;
  try {
    const response = await call("POST", `/v1/cards/import?budget=${encodeURIComponent(budget)}`, { body: form });
    const body = await response.json();
    if (body.object === "card") {
      say("#cards-status", t(response.status === 201 ? "cards.uploaded" : "cards.replaced", { name: body.card.name }));
      await refreshCards();
    } else {
      say("#cards-status", t("cards.importing", { name: body.job.name, budget }));
      await refreshJobs();
    }
  } catch (e) {
    say("#cards-status", "");
    fail("#cards-error", e);
  }
}

function setupUpload() {
  const drop = $("#drop"), input = $("#upload-input");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFile(input.files[0]).finally(() => { input.value = ""; });
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) uploadFile(file);
  });
  // a file dropped anywhere else must not make the browser leave the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ------------------------------------------------------------------ 2. make a card

let rowCount = 0;

function addRow(templateId, listId) {
  const row = $(`#${templateId}`).content.firstElementChild.cloneNode(true);
  for (const p of $$("p", row)) {
    const field = $("[data-field]", p), label = $("label", p);
    rowCount += 1;
    field.id = `row-${rowCount}`;
    label.htmlFor = field.id;
  }
  for (const el of $$("[data-i18n]", row)) el.textContent = t(el.dataset.i18n);
  $(".remove", row).addEventListener("click", () => {
    const list = row.parentElement;
    row.remove();
    ($("input, textarea", list) || $(`#${listId === "facts" ? "add-fact" : "add-dialogue"}`)).focus();
  });
  $(`#${listId}`).append(row);
  $("[data-field]", row).focus();
}

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);
const commas = (text) => text.split(/[,，、]/).map((s) => s.trim()).filter(Boolean);

/** The form as a profile (docs: lifecard.forge.profile); empty fields are left out. */
function profileOf(form) {
  const v = (name) => form.elements[name].value.trim();
  const profile = { name: v("name"), language: v("language") };
  if (v("id")) profile.id = v("id");
  for (const k of ["identity", "scenario", "greeting", "creator"]) if (v(k)) profile[k] = v(k);
  const tone = {};
  if (v("tone")) tone.description = v("tone");
  if (v("like")) tone.like = v("like");
  if (v("unlike")) tone.unlike = v("unlike");
  if (commas(v("markers")).length) tone.markers = commas(v("markers"));
  if (Object.keys(tone).length) profile.tone = tone;
  if (lines(v("preferences")).length) profile.preferences = lines(v("preferences"));
  if (lines(v("values")).length) profile.values = lines(v("values"));
  if (commas(v("tags")).length) profile.tags = commas(v("tags"));
  const facts = $$("#facts > li").map((row) => ({
    fact: $("[data-field=fact]", row).value.trim(),
    questions: lines($("[data-field=questions]", row).value),
    answer: commas($("[data-field=answer]", row).value),
  })).filter((f) => f.fact || f.questions.length || f.answer.length);
  if (facts.length) profile.knowledge = facts;
  const dialogues = $$("#dialogues > li").map((row) => [
    { user: $("[data-field=user]", row).value.trim() },
    { assistant: $("[data-field=assistant]", row).value.trim() },
  ].filter((turn) => Object.values(turn)[0])).filter((d) => d.length);
  if (dialogues.length) profile.examples = dialogues;
  return profile;
}

async function submitProfile(e) {
  e.preventDefault();
  const form = e.target, error = $("#make-error");
  error.textContent = "";
  if (!form.elements.name.value.trim()) {
    error.textContent = t("make.needName");
    form.elements.name.setAttribute("aria-invalid", "true");
    form.elements.name.focus();
    return;
  }
  form.elements.name.removeAttribute("aria-invalid");
  const button = $("#make-submit");
  button.disabled = true;
  try {
    const seed = Number.parseInt(form.elements.seed.value || "0", 10);
    const job = await (await call("POST", "/v1/forge", {
      json: { profile: profileOf(form), budget: form.elements.budget.value, seed: Number.isFinite(seed) ? seed : 0 },
    })).json();
    say("#jobs-status", t("make.started", { name: job.name }));
    state.jobs = [job, ...state.jobs.filter((j) => j.id !== job.id)];
    renderJobs();
    pollJobs();
    $(`#job-${job.id}`)?.focus();
  } catch (err) {
    fail("#make-error", err);
  } finally {
    button.disabled = false;
  }
}

let pollTimer = null;
const announced = new Map(); // job id -> what was last said about it (stage changes, not every step)

async function refreshJobs() {
  try {
    const before = new Map(state.jobs.map((j) => [j.id, j.status]));
    state.jobs = (await getJSON("/v1/forge")).data;
    renderJobs();
    const finished = state.jobs.filter((j) => j.status === "done" && before.get(j.id) && before.get(j.id) !== "done");
    if (finished.length) {
      await refreshCards();
      say("#cards-status", finished.map((j) => t("cards.uploaded", { name: j.name })).join(" "));
    }
  } catch (e) {
    fail("#make-error", e);
  }
  pollJobs();
}

function pollJobs() {
  clearTimeout(pollTimer);
  if (state.jobs.some((j) => j.status === "queued" || j.status === "running")) {
    pollTimer = setTimeout(refreshJobs, 700);
  }
}

function jobText(job) {
  if (job.status === "queued") return t("job.waiting");
  if (job.status === "running" && job.stage) return t("job.stage", { stage: job.stage, done: job.done, total: job.total });
  if (job.status === "done" && job.finished && job.started) return t("job.took", { seconds: duration(job.finished - job.started) });
  return "";
}

function jobItem(job, compact) {
  const active = job.status === "queued" || job.status === "running";
  const percent = Math.round(job.progress * 100);
  const bar = h("progress", { max: "100", value: String(percent), "aria-label": t("job.progress", { name: job.name }) });
  const figs = figures(job.figures);
  const result = job.status === "done" && !compact && h("div", { class: "result" },
    job.result.forge && job.result.forge.method && [h("h4", { text: t("job.forge") }), h("p", { text: madeText(job.result.forge) })],
    numbers(job.result.eval).length > 0 && [h("h4", { text: t("job.eval") }), factsList(numbers(job.result.eval))],
    job.result.plots && job.result.plots.length > 0 && h("div", { class: "plots" }, job.result.plots.map((name) => {
      const img = h("img", { alt: t("job.plot", { name: job.name, plot: name }) });
      blobUrl(`/v1/forge/${job.id}/plots/${encodeURIComponent(name)}`).then((url) => { img.src = url; }).catch(() => {});
      return img;
    })),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => chatWith(job.card_id, true), text: t("job.chat") })));
  return h("li", {},
    h("article", { class: `job ${job.status}`, id: `job-${job.id}`, tabindex: "-1", "aria-labelledby": `job-title-${job.id}` },
      h("h4", { id: `job-title-${job.id}` }, `${job.name} `, h("span", { class: `badge ${job.status === "failed" ? "bad" : job.status === "done" ? "ok" : "none"}`, text: t(`job.${job.status}`) })),
      h("p", { class: "sub", text: [job.card_id, job.budget, job.kind === "import" ? t("job.from") : null, job.restarts ? t("job.restarted") : null].filter(Boolean).join(" · ") }),
      active && bar,
      h("p", { class: "stage", text: [jobText(job), active ? `${percent}%` : null, job.status === "running" && job.started ? t("job.elapsed", { time: duration(Date.now() / 1000 - job.started) }) : null].filter(Boolean).join(" · ") }),
      active && figs.length > 0 && h("p", { class: "stage", text: figs.map(([k, v]) => `${k} ${num(v)}`).join(" · ") }),
      job.error && h("p", { class: "error", text: job.error }),
      result,
      active && h("div", { class: "actions" }, h("button", { type: "button", class: "danger", "aria-label": t("job.cancelLabel", { name: job.name }), onclick: () => cancelJob(job), text: t("job.cancel") }))));
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? t("time.s", { s }) : t("time.ms", { m: Math.floor(s / 60), s: s % 60 });
}

function factsList(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: num(v) })]));
}

function renderJobs() {
  const list = $("#jobs");
  const focusedId = document.activeElement?.closest?.(".job")?.id;
  const focusedClass = document.activeElement?.className;
  list.replaceChildren(...state.jobs.map((j) => jobItem(j, false)));
  $("#jobs-empty").hidden = state.jobs.length > 0;
  if (focusedId) {
    const again = document.getElementById(focusedId);
    ((focusedClass && $(`button.${focusedClass.split(" ")[0]}`, again)) || again)?.focus();
  }
  // the gallery shows the cards still being made, compact
  $("#pending").replaceChildren(...state.jobs.filter((j) => j.status === "queued" || j.status === "running").map((j) => jobItem(j, true)));
  for (const job of state.jobs) {
    const said = `${job.status}:${job.stage}`;
    if (announced.get(job.id) === said) continue;
    if (announced.has(job.id) || job.status === "running" || job.status === "queued") {
      say("#jobs-status", t("job.announce", { name: job.name, status: [t(`job.${job.status}`), job.stage].filter(Boolean).join(" "), percent: Math.round(job.progress * 100) }));
    }
    announced.set(job.id, said);
  }
}

async function cancelJob(job) {
  try {
    await call("POST", `/v1/forge/${job.id}/cancel`);
  } catch (e) {
    fail("#make-error", e);
  }
  await refreshJobs();
}

function setupMake() {
  $("#make-form").addEventListener("submit", submitProfile);
  $("#add-fact").addEventListener("click", () => addRow("fact-row", "facts"));
  $("#add-dialogue").addEventListener("click", () => addRow("dialogue-row", "dialogues"));
}

// ------------------------------------------------------------------ 3. chat

const mix = new Map(); // card id -> {use: bool, strength: number}
const chat = { cards: [], base: [], controller: null };

function chatWith(cardId, sideBySide = false) {
  for (const entry of mix.values()) entry.use = false;
  const card = state.cards.find((c) => c.id === cardId);
  mix.set(cardId, { use: true, strength: mix.get(cardId)?.strength ?? card?.strength?.default ?? 1 });
  if (sideBySide) $("#side-by-side").checked = true;
  newConversation();
  selectTab("chat");
  $("#prompt").focus();
}

function renderMix() {
  const list = $("#chat-cards");
  if (!list) return;
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.id : null;
  if (!state.cards.length) {
    list.replaceChildren(h("li", { class: "muted", text: t("chat.noCards") }));
  } else {
    list.replaceChildren(...state.cards.map((card) => {
      const name = card.name || card.id;
      const s = card.strength || { default: 1, min: 0, max: 2 };
      const entry = mix.get(card.id) || { use: false, strength: s.default };
      mix.set(card.id, entry);
      const key = card.id.replace(/[^a-zA-Z0-9_-]/g, "_");
      const out = h("output", { for: `strength-${key}`, text: entry.strength.toFixed(2) });
      const slider = h("input", {
        type: "range", id: `strength-${key}`, min: String(s.min), max: String(s.max), step: "0.05",
        value: String(entry.strength), "aria-valuetext": entry.strength.toFixed(2), disabled: !entry.use,
      });
      slider.addEventListener("input", () => {
        entry.strength = Number(slider.value);
        out.textContent = entry.strength.toFixed(2);
        slider.setAttribute("aria-valuetext", entry.strength.toFixed(2));
        columnTitles();
      });
      const box = h("input", { type: "checkbox", id: `use-${key}`, checked: entry.use });
      box.addEventListener("change", () => {
        entry.use = box.checked;
        slider.disabled = !box.checked;
        columnTitles();
      });
      return h("li", { "data-card": card.id },
        h("p", { class: "use" }, box, h("label", { for: `use-${key}`, text: name })),
        h("div", { class: "strength" }, h("label", { for: `strength-${key}`, text: t("chat.strength", { name }) }), slider, out));
    }));
  }
  if (focused) document.getElementById(focused)?.focus();
  columnTitles();
}

function chosenCards() {
  return state.cards.filter((c) => mix.get(c.id)?.use).map((c) => ({ id: c.id, strength: mix.get(c.id).strength, name: c.name || c.id }));
}

function columnTitles() {
  const cards = chosenCards();
  const side = $("#side-by-side").checked;
  $("#col-base").hidden = !side;
  $("#columns").classList.toggle("two", side);
  $("#col-cards-title").textContent = cards.length
    ? t("chat.withCards", { cards: cards.map((c) => `${c.name} ${c.strength.toFixed(2)}`).join(" + ") })
    : t("chat.baseOnly");
}

function newConversation() {
  chat.controller?.abort();
  chat.cards = [];
  chat.base = [];
  for (const log of $$("#columns .log")) log.replaceChildren();
  $("#chat-error").textContent = "";
  columnTitles();
}

function bubble(log, role, text) {
  const el = h("div", { class: `msg ${role}` },
    h("span", { class: "who", text: role === "user" ? t("chat.you") : "" }), h("span", { class: "text", text }));
  if (role !== "user") $(".who", el).remove();
  log.append(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function sampling() {
  const n = (id) => Number($(id).value);
  const body = {
    temperature: n("#s-temperature"), top_p: n("#s-top-p"), top_k: Math.round(n("#s-top-k")),
    repetition_penalty: n("#s-rep"), max_tokens: Math.max(1, Math.round(n("#s-max"))),
  };
  if ($("#s-seed").value !== "") body.seed = Math.round(n("#s-seed"));
  return body;
}

/** Stream one reply into `el`; resolves to its text. SSE: `data: {chunk}` events, then `data: [DONE]`. */
async function stream(body, el, signal) {
  const response = await call("POST", "/v1/chat/completions", { json: { ...body, stream: true }, signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const text = $(".text", el);
  let buffer = "", reply = "";
  el.setAttribute("aria-busy", "true");
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") return reply;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message);
        const piece = chunk.choices?.[0]?.delta?.content;
        if (piece) {
          reply += piece;
          text.textContent = reply;
          el.parentElement.scrollTop = el.parentElement.scrollHeight;
        }
      }
    }
    return reply;
  } finally {
    el.setAttribute("aria-busy", "false");
  }
}

async function send(e) {
  e?.preventDefault();
  const prompt = $("#prompt"), text = prompt.value.trim();
  if (!text || chat.controller) return;
  const cards = chosenCards();
  const side = $("#side-by-side").checked;
  $("#chat-error").textContent = "";
  if (side && !cards.length) {
    $("#chat-error").textContent = t("chat.sideNeedsCards");
    return;
  }
  prompt.value = "";
  const system = $("#system").value.trim();
  const params = sampling();
  const runs = [{ history: chat.cards, log: $("#col-cards .log"), cards }];
  if (side) runs.push({ history: chat.base, log: $("#col-base .log"), cards: [] });
  const controller = new AbortController();
  chat.controller = controller;
  $("#stop").disabled = false;
  $("#send").disabled = true;
  await Promise.all(runs.map(async (run) => {
    run.history.push({ role: "user", content: text });
    bubble(run.log, "user", text);
    const el = bubble(run.log, "assistant", "");
    const messages = [...(system ? [{ role: "system", content: system }] : []), ...run.history];
    const body = { model: "base", messages, ...params };
    if (run.cards.length) body.cards = run.cards.map(({ id, strength }) => ({ id, strength }));
    try {
      const reply = await stream(body, el, controller.signal);
      run.history.push({ role: "assistant", content: reply });
      if (!reply) el.append(h("span", { class: "muted", text: t("chat.empty") }));
    } catch (err) {
      if (err.name === "AbortError") {
        $(".text", el).textContent += ` ${t("chat.stopped")}`;
        run.history.push({ role: "assistant", content: $(".text", el).textContent });
      } else {
        el.classList.add("failed");
        run.history.pop(); // the question goes unanswered: leave it out of the next request
        fail("#chat-error", err);
      }
    }
  }));
  chat.controller = null;
  $("#stop").disabled = true;
  $("#send").disabled = false;
  prompt.focus();
}

function setupChat() {
  $("#chat-form").addEventListener("submit", send);
  $("#prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
  });
  $("#stop").addEventListener("click", () => chat.controller?.abort());
  $("#new-chat").addEventListener("click", newConversation);
  $("#side-by-side").addEventListener("change", columnTitles);
}

// ------------------------------------------------------------------ 4. dashboard

/** Prometheus text → {name: value} (labelled samples summed per name). */
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/);
    if (match) out[match[1]] = (out[match[1]] || 0) + Number(match[2]);
  }
  return out;
}

let dashTimer = null;

async function refreshDashboard() {
  clearTimeout(dashTimer);
  if (state.tab !== "dashboard") return;
  try {
    const [metricsText, health, jobs] = await Promise.all([
      fetch("/metrics").then((r) => r.text()),
      fetch("/health").then((r) => r.json()),
      getJSON("/v1/forge").catch(() => ({ data: [] })),
    ]);
    const m = parseMetrics(metricsText);
    const running = jobs.data.filter((j) => j.status === "running").length;
    const queued = jobs.data.filter((j) => j.status === "queued").length;
    const stat = (label, value, detail, fraction) => h("div", { class: "stat" },
      h("dt", { text: label }),
      h("dd", {}, value, detail && h("small", { text: detail }),
        fraction !== undefined && (() => {
          const meter = h("div", { class: "meter", "aria-hidden": "true" }, h("span"));
          meter.firstChild.style.width = `${Math.min(100, Math.round(fraction * 100))}%`;
          return meter;
        })()));
    $("#stats").replaceChildren(
      stat(t("dash.model"), health.model || "–", health.context ? t("dash.context", { context: health.context, dtype: health.dtype }) : null),
      stat(t("dash.tps"), num(Math.round((m.lifecard_tokens_per_second || 0) * 10) / 10)),
      stat(t("dash.tokens"), num(m.lifecard_tokens_generated_total || 0)),
      stat(t("dash.rows"), `${num(m.lifecard_rows_active || 0)} / ${num(m.lifecard_rows_max || 0)}`, null, (m.lifecard_rows_active || 0) / (m.lifecard_rows_max || 1)),
      stat(t("dash.queue"), `${num(m.lifecard_queue_waiting || 0)} / ${num(m.lifecard_queue_max || 0)}`, null, (m.lifecard_queue_waiting || 0) / (m.lifecard_queue_max || 1)),
      stat(t("dash.mounted"), num(m.lifecard_cards_mounted || 0), t("dash.inUse", { n: num(m.lifecard_cards_mounted_in_use || 0) })),
      stat(t("dash.memory"), bytes(m.lifecard_bank_bytes || 0)),
      stat(t("dash.stored"), num(m.lifecard_cards_stored || 0)),
      stat(t("dash.jobs"), num(running + queued), t("dash.jobsDetail", { running, queued })),
    );
    $("#dash-error").textContent = "";
  } catch (e) {
    fail("#dash-error", e instanceof ApiError ? e : new ApiError(0, t("err.network")));
  }
  dashTimer = setTimeout(refreshDashboard, 2000);
}

// ------------------------------------------------------------------ start

function setupKey() {
  $("#keybar").addEventListener("submit", async (e) => {
    e.preventDefault();
    state.key = $("#key-input").value.trim();
    localStorage.setItem("lifecard.key", state.key);
    $("#key-error").textContent = "";
    try {
      await getJSON("/v1/models");
      $("#keybar").hidden = true;
      $("#key-input").value = "";
      await Promise.all([refreshCards(), refreshJobs()]);
      document.body.dataset.ready = "true";
    } catch (err) {
      fail("#key-error", err);
    }
  });
  $("#key-button").addEventListener("click", () => showKeybar(""));
}

async function start() {
  applyWords();
  setupTabs();
  setupUpload();
  setupMake();
  setupChat();
  setupKey();
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("lifecard.lang", lang);
    applyWords();
    renderGallery();
    renderJobs();
    renderMix();
    if (state.tab === "dashboard") refreshDashboard();
  });
  try {
    state.health = await (await fetch("/health")).json();
  } catch { /* shown by the calls below */ }
  const needsKey = state.health && state.health.auth === "keys";
  $("#key-button").hidden = !needsKey;
  if (needsKey && !state.key) {
    showKeybar("");
    return;
  }
  await Promise.all([refreshCards(), refreshJobs()]);
  document.body.dataset.ready = "true"; // for tests: the first data has arrived
}

document.addEventListener("DOMContentLoaded", start);
