// L-BFGS: the quasi-Newton optimiser that Hoffmann et al. (2022) used to fit their scaling law.
//
// Newton's method steps by -H⁻¹g, but the Hessian H is expensive. BFGS builds an approximation of
// H⁻¹ from how the gradient changed along the steps already taken (pairs s = Δx, y = Δg); the
// limited-memory variant keeps only the last m pairs and applies the approximation with the
// "two-loop recursion" (Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 7.4) without
// ever forming a matrix. The step length comes from a line search that satisfies the strong Wolfe
// conditions (Algorithms 3.5 and 3.6 there): enough decrease, and a slope that has flattened, which
// guarantees sᵀy > 0 so the approximation stays positive definite.
//
// Plain JS numbers (float64) on purpose: the problems here have a handful of parameters.

export interface MinimizeOptions {
  /** Most iterations (each is one direction and one line search). Default 1000. */
  maxIter?: number;
  /** Stop when the largest gradient component |g|∞ ≤ tol. Default 1e-10. */
  tol?: number;
  /**
   * Also stop when an iteration lowers f by at most ftol·max(|f|, 1) — scipy's L-BFGS-B rule
   * (its default is 2.2e-9). Default 0 (off). With it on, an objective that is small in absolute
   * terms stops early: Besiroglu et al. (2024) trace Hoffmann et al.'s fit to exactly that.
   */
  ftol?: number;
  /** Pairs (s, y) kept: the memory m. Default 10. */
  memory?: number;
  /** Function evaluations allowed per line search. Default 40. */
  maxLineSearch?: number;
}

export interface MinimizeResult {
  x: number[];
  fx: number;
  /** |g(x)|∞ at the returned point. */
  gradNorm: number;
  iterations: number;
  /** Calls of f (each line-search trial evaluates f and grad once). */
  evaluations: number;
  /** True when the gradient test (or the ftol test, if on) ended the run. */
  converged: boolean;
  message: string;
}

// Wolfe constants: c1 for sufficient decrease, c2 for the curvature (slope) condition; 1e-4 and 0.9
// are the standard choices for quasi-Newton methods (Nocedal & Wright, §3.1).
const C1 = 1e-4;
const C2 = 0.9;

const dot = (a: number[], b: number[]): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const normInf = (a: number[]): number => {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
};
const axpy = (x: number[], alpha: number, p: number[]): number[] => x.map((v, i) => v + alpha * p[i]);

// Minimiser of the cubic through (a, fa, ga) and (b, fb, gb) (Nocedal & Wright eq. 3.59), or NaN.
function cubicMin(a: number, fa: number, ga: number, b: number, fb: number, gb: number): number {
  const d1 = ga + gb - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - ga * gb;
  if (!(disc >= 0)) return NaN;
  const d2 = Math.sign(b - a) * Math.sqrt(disc);
  return b - ((b - a) * (gb + d2 - d1)) / (gb - ga + 2 * d2);
}

interface Trial { t: number; f: number; g: number[]; slope: number }

// min f(x) from x0 by L-BFGS with a strong-Wolfe line search
// f: Rⁿ → R, grad: Rⁿ → Rⁿ (∂f/∂x), x0: n numbers -> the minimiser found, f there, and how it ended
export function minimize(
  f: (x: number[]) => number,
  grad: (x: number[]) => number[],
  x0: number[],
  options: MinimizeOptions = {},
): MinimizeResult {
  const { maxIter = 1000, tol = 1e-10, ftol = 0, memory = 10, maxLineSearch = 40 } = options;
  if (!Array.isArray(x0) || x0.length === 0 || !x0.every(Number.isFinite)) {
    throw new Error(`x0 must be a non-empty array of finite numbers, got ${JSON.stringify(x0)}.`);
  }
  if (!(Number.isInteger(maxIter) && maxIter >= 0)) throw new Error(`maxIter must be an integer ≥ 0, got ${maxIter}.`);
  if (!(tol >= 0)) throw new Error(`tol must be ≥ 0, got ${tol}.`);
  if (!(ftol >= 0)) throw new Error(`ftol must be ≥ 0, got ${ftol}.`);
  if (!(Number.isInteger(memory) && memory >= 1)) throw new Error(`memory must be an integer ≥ 1, got ${memory}.`);

  let evaluations = 0;
  const evaluate = (x: number[]): { f: number; g: number[] } => {
    evaluations++;
    const fx = f(x);
    // Overflow or a domain error counts as "far too high": the line search then backs off.
    if (!Number.isFinite(fx)) return { f: Infinity, g: x.map(() => NaN) };
    const g = grad(x);
    if (g.length !== x.length) throw new Error(`grad must return ${x.length} numbers, got ${g.length}.`);
    return { f: fx, g };
  };

  let x = x0.slice();
  let { f: fx, g } = evaluate(x);
  if (!Number.isFinite(fx) || !g.every(Number.isFinite)) {
    throw new Error(`f and grad must be finite at x0, got f(x0) = ${fx}.`);
  }
  const S: number[][] = [];
  const Y: number[][] = [];
  const done = (iterations: number, converged: boolean, message: string): MinimizeResult => ({
    x, fx, gradNorm: normInf(g), iterations, evaluations, converged, message,
  });

  for (let k = 0; k < maxIter; k++) {
    if (normInf(g) <= tol) return done(k, true, `|g|∞ ≤ tol (${tol})`);

    // Two-loop recursion: p = -H·g with H the L-BFGS inverse-Hessian approximation.
    const q = g.slice();
    const alphas: number[] = new Array(S.length);
    for (let i = S.length - 1; i >= 0; i--) {
      alphas[i] = dot(S[i], q) / dot(Y[i], S[i]);
      for (let j = 0; j < q.length; j++) q[j] -= alphas[i] * Y[i][j];
    }
    // Initial H₀ = γI with γ = sᵀy/yᵀy from the newest pair: it gives the step the right scale.
    const last = S.length - 1;
    const gamma = last >= 0 ? dot(S[last], Y[last]) / dot(Y[last], Y[last]) : 1;
    for (let j = 0; j < q.length; j++) q[j] *= gamma;
    for (let i = 0; i < S.length; i++) {
      const beta = dot(Y[i], q) / dot(Y[i], S[i]);
      for (let j = 0; j < q.length; j++) q[j] += S[i][j] * (alphas[i] - beta);
    }
    let p = q.map((v) => -v);
    let slope0 = dot(g, p);
    if (!(slope0 < 0)) {
      // Not a descent direction (rounding): forget the history and go downhill.
      S.length = 0;
      Y.length = 0;
      p = g.map((v) => -v);
      slope0 = dot(g, p);
    }
    // First step: no curvature known yet, so take a step of length ~1 in the steepest direction.
    const t0 = S.length === 0 ? Math.min(1, 1 / normInf(g)) : 1;

    let trial = lineSearch(x, fx, p, slope0, t0);
    if (trial === null && S.length > 0) {
      // The quasi-Newton direction failed: restart once from steepest descent.
      S.length = 0;
      Y.length = 0;
      p = g.map((v) => -v);
      slope0 = dot(g, p);
      trial = lineSearch(x, fx, p, slope0, Math.min(1, 1 / normInf(g)));
    }
    if (trial === null) {
      return done(k, normInf(g) <= tol, "line search found no lower point (f is flat to rounding along -g)");
    }

    const xNew = axpy(x, trial.t, p);
    const s = xNew.map((v, i) => v - x[i]);
    const y = trial.g.map((v, i) => v - g[i]);
    const fOld = fx;
    x = xNew;
    fx = trial.f;
    g = trial.g;
    // Keep the pair only with positive curvature (strong Wolfe guarantees it up to rounding).
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      S.push(s);
      Y.push(y);
      if (S.length > memory) {
        S.shift();
        Y.shift();
      }
    }
    if (ftol > 0 && fOld - fx <= ftol * Math.max(Math.abs(fOld), Math.abs(fx), 1)) {
      return done(k + 1, true, `relative decrease of f ≤ ftol (${ftol})`);
    }
  }
  return done(maxIter, normInf(g) <= tol, `reached maxIter (${maxIter})`);

  // A step t along p with f(x+tp) ≤ f(x) + c1·t·slope0 and |slope(t)| ≤ c2·|slope0|, or null.
  function lineSearch(x: number[], f0: number, p: number[], slope0: number, t1: number): Trial | null {
    const at = (t: number): Trial => {
      const { f: ft, g: gt } = evaluate(axpy(x, t, p));
      return { t, f: ft, g: gt, slope: Number.isFinite(ft) ? dot(gt, p) : NaN };
    };
    const armijo = (tr: Trial): boolean => tr.f <= f0 + C1 * tr.t * slope0;
    const curvature = (tr: Trial): boolean => Math.abs(tr.slope) <= -C2 * slope0;
    let prev: Trial = { t: 0, f: f0, g: [], slope: slope0 };
    let t = t1;
    let best: Trial | null = null; // lowest point with sufficient decrease, a fallback
    for (let i = 0; i < maxLineSearch; i++) {
      const cur = at(t);
      if (armijo(cur) && (best === null || cur.f < best.f)) best = cur;
      if (!armijo(cur) || (i > 0 && cur.f >= prev.f)) return zoom(prev, cur, maxLineSearch - i - 1) ?? best;
      if (curvature(cur)) return cur;
      if (cur.slope >= 0) return zoom(cur, prev, maxLineSearch - i - 1) ?? best;
      prev = cur;
      t *= 2; // still going down steeply: the minimum along p is further out
    }
    return best;

    // lo has sufficient decrease and the lowest f so far; the minimiser lies between lo and hi.
    function zoom(lo: Trial, hi: Trial, budget: number): Trial | null {
      let fallback: Trial | null = lo.t > 0 ? lo : null;
      for (let j = 0; j < budget; j++) {
        const a = Math.min(lo.t, hi.t);
        const b = Math.max(lo.t, hi.t);
        const width = b - a;
        if (width <= 1e-16 * Math.max(1, b)) break;
        let tj = Number.isFinite(hi.f) ? cubicMin(lo.t, lo.f, lo.slope, hi.t, hi.f, hi.slope) : NaN;
        // Safeguard: stay inside the bracket, away from its ends; otherwise bisect.
        if (!(tj >= a + 0.1 * width && tj <= b - 0.1 * width)) tj = (lo.t + hi.t) / 2;
        const cur = at(tj);
        if (!armijo(cur) || cur.f >= lo.f) {
          hi = cur;
        } else {
          if (curvature(cur)) return cur;
          if (cur.slope * (hi.t - lo.t) >= 0) hi = lo;
          lo = cur;
          fallback = cur;
        }
      }
      return fallback;
    }
  }
}
