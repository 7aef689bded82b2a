// A small TypeScript highlighter for the book's code cells: one sticky regex over the source, each
// token wrapped in <span class="t-…">. Everything is HTML-escaped; unknown text passes through as is.
// It only colours (comments, strings, numbers, keywords, types, calls); it never changes the code.

const KEYWORDS = new Set(
  ("abstract as async await break case catch class const continue debugger declare default delete do else enum " +
    "export extends finally for from function get if implements import in instanceof interface keyof let namespace " +
    "new of private protected public readonly return satisfies set static super switch throw try type typeof var " +
    "void while with yield").split(" "),
);
const LITERALS = new Set(["true", "false", "null", "undefined", "this", "NaN", "Infinity"]);
const TYPES = new Set(["number", "string", "boolean", "any", "unknown", "never", "object", "bigint", "symbol"]);

const TOKEN = new RegExp(
  [
    String.raw`(?<comment>\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$))`,
    String.raw`(?<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|\`(?:[^\`\\]|\\[\s\S])*\`?)`,
    String.raw`(?<number>\b(?:0[xX][\da-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?n?)\b|\.\d+(?:[eE][+-]?\d+)?\b)`,
    String.raw`(?<word>[A-Za-z_$][\w$]*)`,
    String.raw`(?<space>\s+)`,
    String.raw`(?<other>[\s\S])`,
  ].join("|"),
  "gy",
);

export const escapeHtml = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** TypeScript source -> HTML (escaped, with <span class="t-kind"> tokens). */
export function highlight(code) {
  let out = "";
  let m;
  TOKEN.lastIndex = 0;
  const wrap = (kind, text) => `<span class="t-${kind}">${escapeHtml(text)}</span>`;
  while ((m = TOKEN.exec(code)) !== null) {
    const g = m.groups;
    const text = m[0];
    if (g.comment !== undefined) out += wrap("c", text);
    else if (g.string !== undefined) out += wrap("s", text);
    else if (g.number !== undefined) out += wrap("n", text);
    else if (g.word !== undefined) {
      const after = code.slice(TOKEN.lastIndex).match(/^\s*(\(|<[\w\s,[\]]*>\s*\()/);
      const before = code.slice(0, m.index).match(/(\.|\bfunction\s+|\bnew\s+)$/);
      if (KEYWORDS.has(text) && !(before && before[1] === ".")) out += wrap("k", text);
      else if (LITERALS.has(text)) out += wrap("l", text);
      else if (TYPES.has(text)) out += wrap("y", text);
      else if (after) out += wrap("f", text);
      else if (/^[A-Z]/.test(text)) out += wrap("y", text);
      else out += escapeHtml(text);
    } else out += escapeHtml(text);
    if (text.length === 0) break;
  }
  return out;
}
