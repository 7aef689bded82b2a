// Executes the book's notebooks headless, renders their figures, and checks them against figures/.
//
//   node tools/run-notebooks.mjs [names…]             execute, render, check figures/ (what npm test does)
//   node tools/run-notebooks.mjs --figures [names…]   execute, render, and write figures/ (npm run figures)
//   node tools/run-notebooks.mjs --twice=00-overview   run that one again from an empty cache: specs must be identical
//
// The two editions share their code cells, so each notebook runs once (the zh edition, the chapter's
// language) and its outputs are copied into the en edition. Executed copies go to build/executed/,
// each plot's SVG is added to them as the static fallback (image/svg+xml beside the plotly JSON).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderAll, specFiles } from "./figures.mjs";
import { nbDir, sources } from "./notebooks.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const build = path.join(root, "build");
const executed = path.join(build, "executed");
const figuresDir = path.join(root, "figures");
const py = path.join(root, ".venv", "bin", "python");

function execute(name, figOut, env = {}) {
  fs.rmSync(path.join(figOut, name), { recursive: true, force: true });
  const start = Date.now();
  const r = spawnSync(py, [path.join(root, "tools", "execute.py"), path.join(nbDir, `${name}.zh.ipynb`), path.join(executed, `${name}.zh.ipynb`)], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, BOOK_FIGURES_DIR: figOut, TF_CPP_MIN_LOG_LEVEL: "2", ...env },
  });
  const seconds = (Date.now() - start) / 1000;
  if (r.status !== 0) throw new Error(`notebook ${name} failed (exit ${r.status}) after ${seconds.toFixed(1)} s`);
  return seconds;
}

/** The en edition: its own markdown, the outputs of the executed zh edition's identical code cells. */
function transplant(name) {
  const ran = JSON.parse(fs.readFileSync(path.join(executed, `${name}.zh.ipynb`), "utf8"));
  const en = JSON.parse(fs.readFileSync(path.join(nbDir, `${name}.en.ipynb`), "utf8"));
  en.cells.forEach((cell, i) => {
    if (cell.cell_type !== "code") return;
    const src = ran.cells[i];
    if (src?.cell_type !== "code" || src.source.join("") !== cell.source.join("")) throw new Error(`${name}: code cell ${i} differs between editions; run node tools/notebooks.mjs`);
    cell.outputs = src.outputs;
    cell.execution_count = src.execution_count;
  });
  en.metadata = { ...ran.metadata, book: en.metadata.book };
  fs.writeFileSync(path.join(executed, `${name}.en.ipynb`), JSON.stringify(en, null, 1) + "\n");
}

/** Add each plot's rendered SVG to the executed copies (static fallback for viewers without plotly). */
function addFallbacks(name, figOut) {
  for (const lang of ["zh", "en"]) {
    const file = path.join(executed, `${name}.${lang}.ipynb`);
    const nb = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const cell of nb.cells)
      for (const out of cell.outputs ?? []) {
        const id = out.data?.["text/plain"]?.join?.("").match(/^\[figure (.+)\]$/)?.[1];
        const svg = id && path.join(figOut, `${id}.svg`);
        if (svg && fs.existsSync(svg)) out.data["image/svg+xml"] = fs.readFileSync(svg, "utf8");
      }
    fs.writeFileSync(file, JSON.stringify(nb, null, 1) + "\n");
  }
}

/** A figure of wall-clock measurements (show(..., {measured: true})): only its presence is checked. */
const measured = (file) => JSON.parse(fs.readFileSync(file, "utf8")).measured === true;

/** Compare freshly recorded specs with the committed ones; returns a list of problems. */
function compareFigures(names, figOut) {
  const problems = [];
  for (const name of names) {
    const fresh = specFiles(path.join(figOut, name)).map((f) => path.relative(figOut, f));
    const committed = specFiles(path.join(figuresDir, name)).map((f) => path.relative(figuresDir, f));
    for (const f of fresh) {
      const old = path.join(figuresDir, f);
      if (!fs.existsSync(old)) problems.push(`figures/${f} is missing`);
      else if (fs.readFileSync(old, "utf8") !== fs.readFileSync(path.join(figOut, f), "utf8") && !(measured(old) && measured(path.join(figOut, f))))
        problems.push(`figures/${f} is stale (the code now draws something else)`);
      else if (!fs.existsSync(old.replace(/\.json$/, ".svg"))) problems.push(`figures/${f.replace(/\.json$/, ".svg")} is missing`);
    }
    for (const f of committed) if (!fresh.includes(f)) problems.push(`figures/${f} is no longer drawn by any cell`);
  }
  return problems;
}

async function main() {
  const args = process.argv.slice(2);
  const write = args.includes("--figures");
  const twice = args.find((a) => a.startsWith("--twice="))?.slice(8);
  const all = sources().filter((n) => !n.startsWith("99-") || args.includes(n));
  const names = args.filter((a) => !a.startsWith("--"));
  for (const n of names) if (!sources().includes(n)) throw new Error(`no notebook "${n}"; there are: ${sources().join(", ")}`);
  const todo = names.length ? names : all;
  const figOut = path.join(build, "figures");
  fs.mkdirSync(executed, { recursive: true });
  const times = [];
  for (const name of todo) {
    console.log(`notebooks: running ${name} ...`);
    const seconds = execute(name, figOut);
    transplant(name);
    times.push([name, seconds]);
    if (name === twice) {
      // the second run trains from scratch in an empty cache of its own: the same seed, the same bytes
      const again = path.join(build, "figures-again");
      const cache = path.join(build, "cache-again");
      fs.rmSync(cache, { recursive: true, force: true });
      execute(name, again, { BOOK_CACHE: cache });
      const a = specFiles(path.join(figOut, name)).map((f) => fs.readFileSync(f, "utf8"));
      const b = specFiles(path.join(again, name)).map((f) => fs.readFileSync(f, "utf8"));
      if (a.length === 0 || a.join() !== b.join()) throw new Error(`${name}: two runs gave different figure specs`);
      console.log(`notebooks: ${name} ran twice: ${a.length} figure specs byte-identical`);
    }
  }
  const specs = todo.flatMap((n) => specFiles(path.join(figOut, n)));
  const start = Date.now();
  await renderAll(specs);
  console.log(`figures: rendered ${specs.length} SVG in ${((Date.now() - start) / 1000).toFixed(1)} s`);
  for (const name of todo) addFallbacks(name, figOut);
  if (write) {
    for (const name of todo) {
      fs.rmSync(path.join(figuresDir, name), { recursive: true, force: true });
      if (fs.existsSync(path.join(figOut, name))) fs.cpSync(path.join(figOut, name), path.join(figuresDir, name), { recursive: true });
    }
    console.log(`figures: wrote figures/ for ${todo.join(", ")}`);
  }
  for (const [name, s] of times) console.log(`notebooks: ${name.padEnd(28)} ${s.toFixed(1).padStart(6)} s`);
  console.log(`notebooks: ${times.length} executed headless, ${times.reduce((a, [, s]) => a + s, 0).toFixed(1)} s in all`);
  if (!write) {
    const problems = compareFigures(todo, figOut);
    if (problems.length) {
      for (const p of problems) console.error(`figures: ${p}`);
      console.error(`figures: ${problems.length} problem(s); regenerate with \`npm run figures -- ${[...new Set(problems.map((p) => p.split("/")[1]))].join(" ")}\` and commit figures/.`);
      process.exit(1);
    }
    console.log(`figures: ${specs.length} specs match the committed figures/`);
  }
}
main().catch((e) => {
  console.error(`notebooks: ${e.message}`);
  process.exit(1);
});
