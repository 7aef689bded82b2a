import { describe, expect, it } from "vitest";
import { Rng } from "../lib/tf";
import {
  BOOTSTRAP_GRID, HOFFMANN_GRID, KAPLAN_2020_LAWS, PUBLISHED_LAWS, SMALL_GRID,
  bootstrap, bootstrapOneVariable, bootstrapPowerLaw, chinchillaLoss, computeOptimal, computeOptimalSearch,
  fitOneVariable, fitPowerLaw, huber, kaplanLoss, percentile, powerLawObjective, trainingFlops,
  type ChinchillaLaw, type ScalingPoint,
} from "../lib/scaling";

const HOFF = PUBLISHED_LAWS.hoffmann2022;
const logspace = (lo: number, hi: number, n: number) =>
  Array.from({ length: n }, (_, i) => lo * Math.pow(hi / lo, i / (n - 1)));
const gauss = (rng: Rng) => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());

function grid(law: ChinchillaLaw, Ns: number[], Ds: number[], sigma = 0, seed = 1): ScalingPoint[] {
  const rng = new Rng(seed);
  const out: ScalingPoint[] = [];
  for (const N of Ns) for (const D of Ds) out.push({ N, D, L: chinchillaLoss(law, N, D) * Math.exp(sigma * gauss(rng)) });
  return out;
}
// Chinchilla-like ranges: 70M–16B parameters, 5B–1T tokens.
const CHIN_N = logspace(7e7, 1.6e10, 5);
const CHIN_D = logspace(5e9, 1e12, 4);

describe("formulas", () => {
  it("C ≈ 6ND", () => {
    expect(trainingFlops(7e10, 1.4e12)).toBeCloseTo(5.88e23, -20);
    expect(() => trainingFlops(0, 1)).toThrow(/N must be a positive finite number, got 0/);
  });

  it("chinchillaLoss is E + A/N^α + B/D^β", () => {
    const L = chinchillaLoss(HOFF, 7e10, 1.4e12);
    expect(L).toBeCloseTo(1.69 + 406.4 / Math.pow(7e10, 0.34) + 410.7 / Math.pow(1.4e12, 0.28), 12);
  });

  it("kaplanLoss reduces to (N_c/N)^α_N as D → ∞ and to (D_c/D)^α_D as N → ∞", () => {
    const k = KAPLAN_2020_LAWS.joint;
    expect(kaplanLoss(k, 1e9, 1e300)).toBeCloseTo(Math.pow(k.Nc / 1e9, k.alphaN), 10);
    expect(kaplanLoss(k, 1e300, 1e10)).toBeCloseTo(Math.pow(k.Dc / 1e10, k.alphaD), 10);
  });

  it("huber is quadratic inside δ, linear outside, continuous at ±δ", () => {
    const d = 1e-3;
    expect(huber(5e-4, d)).toBe(0.5 * 5e-4 * 5e-4);
    expect(huber(-0.2, d)).toBeCloseTo(d * (0.2 - d / 2), 15);
    expect(huber(d * (1 + 1e-12), d)).toBeCloseTo(huber(d, d), 15);
  });
});

describe("powerLawObjective", () => {
  const pts = grid({ E: 1.5, A: 40, B: 90, alpha: 0.4, beta: 0.3 }, logspace(2e3, 2e5, 4), logspace(2e4, 5e5, 3), 0.03);

  it("equals Σ Huber(log(E + A/N^α + B/D^β) − log L) computed the slow way", () => {
    const theta = [3, 4.2, 0.3, 0.35, 0.33];
    const [a, b, e, alpha, beta] = theta;
    let slow = 0;
    for (const p of pts) {
      const pred = Math.exp(e) + Math.exp(a) / Math.pow(p.N, alpha) + Math.exp(b) / Math.pow(p.D, beta);
      slow += huber(Math.log(pred) - Math.log(p.L), 1e-3);
    }
    expect(powerLawObjective(theta, pts).value).toBeCloseTo(slow, 14);
    expect(powerLawObjective(theta, pts, { reduce: "mean" }).value).toBeCloseTo(slow / pts.length, 15);
  });

  it("has an analytic gradient that matches central finite differences", () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 5; trial++) {
      const theta = [rng.next() * 8, rng.next() * 8, rng.next() * 2 - 1, 0.1 + rng.next(), 0.1 + rng.next()];
      for (const delta of [1e-3, 1]) { // linear region (δ small) and quadratic region (δ large)
        const { grad } = powerLawObjective(theta, pts, { delta });
        for (let k = 0; k < 5; k++) {
          const h = 1e-6;
          const up = theta.slice(); up[k] += h;
          const dn = theta.slice(); dn[k] -= h;
          const fd = (powerLawObjective(up, pts, { delta }).value - powerLawObjective(dn, pts, { delta }).value) / (2 * h);
          expect(Math.abs(grad[k] - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        }
      }
    }
  });

  it("stays finite where exp would overflow (log-sum-exp is shifted)", () => {
    const { value, grad } = powerLawObjective([800, 800, 800, 0, 0], pts);
    expect(Number.isFinite(value)).toBe(true);
    expect(grad.every(Number.isFinite)).toBe(true);
  });

  it("rejects bad points and theta", () => {
    expect(() => powerLawObjective([1, 2, 3], pts)).toThrow(/theta must be \[a, b, e, alpha, beta\]/);
    expect(() => powerLawObjective([1, 2, 3, 4, 5], [{ N: 1, D: -1, L: 2 }])).toThrow(/points\[0\] must have positive finite N, D and L/);
  });
});

describe("fitPowerLaw (Huber in log space, L-BFGS from a grid)", () => {
  it("uses Hoffmann et al.'s grid of 4500 starts", () => {
    expect(HOFFMANN_GRID.alpha).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(HOFFMANN_GRID.beta).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(HOFFMANN_GRID.e).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(HOFFMANN_GRID.a).toEqual([0, 5, 10, 15, 20, 25]);
    expect(HOFFMANN_GRID.b).toEqual([0, 5, 10, 15, 20, 25]);
  });

  it("recovers Hoffmann's (E, A, B, α, β) to < 1% from noise-free points, full grid", () => {
    const f = fitPowerLaw(grid(HOFF, CHIN_N, CHIN_D));
    expect(f.starts).toBe(4500);
    for (const k of ["E", "A", "B", "alpha", "beta"] as const) expect(Math.abs(f[k] / HOFF[k] - 1)).toBeLessThan(0.01);
    expect(f.r2).toBeCloseTo(1, 10);
    expect(f.residuals.every((r) => Math.abs(r) < 1e-9)).toBe(true);
  });

  it("recovers a tiny-model law (N 2e3–2e5, D 2e4–5e5, the book's sweep range) to < 1%", () => {
    const truth = { E: 1.3, A: 25, B: 150, alpha: 0.45, beta: 0.38 };
    const f = fitPowerLaw(grid(truth, logspace(2e3, 2e5, 5), logspace(2e4, 5e5, 4)), { grid: SMALL_GRID });
    for (const k of ["E", "A", "B", "alpha", "beta"] as const) expect(Math.abs(f[k] / truth[k] - 1)).toBeLessThan(0.01);
  });

  it("with 1% log-normal noise on 64 points: E within 5%, α and β within 20%, a within 0.06", () => {
    // Measured over seeds 1–10: |ΔE| ≤ 4.5%, |Δα| ≤ 16%, |Δβ| ≤ 13%, |Δa| ≤ 0.06 — while A and B
    // moved by up to a factor 2.5: they trade off against the exponents (Besiroglu et al. report B
    // 2085 ± 1293). Three seeds here keep the test to seconds.
    const a0 = HOFF.beta / (HOFF.alpha + HOFF.beta);
    for (const seed of [1, 3, 6]) {
      const f = fitPowerLaw(grid(HOFF, logspace(7e7, 1.6e10, 8), logspace(5e9, 1e12, 8), 0.01, seed), { grid: SMALL_GRID });
      expect(Math.abs(f.E / HOFF.E - 1)).toBeLessThan(0.05);
      expect(Math.abs(f.alpha / HOFF.alpha - 1)).toBeLessThan(0.2);
      expect(Math.abs(f.beta / HOFF.beta - 1)).toBeLessThan(0.2);
      expect(Math.abs(f.beta / (f.alpha + f.beta) - a0)).toBeLessThan(0.06);
      const rms = Math.sqrt(f.residuals.reduce((s, r) => s + r * r, 0) / f.residuals.length);
      expect(rms).toBeLessThan(0.012); // the fit explains everything but the 1% noise
    }
  });

  it("the mean-Huber objective with scipy's ftol stops early (Besiroglu et al.'s diagnosis)", () => {
    // scipy's rule stops when f drops by ≤ ftol·max(|f|, 1): with f ≪ 1 that is an absolute test, and
    // averaging makes f n = 64 times smaller. Our default (ftol off, gradient test) reaches the optimum.
    const pts = grid(HOFF, logspace(7e7, 1.6e10, 8), logspace(5e9, 1e12, 8), 0.01, 2);
    const one = { alpha: [0.2], beta: [0.2], e: [Math.log(2.5)], a: [Math.log(50)], b: [Math.log(50)] };
    const asSum = (f: { logA: number; logB: number; logE: number; alpha: number; beta: number }) =>
      powerLawObjective([f.logA, f.logB, f.logE, f.alpha, f.beta], pts).value;
    const optimum = fitPowerLaw(pts, { grid: SMALL_GRID }).objective;
    const meanEarly = asSum(fitPowerLaw(pts, { grid: one, reduce: "mean", ftol: 2.2e-9 }));
    const sumEarly = asSum(fitPowerLaw(pts, { grid: one, reduce: "sum", ftol: 2.2e-9 }));
    expect(meanEarly).toBeGreaterThan(1.3 * optimum); // measured 1.37×: E 1.28 instead of 1.67
    expect(sumEarly).toBeLessThan(1.05 * optimum); // measured 1.01×
    for (const reduce of ["sum", "mean"] as const) {
      expect(asSum(fitPowerLaw(pts, { grid: one, reduce })) / optimum).toBeCloseTo(1, 9);
    }
  });

  it("accepts a start whose E is 0 (a fit where the irreducible term vanished)", () => {
    const pts = grid({ E: 1e-30, A: 5, B: 20, alpha: 0.1, beta: 0.15 }, logspace(3e3, 1e5, 4), logspace(2e4, 3e5, 3));
    const one = { alpha: [0.5], beta: [0.5], e: [0], a: [1], b: [1] };
    const f = fitPowerLaw(pts, { grid: one, starts: [{ E: 0, A: 5, B: 20, alpha: 0.1, beta: 0.15 }] });
    expect(Number.isFinite(f.objective)).toBe(true);
    expect(f.objective).toBeLessThan(1e-12);
  });

  it("rejects too few points", () => {
    expect(() => fitPowerLaw(grid(HOFF, [1e8, 1e9], [1e10, 1e11]))).toThrow(/at least 5 runs/);
  });
});

describe("fitOneVariable (Kaplan form, log-log least squares)", () => {
  it("is exact for L = (N_c/N)^α_N (Kaplan's α_N 0.076, N_c 8.8e13)", () => {
    const { alphaN, Nc } = KAPLAN_2020_LAWS;
    const N = logspace(1e6, 1e9, 7);
    const f = fitOneVariable(N, N.map((n) => Math.pow(Nc / n, alphaN)));
    expect(f.alpha).toBeCloseTo(alphaN, 12);
    expect(f.xc / Nc).toBeCloseTo(1, 8);
    expect(f.r2).toBeCloseTo(1, 12);
  });

  it("matches the 2×2 normal equations solved by Cramer's rule", () => {
    const rng = new Rng(5);
    const x = logspace(1e4, 1e6, 9);
    const L = x.map((v) => Math.pow(3e8 / v, 0.1) * Math.exp(0.02 * gauss(rng)));
    const u = x.map(Math.log);
    const v = L.map(Math.log);
    const n = u.length;
    const Su = u.reduce((s, t) => s + t, 0);
    const Sv = v.reduce((s, t) => s + t, 0);
    const Suu = u.reduce((s, t) => s + t * t, 0);
    const Suv = u.reduce((s, t, i) => s + t * v[i], 0);
    const det = n * Suu - Su * Su;
    const slope = (n * Suv - Su * Sv) / det;
    const intercept = (Suu * Sv - Su * Suv) / det;
    const f = fitOneVariable(x, L);
    expect(f.slope).toBeCloseTo(slope, 10);
    expect(f.intercept).toBeCloseTo(intercept, 9);
    expect(f.residuals.reduce((s, r) => s + r, 0)).toBeCloseTo(0, 12); // OLS residuals sum to zero
  });

  it("rejects mismatched or non-positive input", () => {
    expect(() => fitOneVariable([1, 2], [1])).toThrow(/same length/);
    expect(() => fitOneVariable([1, -2], [1, 1])).toThrow(/x\[1\] must be positive/);
    expect(() => fitOneVariable([3, 3], [1, 2])).toThrow(/at least 2 distinct values/);
  });
});

describe("bootstrap", () => {
  it("percentile interpolates linearly between order statistics", () => {
    expect(percentile([3, 1, 2, 4], 0)).toBe(1);
    expect(percentile([3, 1, 2, 4], 1)).toBe(4);
    expect(percentile([3, 1, 2, 4], 0.5)).toBe(2.5);
    expect(percentile([10, 20, 30, 40, 50], 0.1)).toBeCloseTo(14, 12);
  });

  it("is reproducible with a seed and resamples with replacement", () => {
    const x = [1, 2, 3, 4, 5, 6, 7, 8];
    const mean = (idx: number[]) => ({ mean: idx.reduce((s, i) => s + x[i], 0) / idx.length });
    const a = bootstrap(x.length, mean, { samples: 50, seed: 9 });
    const b = bootstrap(x.length, mean, { samples: 50, seed: 9 });
    const c = bootstrap(x.length, mean, { samples: 50, seed: 10 });
    expect(a.intervals).toEqual(b.intervals);
    expect(a.intervals).not.toEqual(c.intervals);
    expect(a.estimates.some((e) => e.mean !== 4.5)).toBe(true);
    const [lo, hi] = a.intervals.mean;
    expect(lo).toBeLessThan(4.5);
    expect(hi).toBeGreaterThan(4.5);
  });

  it("one-variable intervals contain the true exponent of noisy data", () => {
    const rng = new Rng(11);
    const x = logspace(1e4, 1e6, 12);
    const L = x.map((v) => Math.pow(3e8 / v, 0.1) * Math.exp(0.02 * gauss(rng)));
    const r = bootstrapOneVariable(x, L, { samples: 300, seed: 1 });
    const [lo, hi] = r.intervals.alpha;
    expect(lo).toBeLessThan(0.1);
    expect(hi).toBeGreaterThan(0.1);
    expect(hi - lo).toBeLessThan(0.05);
    expect(lo).toBeLessThanOrEqual(r.fit.alpha);
    expect(hi).toBeGreaterThanOrEqual(r.fit.alpha);
  });

  it("bootstrapPowerLaw gives intervals around the fit and a + b = 1 in every refit", () => {
    const truth = { E: 1.3, A: 25, B: 150, alpha: 0.45, beta: 0.38 };
    const pts = grid(truth, logspace(2e3, 2e5, 5), logspace(2e4, 5e5, 4), 0.01, 4);
    const r = bootstrapPowerLaw(pts, { samples: 20, seed: 2, fit: { grid: BOOTSTRAP_GRID } });
    for (const k of ["E", "alpha", "beta"] as const) {
      const [lo, hi] = r.intervals[k];
      expect(lo).toBeLessThanOrEqual(hi);
      expect(hi - lo).toBeGreaterThan(0); // the resamples differ
      expect(lo).toBeLessThan(truth[k] * 1.25);
      expect(hi).toBeGreaterThan(truth[k] * 0.75);
    }
    for (const e of r.estimates) expect(e.a + e.b).toBeCloseTo(1, 12);
  });
});

describe("computeOptimal (C = 6ND)", () => {
  it("matches a brute-force search over N on a fine log grid", () => {
    for (const law of [HOFF, PUBLISHED_LAWS.besiroglu2024]) {
      for (const C of [1e18, 5.76e23, 1e26]) {
        const opt = computeOptimal(law, C);
        let bestN = 0;
        let bestL = Infinity;
        const lo = Math.log(1e3);
        const hi = Math.log(C / 6 / 1e3);
        for (let k = 0; k <= 200000; k++) {
          const N = Math.exp(lo + ((hi - lo) * k) / 200000);
          const L = chinchillaLoss(law, N, C / (6 * N));
          if (L < bestL) { bestL = L; bestN = N; }
        }
        expect(Math.abs(opt.N / bestN - 1)).toBeLessThan(2e-4); // the grid step is 1.3e-4 in log N
        expect(opt.loss).toBeLessThanOrEqual(bestL + 1e-12);
        expect(6 * opt.N * opt.D / C).toBeCloseTo(1, 12);
        const search = computeOptimalSearch(law, C);
        expect(search.N / opt.N).toBeCloseTo(1, 6);
      }
    }
  });

  it("with α = β: N_opt = (A/B)^(1/2α)·√(C/6) and D/N = (B/A)^(1/α) for every C", () => {
    const law = { E: 1.7, A: 300, B: 1200, alpha: 0.3, beta: 0.3 };
    for (const C of [1e20, 1e24]) {
      const opt = computeOptimal(law, C);
      expect(opt.N / (Math.pow(300 / 1200, 1 / 0.6) * Math.sqrt(C / 6))).toBeCloseTo(1, 12);
      expect(opt.tokensPerParam / Math.pow(1200 / 300, 1 / 0.3)).toBeCloseTo(1, 12);
      expect(opt.a).toBe(0.5);
      expect(opt.dExponentInN).toBeCloseTo(1, 15);
    }
  });

  it("gives the published exponents a = β/(α+β): Hoffmann 0.46 (TeX values), Besiroglu 0.513", () => {
    expect(computeOptimal(PUBLISHED_LAWS.hoffmann2022Unrounded, 1e24).a).toBeCloseTo(0.46, 2);
    expect(computeOptimal(PUBLISHED_LAWS.besiroglu2024, 1e24).a).toBeCloseTo(0.5126, 4);
    const o = computeOptimal(HOFF, 1e24);
    expect(o.a + o.b).toBeCloseTo(1, 15);
    // D/N grows with C exactly as (C/6)^(b−a)/G².
    const o2 = computeOptimal(HOFF, 1e26);
    expect(o2.tokensPerParam / o.tokensPerParam).toBeCloseTo(Math.pow(100, o.b - o.a), 10);
  });

  it("rejects a law it cannot optimise", () => {
    expect(() => computeOptimal({ E: 1, A: 1, B: 1, alpha: 0, beta: 0.3 }, 1e20)).toThrow(/law.alpha must be positive/);
    expect(() => computeOptimal(HOFF, -1)).toThrow(/C must be a positive finite number/);
  });
});

describe("published fits", () => {
  it("hold the papers' numbers", () => {
    expect(PUBLISHED_LAWS.hoffmann2022).toMatchObject({ E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 });
    expect(PUBLISHED_LAWS.besiroglu2024).toMatchObject({ E: 1.8172, A: 482.01, B: 2085.43, alpha: 0.3478, beta: 0.3658 });
    expect(PUBLISHED_LAWS.besiroglu2024.source.arxiv).toBe("2404.10102");
    expect(KAPLAN_2020_LAWS).toMatchObject({ alphaN: 0.076, Nc: 8.8e13, alphaD: 0.095, Dc: 5.4e13, alphaCmin: 0.05, CcMinPFDays: 3.1e8 });
    // Kaplan's D ∝ N^0.74 is α_N/α_D of the joint fit; the chapter's 0.8 is 0.076/0.095.
    expect(KAPLAN_2020_LAWS.joint.alphaN / KAPLAN_2020_LAWS.joint.alphaD).toBeCloseTo(0.74, 2);
    expect(KAPLAN_2020_LAWS.alphaN / KAPLAN_2020_LAWS.alphaD).toBeCloseTo(0.8, 10);
  });
});
