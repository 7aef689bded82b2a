// Sets up everything the book needs, skipping what is already done:
//   1. node packages (npm ci, install scripts off: tfjs-node's would try to download)
//   2. tfjs-node's native addon, built against libtensorflow from the tensorflow-cpu PyPI wheel
//   3. a Python venv (.venv) with JupyterLab, nbclient and plotly's JupyterLab extension
//   4. the tslab kernel registered into that venv
// A failed native build is reported in one line; the book then runs on the cpu backend.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cache = path.join(root, ".cache");
const venv = path.join(root, ".venv");
const py = path.join(venv, "bin", "python");
const tfjsNode = path.join(root, "node_modules", "@tensorflow", "tfjs-node");
const TF_WHEEL = "tensorflow-cpu==2.12.0"; // the lighter wheel; 2.12-2.20 all work (TOOLCHAIN.md)
const t0 = Date.now();
const done = [];

function step(name, fn) {
  const start = Date.now();
  process.stdout.write(`setup: ${name} ... `);
  const what = fn();
  const s = ((Date.now() - start) / 1000).toFixed(1);
  console.log(`${what} (${s} s)`);
  done.push(`${name}: ${what}`);
}
// pip on these machines warns about every missing local index: keep its own progress, drop that noise
const pipQuiet = (argv) => ["bash", ["-o", "pipefail", "-c", `"$@" 2>&1 | grep --line-buffered -v "^WARNING: Location"`, "pip", ...argv]];
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.quiet ? "pipe" : ["ignore", "inherit", "inherit"], encoding: "utf8", ...opts });
  if (r.status !== 0) {
    const tail = (r.stderr || r.stdout || "").trim().split("\n").slice(-3).join(" | ");
    throw new Error(`${cmd} ${args.slice(0, 3).join(" ")} failed${tail ? ": " + tail : ` (exit ${r.status})`}`);
  }
  return r.stdout;
}
const digest = (file) => createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
const stamp = (name) => path.join(cache, "setup", name);
const stamped = (name, value) => fs.existsSync(stamp(name)) && fs.readFileSync(stamp(name), "utf8") === value;
const setStamp = (name, value) => { fs.mkdirSync(path.dirname(stamp(name)), { recursive: true }); fs.writeFileSync(stamp(name), value); };

const [major] = process.versions.node.split(".").map(Number);
if (major < 20) { console.error(`setup: Node ${process.version} is too old; the book needs Node 20 or newer.`); process.exit(1); }

// 1. node packages
step("node packages", () => {
  const lock = digest(path.join(root, "package-lock.json"));
  if (stamped("npm", lock) && fs.existsSync(path.join(root, "node_modules", "tslab"))) return "already installed";
  console.log("\n  npm ci (install scripts off)");
  run("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"]);
  setStamp("npm", lock);
  return "installed";
});

// 2. tfjs-node's native addon
function addonLoads() {
  const r = spawnSync(process.execPath, ["-e", "const tf=require('@tensorflow/tfjs-node');if(tf.getBackend()!=='tensorflow')process.exit(3);tf.grad(x=>x.square().sum())(tf.ones([2])).dataSync()"], { cwd: root, encoding: "utf8", env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" } });
  return r.status === 0;
}
function buildAddon() {
  const wheels = path.join(cache, "wheels");
  fs.mkdirSync(wheels, { recursive: true });
  let wheel = fs.readdirSync(wheels).find((f) => f.startsWith("tensorflow_cpu-2.12.0") && f.endsWith(".whl"));
  if (!wheel) {
    console.log(`\n  downloading the ${TF_WHEEL} wheel (~232 MB) for libtensorflow`);
    run(...pipQuiet(["python3", "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "-d", wheels, TF_WHEEL]));
    wheel = fs.readdirSync(wheels).find((f) => f.startsWith("tensorflow_cpu-2.12.0") && f.endsWith(".whl"));
  }
  const deps = path.join(tfjsNode, "deps");
  fs.rmSync(deps, { recursive: true, force: true });
  console.log("  unpacking libtensorflow and its C headers from the wheel");
  run("python3", ["-c", `
import sys, zipfile, os, shutil
whl, deps = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(whl)
os.makedirs(deps + "/lib"); os.makedirs(deps + "/include")
for name in z.namelist():
    if name in ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2"):
        with z.open(name) as src, open(deps + "/lib/" + os.path.basename(name), "wb") as dst: shutil.copyfileobj(src, dst)
    elif name.startswith(("tensorflow/include/tensorflow/c/", "tensorflow/include/tensorflow/core/platform/", "tensorflow/include/tensorflow/tsl/")) and name.endswith(".h"):
        out = deps + "/include/" + name[len("tensorflow/include/"):]
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, "wb") as dst: shutil.copyfileobj(src, dst)
`, path.join(wheels, wheel), deps]);
  const lib = path.join(deps, "lib");
  fs.symlinkSync("libtensorflow_cc.so.2", path.join(lib, "libtensorflow.so"));
  fs.symlinkSync("libtensorflow_framework.so.2", path.join(lib, "libtensorflow_framework.so"));
  fs.symlinkSync("libtensorflow_cc.so.2", path.join(lib, "libtensorflow.so.2.9.1")); // stops its own installer downloading
  console.log("  compiling the N-API addon (about a minute)");
  const nodedir = path.dirname(path.dirname(process.execPath));
  run(path.join(root, "node_modules", ".bin", "node-pre-gyp"), ["install", "--build-from-source", `--nodedir=${nodedir}`], { cwd: tfjsNode, quiet: true });
}
step("tfjs-node native addon", () => {
  if (addonLoads()) return "already built, backend tensorflow";
  try {
    buildAddon();
    if (!addonLoads()) throw new Error("the built addon does not load");
    return "built against libtensorflow 2.12, backend tensorflow";
  } catch (e) {
    const why = String(e.message).split("\n")[0];
    console.log(`\nsetup: tfjs-node could not be built (${why}); the book goes on with the pure-JS cpu backend (slow).`);
    return "FAILED, falling back to the cpu backend";
  }
});

// 3. the Python venv for Jupyter
step("Python venv (.venv: JupyterLab, nbclient, plotly)", () => {
  const req = path.join(root, "tools", "requirements.txt");
  const want = digest(req);
  if (stamped("venv", want) && fs.existsSync(py)) return "already installed";
  if (!fs.existsSync(py)) run("python3", ["-m", "venv", venv]);
  console.log("\n  pip install -r tools/requirements.txt");
  run(...pipQuiet([py, "-m", "pip", "install", "--disable-pip-version-check", "-r", req]));
  setStamp("venv", want);
  return "installed";
});

// 4. the tslab kernel, registered into the venv
step("tslab kernel", () => {
  const spec = path.join(venv, "share", "jupyter", "kernels", "tslab", "kernel.json");
  const binary = path.join(root, "node_modules", ".bin", "tslab");
  if (fs.existsSync(spec) && fs.readFileSync(spec, "utf8").includes(binary)) return "already registered";
  run(binary, ["install", `--python=${py}`, `--prefix=${venv}`, `--binary=${binary}`], { quiet: true });
  const k = JSON.parse(fs.readFileSync(spec, "utf8"));
  k.env = { ...(k.env ?? {}), TF_CPP_MIN_LOG_LEVEL: "2" }; // hide TensorFlow's CPU-instruction banner
  fs.writeFileSync(spec, JSON.stringify(k, null, 2));
  // JupyterLab: no news toast, no update check (the book works offline)
  const settings = path.join(venv, "share", "jupyter", "lab", "settings");
  fs.mkdirSync(settings, { recursive: true });
  fs.writeFileSync(path.join(settings, "overrides.json"), JSON.stringify({ "@jupyterlab/apputils-extension:notification": { checkForUpdates: false, fetchNews: "false" } }, null, 2));
  return "registered (TypeScript, tslab)";
});

const chromium = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).stdout.trim();
console.log(`setup: chromium for figures and browser tests: ${chromium || "not found (apt-get install chromium; .ci/run does it)"}`);
console.log(`setup: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
