// The book's browser stage of npm test (after the notebooks have run headless):
//   1. the teaching checks again, now that build/executed/ is fresh (cited numbers vs outputs)
//   2. npm run book (site/ from build/executed/, offline, timed)
//   3. the static book in Debian's Chromium (test/book/book.browser.test.ts) and the JupyterLab flow
//      (test/book/lab.browser.test.ts), servers on 127.0.0.1 only, stopped at the end
//
//   node tools/browser-tests.mjs            all of it
//   node tools/browser-tests.mjs --no-lab   without the JupyterLab flow (the slowest part)
//   node tools/browser-tests.mjs --lab      only the JupyterLab flow
// Screenshots (desktop and phone) land in build/book-screenshots/.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const vitest = path.join(root, "node_modules", ".bin", "vitest");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!fs.existsSync(chromium)) {
  console.error(`browser-tests: ${chromium} is missing: apt-get install chromium (Debian's; never a downloaded browser)`);
  process.exit(1);
}
const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2", BOOK_REQUIRE_EXECUTED: "1" };
const files = args.includes("--lab") ? ["test/book/lab.browser.test.ts"]
  : args.includes("--no-lab") ? ["test/book/book.browser.test.ts"] : ["test/book/book.browser.test.ts", "test/book/lab.browser.test.ts"];
const steps = [
  ...(args.includes("--lab") ? [] : [
    ["teaching checks on the executed notebooks", vitest, ["run", "test/book.test.ts"]],
    ["npm run book", process.execPath, ["tools/book.mjs"]],
  ]),
  ["browser tests (Chromium)", vitest, ["run", "--config", "test/book/vitest.config.mts", ...files]],
];
for (const [name, cmd, a] of steps) {
  const start = Date.now();
  console.log(`\n--- ${name}`);
  const r = spawnSync(cmd, a, { cwd: root, stdio: "inherit", env });
  const s = ((Date.now() - start) / 1000).toFixed(1);
  if (r.status !== 0) {
    console.error(`--- FAILED: ${name} (exit ${r.status}, ${s} s)`);
    process.exit(1);
  }
  console.log(`--- ok: ${name} (${s} s)`);
}
console.log(`\nbrowser-tests: passed; screenshots in ${path.relative(process.cwd(), path.join(root, "build", "book-screenshots"))}/`);
