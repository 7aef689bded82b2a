// Shared by the browser suites: the book's tools (ES modules, loaded by path), Debian's Chromium with
// the project's launch flags, and a watcher that records everything a page must not do.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pathToFileURL } from "url";
import { chromium, Browser, Page } from "playwright-core";

export const root = path.resolve(__dirname, "..", "..");

// tools/*.mjs are plain ES modules without type declarations: import them by URL, typed here.
export interface BookTools {
  buildBook(o: { all?: boolean; quiet?: boolean; executed?: string; site?: string; models?: string }):
    Promise<{ names: string[]; figures: string[]; models: string[]; warnings: string[]; mathErrors: number; seconds: number }>;
  bookNotebooks(o?: { all?: boolean; executed?: string }): string[];
}
export interface ServeTools { serveSite(o: { dir?: string; port?: number }): Promise<{ url: string; port: number; close(): Promise<void> }> }
export interface LabTools { startLab(o?: { quiet?: boolean; port?: number }): Promise<{ base: string; token: string; url: string; stop(): void; process: { pid?: number; exitCode: number | null } }> }
export interface FigureTools { CHROMIUM_ARGS: string[] }

export const tool = <T>(rel: string): Promise<T> => import(pathToFileURL(path.join(root, rel)).href) as Promise<T>;

export async function launch(): Promise<Browser> {
  const { CHROMIUM_ARGS } = await tool<FigureTools>("tools/figures.mjs");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
}

export function tmpDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `book-${name}-`));
}

/** Everything a page did that it must not: console errors, page errors, failed or outside requests. */
export function watch(page: Page, allowed: (url: string) => boolean): { problems: string[]; allow: RegExp[] } {
  const w = { problems: [] as string[], allow: [] as RegExp[] };
  page.on("console", (m) => {
    if (m.type() === "error" && !w.allow.some((r) => r.test(m.text()))) w.problems.push(`console error: ${m.text()} (${page.url()})`);
  });
  page.on("pageerror", (e) => w.problems.push(`page error: ${e.message} (${page.url()})`));
  page.on("request", (r) => {
    const u = r.url();
    if (!allowed(u) && !/^(data|blob|about):/.test(u)) w.problems.push(`request leaving the book: ${u}`);
  });
  page.on("requestfailed", (r) => w.problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on("response", (r) => {
    if (r.status() >= 400) w.problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return w;
}

/** Run fn, failing with a clear message if it takes longer than ms. */
export async function within<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([fn(), limit]);
  } finally {
    clearTimeout(timer);
  }
}
