// What both benchmarks share: the PyTorch side as a child process that answers one JSON line per
// command, so the two sides can take turns in one run, and the median of a list of times.
import { spawn, ChildProcess } from "child_process";
import * as path from "path";
import * as readline from "readline";

export const ROOT = path.join(__dirname, "..");
export const PYTHON = process.env.BENCH_PYTHON ?? path.join(ROOT, ".cache", "bench-venv", "bin", "python");

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The PyTorch peer: `script --serve <spec JSON>`, one command line in, one JSON line out. */
export class TorchPeer {
  private lines: AsyncIterableIterator<string>;
  private child: ChildProcess;
  constructor(script: string, spec: object) {
    this.child = spawn(PYTHON, [path.join(__dirname, script), "--serve", JSON.stringify(spec)],
      { stdio: ["pipe", "pipe", "inherit"] });
    this.lines = readline.createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
  }
  async ask(command: string): Promise<any> {
    this.child.stdin!.write(command + "\n");
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`the PyTorch peer exited before answering "${command}"`);
    return JSON.parse(value);
  }
  close(): void {
    this.child.stdin!.end();
  }
}
