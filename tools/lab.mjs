// npm start (after tools/setup.mjs): JupyterLab on 127.0.0.1, opened at the book's notebooks.
//   BOOK_PORT=8899 npm start    another port;   Ctrl-C stops the server and its kernels.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function freePort(start) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(freePort(start + 1)));
    s.listen(start, "127.0.0.1", () => s.close(() => resolve(start)));
  });
}

/** Start JupyterLab; resolves once it answers, with {url, token, stop()}. */
export async function startLab({ port, token = randomBytes(12).toString("hex"), quiet = false } = {}) {
  port = await freePort(port ?? Number(process.env.BOOK_PORT ?? 8888));
  const args = ["-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", `--ServerApp.port=${port}`, "--ServerApp.port_retries=0",
    `--ServerApp.root_dir=${path.join(root, "notebooks")}`, `--IdentityProvider.token=${token}`, "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--ServerApp.open_browser=False"];
  if (process.getuid?.() === 0) args.push("--allow-root"); // CI and these machines run as root
  const lab = spawn(path.join(root, ".venv", "bin", "python"), args, { cwd: root, detached: true, stdio: ["ignore", quiet ? "ignore" : "inherit", quiet ? "ignore" : "inherit"], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  const base = `http://127.0.0.1:${port}`;
  const stop = () => { try { process.kill(-lab.pid, "SIGTERM"); } catch {} }; // the whole group: server and kernels
  for (let i = 0; i < 120; i++) {
    await new Promise((r) => setTimeout(r, 500));
    if (lab.exitCode !== null) throw new Error(`JupyterLab exited with code ${lab.exitCode}`);
    try {
      const res = await fetch(`${base}/api/status?token=${token}`);
      if (res.ok) return { base, port, token, url: `${base}/lab/tree/00-overview.zh.ipynb?token=${token}`, stop, process: lab };
    } catch {}
  }
  stop();
  throw new Error("JupyterLab did not answer within 60 s");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const lab = await startLab();
  console.log(`\n  The book is open in JupyterLab (TypeScript kernel, tslab):\n\n    ${lab.url}\n\n  中文版 *.zh.ipynb, English *.en.ipynb. Ctrl-C stops the server.\n`);
  const quit = () => { lab.stop(); process.exit(0); };
  process.on("SIGINT", quit);
  process.on("SIGTERM", quit);
}
