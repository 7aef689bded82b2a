// Scaling laws: how held-out loss falls with parameters N, training tokens D and compute C ≈ 6ND.
//
// The chapter writes the loss as a constant plus one power law per resource. Two forms are fitted
// here, the way the papers fit them:
//   • Kaplan et al. (2020): one variable at a time, L(N) = (N_c/N)^α_N and L(D) = (D_c/D)^α_D.
//     In log space that is a straight line, so ordinary least squares on (log x, log L) is exact.
//   • Hoffmann et al. (2022, "Chinchilla", Approach 3): L(N, D) = E + A/N^α + B/D^β, fitted in log
//     space with a Huber loss, L-BFGS and a grid of starting points, the best fit kept; Besiroglu et
//     al. (2024) redid that fit on data read off Hoffmann's figure and got different constants.
// Given a fitted L(N, D), `computeOptimal` splits a compute budget C between N and D.
// C is not a third free variable: once N and D are chosen, C ≈ 6ND follows (the chapter's extra
// C/C^γ term is the same information seen from the budget side, as in Kaplan's L(C_min)).
//
// Plain float64 numbers throughout: a sweep has tens of points and the law five parameters.
import { Rng } from "./tf";
import { minimize } from "./lbfgs";

export interface ScalingPoint {
  /** Parameters (the book counts non-embedding parameters, as Kaplan et al. do). */
  N: number;
  /** Training tokens. */
  D: number;
  /** Held-out loss in nats per token. */
  L: number;
}

/** L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, §3.3). */
export interface ChinchillaLaw {
  E: number;
  A: number;
  B: number;
  alpha: number;
  beta: number;
}

/** Kaplan et al. (2020) eq. 1.5: L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D. */
export interface KaplanLaw {
  alphaN: number;
  Nc: number;
  alphaD: number;
  Dc: number;
}

// C ≈ 6ND: each parameter costs 2 FLOPs per token forward (multiply + add) and 4 backward
// N, D: numbers -> training FLOPs
export function trainingFlops(N: number, D: number): number {
  positive("N", N);
  positive("D", D);
  return 6 * N * D;
}

// L̂(N, D) = E + A/N^α + B/D^β
// law, N, D: numbers -> predicted loss (nats/token)
export function chinchillaLoss(law: ChinchillaLaw, N: number, D: number): number {
  positive("N", N);
  positive("D", D);
  return law.E + law.A / Math.pow(N, law.alpha) + law.B / Math.pow(D, law.beta);
}

// L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D   (no irreducible term: Kaplan fit pure power laws)
// law, N, D: numbers -> predicted loss (nats/token)
export function kaplanLoss(law: KaplanLaw, N: number, D: number): number {
  positive("N", N);
  positive("D", D);
  return Math.pow(Math.pow(law.Nc / N, law.alphaN / law.alphaD) + law.Dc / D, law.alphaD);
}

// Huber_δ(r) = r²/2 if |r| ≤ δ, else δ(|r| − δ/2): quadratic for small residuals, linear for
// outliers, so a few bad runs pull the fit far less than under least squares.  r: number -> number
export function huber(r: number, delta: number): number {
  const a = Math.abs(r);
  return a <= delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
}

/**
 * The log-space parameters the fit works in: A = eᵃ, B = eᵇ, E = eᵉ keep A, B, E positive without
 * constraints and make the gradient well scaled. Order of the vector θ: [a, b, e, α, β].
 */
export type LogParams = [number, number, number, number, number];

export interface ObjectiveOptions {
  /** Huber threshold on log-loss residuals. Hoffmann et al. use δ = 10⁻³. */
  delta?: number;
  /**
   * "sum" over runs (as written in Hoffmann's eq. and used by Besiroglu et al.) or "mean". Both have
   * the same minimiser; "mean" makes the objective ~n times smaller, which an absolute stopping
   * rule mistakes for convergence — Besiroglu et al.'s diagnosis of Hoffmann's fit.
   */
  reduce?: "sum" | "mean";
}

// J(θ) = Σᵢ Huber_δ(log L̂ᵢ − log Lᵢ),  log L̂ᵢ = LSE(a − α log Nᵢ, b − β log Dᵢ, e)
// θ [5] = [a, b, e, α, β], points n -> {value, grad [5]} (analytic gradient via the softmax of LSE)
export function powerLawObjective(
  theta: number[],
  points: ScalingPoint[],
  options: ObjectiveOptions = {},
): { value: number; grad: number[] } {
  if (theta.length !== 5) throw new Error(`theta must be [a, b, e, alpha, beta] (5 numbers), got ${theta.length}.`);
  const data = prepare(points);
  return objective(theta, data, options.delta ?? 1e-3, options.reduce ?? "sum");
}

interface Prepared { logN: Float64Array; logD: Float64Array; logL: Float64Array }

function prepare(points: ScalingPoint[]): Prepared {
  if (!Array.isArray(points) || points.length === 0) {
    throw new Error(`points must be a non-empty array of {N, D, L}, got ${Array.isArray(points) ? "[]" : typeof points}.`);
  }
  const n = points.length;
  const logN = new Float64Array(n);
  const logD = new Float64Array(n);
  const logL = new Float64Array(n);
  points.forEach((p, i) => {
    if (!(p && p.N > 0 && p.D > 0 && p.L > 0 && Number.isFinite(p.N) && Number.isFinite(p.D) && Number.isFinite(p.L))) {
      throw new Error(`points[${i}] must have positive finite N, D and L, got ${JSON.stringify(p)}.`);
    }
    logN[i] = Math.log(p.N);
    logD[i] = Math.log(p.D);
    logL[i] = Math.log(p.L);
  });
  return { logN, logD, logL };
}

function objective(theta: number[], data: Prepared, delta: number, reduce: "sum" | "mean"): { value: number; grad: number[] } {
  const [a, b, e, alpha, beta] = theta;
  const { logN, logD, logL } = data;
  let value = 0;
  const grad = [0, 0, 0, 0, 0];
  for (let i = 0; i < logL.length; i++) {
    const t1 = a - alpha * logN[i];
    const t2 = b - beta * logD[i];
    const t3 = e;
    // Log-sum-exp, shifted by the largest term so exp never overflows.
    const m = Math.max(t1, t2, t3);
    const w1 = Math.exp(t1 - m);
    const w2 = Math.exp(t2 - m);
    const w3 = Math.exp(t3 - m);
    const z = w1 + w2 + w3;
    const r = m + Math.log(z) - logL[i];
    value += huber(r, delta);
    // ∂Huber/∂r = clip(r, −δ, δ); ∂LSE/∂tₖ = softmax weight wₖ/z.
    const dr = Math.max(-delta, Math.min(delta, r)) / z;
    grad[0] += dr * w1;
    grad[1] += dr * w2;
    grad[2] += dr * w3;
    grad[3] -= dr * w1 * logN[i];
    grad[4] -= dr * w2 * logD[i];
  }
  if (reduce === "mean") {
    const n = logL.length;
    value /= n;
    for (let k = 0; k < 5; k++) grad[k] /= n;
  }
  return { value, grad };
}

/** Starting points for the fit: every combination of the five lists (log-space a, b, e). */
export interface FitGrid {
  alpha: number[];
  beta: number[];
  e: number[];
  a: number[];
  b: number[];
}

const range = (from: number, to: number, step: number): number[] => {
  const out: number[] = [];
  for (let k = 0; from + k * step <= to + 1e-9; k++) out.push(Number((from + k * step).toFixed(10)));
  return out;
};

/**
 * Hoffmann et al. (2022) Appendix D.2's grid: α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1},
 * a, b ∈ {0, 5, …, 25} — 5·5·5·6·6 = 4500 starts (Besiroglu et al. 2024 reuse it).
 */
export const HOFFMANN_GRID: FitGrid = {
  alpha: range(0, 2, 0.5),
  beta: range(0, 2, 0.5),
  e: range(-1, 1, 0.5),
  a: range(0, 25, 5),
  b: range(0, 25, 5),
};

/** A 2·2·3·3·3 = 108-start subset of HOFFMANN_GRID (our choice): a fit in tenths of a second. */
export const SMALL_GRID: FitGrid = {
  alpha: [0.5, 1],
  beta: [0.5, 1],
  e: [-1, 0, 1],
  a: [0, 10, 20],
  b: [0, 10, 20],
};

/**
 * 27 starts (our choice) that bootstrapPowerLaw adds to the full-data fit for each refit. Measured
 * on 90 resamples of noisy 20-point sweeps: the same optimum as SMALL_GRID every time, 4× faster;
 * the full-data fit alone missed a better optimum in 1 of 30.
 */
export const BOOTSTRAP_GRID: FitGrid = {
  alpha: [0.5],
  beta: [0.5],
  e: [-1, 0, 1],
  a: [0, 10, 20],
  b: [0, 10, 20],
};

export interface FitOptions extends ObjectiveOptions {
  /** Starting points; default HOFFMANN_GRID. */
  grid?: FitGrid;
  /** Extra starting laws tried besides the grid (e.g. a previous fit). */
  starts?: ChinchillaLaw[];
  /** L-BFGS settings for each start. */
  maxIter?: number;
  tol?: number;
  ftol?: number;
}

export interface PowerLawFit extends ChinchillaLaw {
  /** log A, log B, log E: the parameters the optimiser moved. */
  logA: number;
  logB: number;
  logE: number;
  /** Huber objective at the fit. */
  objective: number;
  /** Whether L-BFGS met its stopping test at the kept start. */
  converged: boolean;
  iterations: number;
  /** How many starting points were tried. */
  starts: number;
  /** log Lᵢ − log L̂ᵢ for each point, in input order. */
  residuals: number[];
  /** R² of log L: 1 − Σ residual² / Σ (log Lᵢ − mean)². */
  r2: number;
}

// min over (a, b, e, α, β) of Σ Huber_δ(LSE(a − α log N, b − β log D, e) − log L), from every grid start
// points n (N, D, L) -> the best law found, with A = eᵃ, B = eᵇ, E = eᵉ, and its residuals
export function fitPowerLaw(points: ScalingPoint[], options: FitOptions = {}): PowerLawFit {
  const data = prepare(points);
  if (points.length < 5) throw new Error(`points must hold at least 5 runs to fit 5 parameters, got ${points.length}.`);
  const delta = options.delta ?? 1e-3;
  if (!(delta > 0)) throw new Error(`delta must be > 0, got ${delta}.`);
  const reduce = options.reduce ?? "sum";
  const grid = options.grid ?? HOFFMANN_GRID;
  for (const key of ["alpha", "beta", "e", "a", "b"] as const) {
    if (!Array.isArray(grid[key]) || grid[key].length === 0) throw new Error(`grid.${key} must be a non-empty array of numbers, got ${JSON.stringify(grid[key])}.`);
  }
  const starts: number[][] = [];
  // A start given as a law: its log parameters (a fit's own, when it carries them, since E may have
  // underflowed to 0), floored at −50 so that a zero term still starts as a finite, negligible one.
  const logOf = (law: ChinchillaLaw & { logA?: number; logB?: number; logE?: number }, k: "A" | "B" | "E"): number => {
    const v = law[`log${k}`] ?? Math.log(law[k]);
    return Number.isFinite(v) ? Math.max(v, -50) : -50;
  };
  for (const law of options.starts ?? []) starts.push([logOf(law, "A"), logOf(law, "B"), logOf(law, "E"), law.alpha, law.beta]);
  for (const alpha of grid.alpha) for (const beta of grid.beta) for (const e of grid.e)
    for (const a of grid.a) for (const b of grid.b) starts.push([a, b, e, alpha, beta]);

  // f and grad come from one pass over the data; minimize calls grad(x) right after f(x) with the
  // same array (it never mutates one), so remembering the last array makes the gradient free.
  let lastX: number[] | null = null;
  let last = { value: 0, grad: [0, 0, 0, 0, 0] };
  const evalAt = (x: number[]) => {
    if (x !== lastX) {
      last = objective(x, data, delta, reduce);
      lastX = x;
    }
    return last;
  };
  let best: ReturnType<typeof minimize> | null = null;
  for (const x0 of starts) {
    const r = minimize((x) => evalAt(x).value, (x) => evalAt(x).grad, x0, {
      maxIter: options.maxIter ?? 500,
      tol: options.tol ?? 1e-12,
      ftol: options.ftol ?? 0,
    });
    if (best === null || r.fx < best.fx) best = r;
  }
  const [a, b, e, alpha, beta] = best!.x;
  const law: ChinchillaLaw = { E: Math.exp(e), A: Math.exp(a), B: Math.exp(b), alpha, beta };
  const residuals = points.map((p) => Math.log(p.L) - Math.log(chinchillaLoss(law, p.N, p.D)));
  return {
    ...law, logA: a, logB: b, logE: e,
    objective: best!.fx, converged: best!.converged, iterations: best!.iterations, starts: starts.length,
    residuals, r2: rSquared(data.logL, residuals),
  };
}

function rSquared(logL: ArrayLike<number>, residuals: number[]): number {
  const n = residuals.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += logL[i] / n;
  let ssTot = 0;
  let ssRes = 0;
  for (let i = 0; i < n; i++) {
    ssTot += (logL[i] - mean) ** 2;
    ssRes += residuals[i] ** 2;
  }
  return ssTot > 0 ? 1 - ssRes / ssTot : NaN;
}

export interface OneVariableFit {
  /** The exponent α in L = (x_c/x)^α. */
  alpha: number;
  /** The scale x_c (N_c or D_c): the x at which the law predicts L = 1 nat. */
  xc: number;
  /** log L = intercept + slope·log x, slope = −α, intercept = α·log x_c. */
  slope: number;
  intercept: number;
  /** log Lᵢ − log L̂ᵢ. */
  residuals: number[];
  /** R² of the straight line in log-log space. */
  r2: number;
}

// L(x) = (x_c/x)^α ⇔ log L = α log x_c − α log x: ordinary least squares on (log x, log L)
// x n, L n (positive) -> α, x_c, residuals, R²
export function fitOneVariable(x: number[], L: number[]): OneVariableFit {
  if (!Array.isArray(x) || !Array.isArray(L) || x.length !== L.length) {
    throw new Error(`x and L must be arrays of the same length, got ${x?.length} and ${L?.length}.`);
  }
  if (x.length < 2) throw new Error(`x must hold at least 2 points for a line, got ${x.length}.`);
  x.forEach((v, i) => {
    if (!(v > 0 && Number.isFinite(v))) throw new Error(`x[${i}] must be positive and finite, got ${v}.`);
    if (!(L[i] > 0 && Number.isFinite(L[i]))) throw new Error(`L[${i}] must be positive and finite, got ${L[i]}.`);
  });
  const u = x.map(Math.log);
  const v = L.map(Math.log);
  const n = u.length;
  const mu = u.reduce((s, t) => s + t, 0) / n;
  const mv = v.reduce((s, t) => s + t, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (u[i] - mu) * (v[i] - mv);
    sxx += (u[i] - mu) ** 2;
  }
  if (!(sxx > 0)) throw new Error(`x must take at least 2 distinct values, got all equal to ${x[0]}.`);
  const slope = sxy / sxx;
  const intercept = mv - slope * mu;
  const alpha = -slope;
  const residuals = v.map((t, i) => t - (intercept + slope * u[i]));
  return { alpha, xc: Math.exp(intercept / alpha), slope, intercept, residuals, r2: rSquared(v, residuals) };
}

// q-quantile of the sample, linear between order statistics (numpy's default "linear" method)
// values n, q in [0, 1] -> number
export function percentile(values: number[], q: number): number {
  if (!Array.isArray(values) || values.length === 0) throw new Error(`values must be a non-empty array, got ${values?.length ?? typeof values}.`);
  if (!(q >= 0 && q <= 1)) throw new Error(`q must be in [0, 1], got ${q}.`);
  const s = values.slice().sort((p, r) => p - r);
  const h = q * (s.length - 1);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

export interface BootstrapOptions {
  /** Resamples. Default 200. */
  samples?: number;
  /** Seed of the Rng that draws the resamples. Default 42. */
  seed?: number;
  /** Coverage of the percentile intervals. Default 0.95. */
  level?: number;
}

export interface BootstrapResult<T extends Record<keyof T, number>> {
  /** One fit per resample. */
  estimates: T[];
  /** [lower, upper] percentile interval of each named number. */
  intervals: { [K in keyof T]: [number, number] };
}

// Percentile bootstrap: draw n indices with replacement, refit, repeat; the interval of each number is
// the [(1−level)/2, (1+level)/2] quantiles of its refits.  n points, fit(indices) -> named numbers
export function bootstrap<T extends Record<keyof T, number>>(
  n: number,
  fit: (indices: number[]) => T,
  options: BootstrapOptions = {},
): BootstrapResult<T> {
  const { samples = 200, seed = 42, level = 0.95 } = options;
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`n must be a positive integer (the number of points), got ${n}.`);
  if (!(Number.isInteger(samples) && samples >= 2)) throw new Error(`samples must be an integer ≥ 2, got ${samples}.`);
  if (!(level > 0 && level < 1)) throw new Error(`level must be in (0, 1), got ${level}.`);
  const rng = new Rng(seed);
  const estimates: T[] = [];
  for (let s = 0; s < samples; s++) {
    const indices = Array.from({ length: n }, () => rng.int(n));
    estimates.push(fit(indices));
  }
  const intervals = {} as { [K in keyof T]: [number, number] };
  for (const key of Object.keys(estimates[0]) as (keyof T)[]) {
    const values = estimates.map((est) => est[key] as number).filter(Number.isFinite);
    intervals[key] = values.length > 0
      ? [percentile(values, (1 - level) / 2), percentile(values, (1 + level) / 2)]
      : [NaN, NaN];
  }
  return { estimates, intervals };
}

export interface LawEstimate extends ChinchillaLaw {
  /** Exponents of the compute-optimal frontier (see computeOptimal). */
  a: number;
  b: number;
}

// Bootstrap of fitPowerLaw: resample runs, refit from BOOTSTRAP_GRID plus the full-data fit
// points n -> the full-data fit and percentile intervals of E, A, B, α, β, a = β/(α+β), b = α/(α+β)
export function bootstrapPowerLaw(
  points: ScalingPoint[],
  options: BootstrapOptions & { fit?: FitOptions } = {},
): { fit: PowerLawFit } & BootstrapResult<LawEstimate> {
  const full = fitPowerLaw(points, options.fit);
  const fitOptions: FitOptions = { grid: BOOTSTRAP_GRID, ...options.fit, starts: [full, ...(options.fit?.starts ?? [])] };
  const result = bootstrap(points.length, (idx) => {
    const f = fitPowerLaw(idx.map((i) => points[i]), fitOptions);
    return { E: f.E, A: f.A, B: f.B, alpha: f.alpha, beta: f.beta, a: f.beta / (f.alpha + f.beta), b: f.alpha / (f.alpha + f.beta) };
  }, options);
  return { fit: full, ...result };
}

// Bootstrap of fitOneVariable: resample (xᵢ, Lᵢ) pairs, refit log L = α log x_c − α log x
// x n, L n -> the full-data fit and percentile intervals of α and x_c
export function bootstrapOneVariable(
  x: number[],
  L: number[],
  options: BootstrapOptions = {},
): { fit: OneVariableFit } & BootstrapResult<{ alpha: number; xc: number }> {
  const full = fitOneVariable(x, L);
  const result = bootstrap(x.length, (idx) => {
    const xs = idx.map((i) => x[i]);
    // A resample that drew a single distinct x has no slope: report NaN, dropped from the intervals.
    if (xs.every((v) => v === xs[0])) return { alpha: NaN, xc: NaN };
    const f = fitOneVariable(xs, idx.map((i) => L[i]));
    return { alpha: f.alpha, xc: f.xc };
  }, options);
  return { fit: full, ...result };
}

export interface ComputeOptimal {
  /** The budget C in FLOPs. */
  C: number;
  /** Loss-minimising parameters and tokens with 6·N·D = C. */
  N: number;
  D: number;
  /** D/N at the optimum: grows with C as (C/6)^(b − a) / G². */
  tokensPerParam: number;
  /** L̂(N_opt, D_opt). */
  loss: number;
  /** N_opt ∝ C^a, a = β/(α+β); D_opt ∝ C^b, b = α/(α+β); a + b = 1. */
  a: number;
  b: number;
  /** D_opt ∝ N_opt^(b/a) = N_opt^(α/β). */
  dExponentInN: number;
  /** G = (αA/(βB))^(1/(α+β)). */
  G: number;
}

// argmin L̂(N, D) s.t. 6ND = C: N_opt = G·(C/6)^(β/(α+β)), D_opt = (C/6)/N_opt, G = (αA/(βB))^(1/(α+β))
// (Hoffmann et al. 2022, §3.3; set dL/dN = 0 with D = C/(6N)).  law, C: numbers -> the optimum
export function computeOptimal(law: ChinchillaLaw, C: number): ComputeOptimal {
  checkLaw(law);
  positive("C", C);
  const { A, B, alpha, beta } = law;
  const G = Math.pow((alpha * A) / (beta * B), 1 / (alpha + beta));
  const a = beta / (alpha + beta);
  const b = alpha / (alpha + beta);
  const N = G * Math.pow(C / 6, a);
  const D = C / 6 / N;
  return { C, N, D, tokensPerParam: D / N, loss: chinchillaLoss(law, N, D), a, b, dExponentInN: b / a, G };
}

// The same optimum found by searching: golden-section on u = log N of L̂(eᵘ, C/(6eᵘ)), which is
// convex in u (a sum of two exponentials).  law, C -> {N, D, loss}; a check on the closed form
export function computeOptimalSearch(law: ChinchillaLaw, C: number, iterations = 200): { N: number; D: number; loss: number } {
  checkLaw(law);
  positive("C", C);
  const h = (u: number) => chinchillaLoss(law, Math.exp(u), C / (6 * Math.exp(u)));
  let lo = 0; // N = 1
  let hi = Math.log(C / 6); // D = 1
  const phi = (Math.sqrt(5) - 1) / 2;
  let x1 = hi - phi * (hi - lo);
  let x2 = lo + phi * (hi - lo);
  let f1 = h(x1);
  let f2 = h(x2);
  for (let k = 0; k < iterations && hi - lo > 1e-13; k++) {
    if (f1 < f2) {
      hi = x2; x2 = x1; f2 = f1; x1 = hi - phi * (hi - lo); f1 = h(x1);
    } else {
      lo = x1; x1 = x2; f1 = f2; x2 = lo + phi * (hi - lo); f2 = h(x2);
    }
  }
  const N = Math.exp((lo + hi) / 2);
  return { N, D: C / (6 * N), loss: h((lo + hi) / 2) };
}

function checkLaw(law: ChinchillaLaw): void {
  for (const key of ["A", "B", "alpha", "beta"] as const) {
    if (!(law && law[key] > 0 && Number.isFinite(law[key]))) {
      throw new Error(`law.${key} must be positive and finite for a compute-optimal split, got ${law?.[key]}.`);
    }
  }
}

function positive(name: string, v: number): void {
  if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) throw new Error(`${name} must be a positive finite number, got ${v}.`);
}

// ---------------------------------------------------------------------------------------------
// Published fits, with where they come from.
//
// What was checked, and how (search tools over stored public pages and repositories, 2026-12; the
// papers' PDFs themselves could not be opened here):
//   • Hoffmann 2022 (E 1.69, A 406.4, B 410.7, α 0.34, β 0.28), the grid and δ = 10⁻³: seen quoted
//     identically in several independent write-ups, code and later papers that "copied their grid".
//     The unrounded TeX-source values (E 1.6934, α 0.3392, β 0.2849) are as Besiroglu et al. quote
//     them, read in secondary tables only.
//   • Besiroglu 2024 (E 1.8172, A 482.01, B 2085.43, α 0.3478, β 0.3658, standard errors 0.03,
//     124.58, 1293.23, 0.02, 0.02; a = 0.5126): the arXiv abstract was read directly; the numbers
//     come from several consistent secondary copies of its table. Rounded, they are the brief's
//     E 1.82, A 482.0, B 2085.4, α 0.348, β 0.366.
//   • Kaplan 2020: the abstract was read directly (TeX source); eqs. 1.1–1.3 (α_N 0.076, N_c 8.8e13,
//     α_D 0.095, D_c 5.4e13, α_C^min 0.050, C_c^min 3.1e8 PF-days), N ∝ C_min^0.73, B ∝ C^0.24,
//     S ∝ C^0.03, and eq. 4.4 D ≳ (5·10³)·N^0.74 were found in a copy of the paper's text and in
//     several consistent notes. Note: the 0.74 in eq. 4.4 is α_N/α_D of the JOINT fit of eq. 1.5
//     (Table 2: α_N 0.076, α_D 0.103, N_c 6.4e13, D_c 1.8e13), not of the one-variable exponents —
//     0.076/0.095 = 0.80, which is the chapter's "D ∝ N^0.8".
//   • Not verified: exact equation/page numbers inside Hoffmann et al. beyond "Approach 3, §3.3 and
//     Appendix D"; that Hoffmann count all parameters while Kaplan count non-embedding ones (this is
//     the reading of Pearce & Song 2024, arXiv:2406.12907, not checked against either paper).
// ---------------------------------------------------------------------------------------------

export interface Citation {
  authors: string;
  year: number;
  title: string;
  arxiv: string;
  where: string;
}

export const HOFFMANN_2022: Citation = {
  authors: "Hoffmann, Borgeaud, Mensch, Buchatskaya, Cai, Rutherford, de Las Casas, Hendricks, Welbl, Clark, et al.",
  year: 2022,
  title: "Training Compute-Optimal Large Language Models",
  arxiv: "2203.15556",
  where: "Approach 3: parametric fit of L(N, D) (§3.3, Appendix D)",
};

export const BESIROGLU_2024: Citation = {
  authors: "Besiroglu, Erdil, Barnett, You",
  year: 2024,
  title: "Chinchilla Scaling: A replication attempt",
  arxiv: "2404.10102",
  where: "refit of Approach 3 on data extracted from Hoffmann et al.'s Figure 4",
};

export const KAPLAN_2020: Citation = {
  authors: "Kaplan, McCandlish, Henighan, Brown, Chess, Child, Gray, Radford, Wu, Amodei",
  year: 2020,
  title: "Scaling Laws for Neural Language Models",
  arxiv: "2001.08361",
  where: "§1.2 eqs. 1.1–1.7, §4 eq. 4.4, Table 2",
};

/** Published L(N, D) = E + A/N^α + B/D^β fits, each with its source. */
export const PUBLISHED_LAWS: { [name: string]: ChinchillaLaw & { source: Citation; note: string } } = {
  hoffmann2022: {
    E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28,
    source: HOFFMANN_2022,
    note: "as printed in the paper (rounded)",
  },
  hoffmann2022Unrounded: {
    E: 1.6934, A: 406.4, B: 410.7, alpha: 0.3392, beta: 0.2849,
    source: HOFFMANN_2022,
    note: "E, α, β from the paper's TeX source as quoted by Besiroglu et al. 2024; A, B as printed",
  },
  besiroglu2024: {
    E: 1.8172, A: 482.01, B: 2085.43, alpha: 0.3478, beta: 0.3658,
    source: BESIROGLU_2024,
    note: "standard errors E 0.03, A 124.58, B 1293.23, α 0.02, β 0.02",
  },
};

/** Kaplan et al. (2020): one-variable laws, the joint L(N, D) and the compute-optimal allocation. */
export const KAPLAN_2020_LAWS = {
  source: KAPLAN_2020,
  /** Eqs. 1.1–1.3: L(N) = (N_c/N)^α_N (non-embedding N), L(D) = (D_c/D)^α_D, L(C_min) = (C_c/C_min)^α_C. */
  alphaN: 0.076,
  Nc: 8.8e13,
  alphaD: 0.095,
  Dc: 5.4e13,
  alphaCmin: 0.05,
  /** In PF-days (1 PF-day = 10¹⁵ × 86400 FLOPs = 8.64e19 FLOPs). */
  CcMinPFDays: 3.1e8,
  /** Table 2: the joint fit of eq. 1.5, L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D. */
  joint: { alphaN: 0.076, alphaD: 0.103, Nc: 6.4e13, Dc: 1.8e13 } as KaplanLaw,
  /** Eq. 1.7 / §6: N_opt ∝ C_min^0.73, batch ∝ C^0.24, steps ∝ C^0.03. */
  nExponentInC: 0.73,
  /** Eq. 4.4: D ≳ (5·10³)·N^0.74 keeps overfitting under ~0.02 nats. */
  overfitD: { coefficient: 5e3, exponent: 0.74 },
};
