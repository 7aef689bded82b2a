import { describe, expect, it } from "vitest";
import { minimize } from "../lib/lbfgs";

// Rosenbrock's banana: a curved valley, the classic test that plain gradient descent crawls along.
const rosen = (x: number[]) => 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2;
const rosenGrad = (x: number[]) => [
  -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]),
  200 * (x[1] - x[0] ** 2),
];

describe("minimize (L-BFGS, strong Wolfe line search)", () => {
  it("finds Rosenbrock's minimum (1, 1) from (-1.2, 1) to 1e-6", () => {
    const r = minimize(rosen, rosenGrad, [-1.2, 1]);
    expect(r.converged).toBe(true);
    expect(Math.abs(r.x[0] - 1)).toBeLessThan(1e-6);
    expect(Math.abs(r.x[1] - 1)).toBeLessThan(1e-6);
    expect(r.fx).toBeLessThan(1e-12);
    expect(r.iterations).toBeLessThan(100); // quasi-Newton: tens, not thousands, of steps
  });

  it("solves an ill-conditioned quadratic ½xᵀQx − bᵀx: x = Q⁻¹b", () => {
    // Q = diag(1, 10, 100, 1000) rotated a little by coupling terms; solution checked by Q·x = b.
    const Q = [
      [1, 0.5, 0, 0],
      [0.5, 10, 1, 0],
      [0, 1, 100, 5],
      [0, 0, 5, 1000],
    ];
    const b = [1, -2, 3, 4];
    const mv = (x: number[]) => Q.map((row) => row.reduce((s, q, j) => s + q * x[j], 0));
    const f = (x: number[]) => 0.5 * mv(x).reduce((s, v, i) => s + v * x[i], 0) - b.reduce((s, v, i) => s + v * x[i], 0);
    const g = (x: number[]) => mv(x).map((v, i) => v - b[i]);
    const r = minimize(f, g, [0, 0, 0, 0]);
    expect(r.converged).toBe(true);
    const residual = mv(r.x).map((v, i) => v - b[i]);
    for (const v of residual) expect(Math.abs(v)).toBeLessThan(1e-9);
    // On a quadratic in n dimensions exact-line-search BFGS needs n steps; allow a few more.
    expect(r.iterations).toBeLessThan(20);
  });

  it("reaches the bottom of a 1-D quadratic exactly", () => {
    const r = minimize((x) => (x[0] - 3) ** 2, (x) => [2 * (x[0] - 3)], [10]);
    expect(r.x[0]).toBeCloseTo(3, 12);
  });

  it("backs off from steps where f overflows", () => {
    // exp(x) − 2x has its minimum at ln 2; a long first step would overflow exp.
    const r = minimize((x) => Math.exp(x[0]) - 2 * x[0], (x) => [Math.exp(x[0]) - 2], [-800]);
    expect(r.x[0]).toBeCloseTo(Math.LN2, 8);
  });

  it("ftol stops early on an objective that is small in absolute terms (the mean-vs-sum trap)", () => {
    // Same valley scaled by 1e-9: the gradient test cannot be met at the default tol... but with
    // scipy's ftol rule, decreases of ~1e-12 look like "no progress" next to max(|f|, 1) = 1.
    const tiny = (x: number[]) => 1e-9 * rosen(x);
    const tinyGrad = (x: number[]) => rosenGrad(x).map((v) => 1e-9 * v);
    const early = minimize(tiny, tinyGrad, [-1.2, 1], { ftol: 2.2e-9 });
    expect(early.converged).toBe(true);
    expect(Math.abs(early.x[0] - 1)).toBeGreaterThan(0.1); // stopped far from the minimum
    const full = minimize(tiny, tinyGrad, [-1.2, 1], { tol: 1e-18 });
    expect(Math.abs(full.x[0] - 1)).toBeLessThan(1e-5);
  });

  it("reports maxIter without claiming convergence", () => {
    const r = minimize(rosen, rosenGrad, [-1.2, 1], { maxIter: 3 });
    expect(r.iterations).toBe(3);
    expect(r.converged).toBe(false);
  });

  it("rejects bad arguments with one sentence", () => {
    expect(() => minimize(rosen, rosenGrad, [])).toThrow(/x0 must be a non-empty array/);
    expect(() => minimize(rosen, rosenGrad, [NaN, 1])).toThrow(/x0 must be/);
    expect(() => minimize(rosen, rosenGrad, [0, 0], { memory: 0 })).toThrow(/memory must be/);
    expect(() => minimize(() => NaN, () => [0], [0])).toThrow(/finite at x0/);
    expect(() => minimize(rosen, () => [0], [0, 0])).toThrow(/grad must return 2 numbers/);
  });
});
