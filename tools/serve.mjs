// npm run book:serve: serves site/ (built by npm run book) on 127.0.0.1 only.
//   BOOK_PORT=8000 npm run book:serve     a fixed port; otherwise the first free one from 8000
// A static server with the right MIME types (application/wasm for the demos' WebAssembly backend);
// it never lists directories and never serves a path outside site/.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./lab.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = {
  ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".wasm": "application/wasm",
  ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf", ".ipynb": "application/x-ipynb+json", ".bin": "application/octet-stream",
};

/** Serve dir on 127.0.0.1; resolves with {url, port, close()}. port 0 = any free port. */
export async function serveSite({ dir = path.join(root, "site"), port } = {}) {
  const base = path.resolve(dir);
  if (!fs.existsSync(path.join(base, "index.html"))) throw new Error(`${path.relative(process.cwd(), base) || base}/index.html is missing: run \`npm run book\` first`);
  const server = http.createServer((req, res) => {
    let rel;
    try {
      rel = decodeURIComponent(new URL(req.url ?? "/", "http://127.0.0.1").pathname);
    } catch {
      res.writeHead(400).end("bad request");
      return;
    }
    let file = path.join(base, rel);
    if (file !== base && !file.startsWith(base + path.sep)) return void res.writeHead(403).end("forbidden");
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return void res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream", "cache-control": "no-cache" });
    fs.createReadStream(file).pipe(res);
  });
  const want = port ?? (process.env.BOOK_PORT ? Number(process.env.BOOK_PORT) : await freePort(8000));
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(want, "127.0.0.1", resolve);
  });
  const actual = server.address().port;
  return { url: `http://127.0.0.1:${actual}/`, port: actual, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await serveSite().catch((e) => {
    console.error(`book:serve: ${e.message}`);
    process.exit(1);
  });
  console.log(`\n  The book: ${s.url}  (中文 ${s.url}zh/  ·  English ${s.url}en/)\n  Ctrl-C stops the server.\n`);
  const quit = () => s.close().then(() => process.exit(0));
  process.on("SIGINT", quit);
  process.on("SIGTERM", quit);
}
