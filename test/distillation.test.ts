// lib/distillation.ts against plain loops, and a student that learns from a teacher.
import { describe, expect, it } from "vitest";
import { tf, Rng } from "../lib/tf";
import { distillationLoss, distillFrom } from "../lib/distillation";
import { initDecoder, TINY } from "../lib/decoder";
import { trainStep, adamw, disposeAdamW } from "../lib/train";

function slowLoss(zs: number[][], zt: number[][], y: number[], T: number, alpha: number): number {
  const logSoftmax = (z: number[], t: number) => {
    const m = Math.max(...z.map((v) => v / t));
    const s = Math.log(z.reduce((a, v) => a + Math.exp(v / t - m), 0)) + m;
    return z.map((v) => v / t - s);
  };
  let total = 0;
  zs.forEach((row, i) => {
    const lq = logSoftmax(row, T), lp = logSoftmax(zt[i], T);
    let kl = 0;
    lp.forEach((l, w) => (kl += Math.exp(l) * (l - lq[w])));
    total += alpha * T * T * kl + (1 - alpha) * -logSoftmax(row, 1)[y[i]];
  });
  return total / zs.length;
}

describe("distillationLoss", () => {
  const zs = [[1, 2, 0.5, -1], [0, 0, 3, 1], [2, -2, 0, 0]];
  const zt = [[2, 1, 0, 0], [0.5, 0, 2, 2], [1, 1, 1, -3]];
  const y = [1, 2, 0];
  it("matches the formula computed by hand", () => {
    for (const [T, alpha] of [[1, 0.5], [2, 0.5], [4, 1], [2, 0]]) {
      const got = distillationLoss(tf.tensor2d(zs), tf.tensor2d(zt), tf.tensor1d(y, "int32"), { temperature: T, alpha }).dataSync()[0];
      expect(got).toBeCloseTo(slowLoss(zs, zt, y, T, alpha), 5);
    }
  });
  it("is zero in its KL part when the student already is the teacher", () => {
    expect(distillationLoss(tf.tensor2d(zt), tf.tensor2d(zt), tf.tensor1d(y, "int32"), { alpha: 1 }).dataSync()[0]).toBeCloseTo(0, 6);
  });
  it("refuses mismatched shapes and bad options in one sentence", () => {
    expect(() => distillationLoss(tf.zeros([2, 3]) as tf.Tensor2D, tf.zeros([2, 4]) as tf.Tensor2D, tf.tensor1d([0, 1], "int32")))
      .toThrow(/student and teacher logits must both be \[rows, vocab\] of one shape, got \[2,3\] and \[2,4\]/);
    expect(() => distillationLoss(tf.tensor2d(zs), tf.tensor2d(zt), tf.tensor1d(y, "int32"), { temperature: 0 })).toThrow(/temperature must be a positive number, got 0/);
    expect(() => distillationLoss(tf.tensor2d(zs), tf.tensor2d(zt), tf.tensor1d(y, "int32"), { alpha: 2 })).toThrow(/alpha must be in \[0, 1\], got 2/);
  });
});

describe("distillFrom", () => {
  it("moves a student's distribution towards the teacher's, and leaves the teacher alone", () => {
    const config = { ...TINY, vocabSize: 12, dModel: 16, dFF: 32, nLayers: 1, contextLength: 8 };
    const teacher = { params: initDecoder(config, 1), config };
    (teacher.params["wte"] as tf.Variable).assign(teacher.params["wte"].mul(30)); // a confident teacher
    const before = teacher.params["wte"].dataSync().slice();
    const student = initDecoder(config, 2);
    const loss = distillFrom(teacher, config, { alpha: 1 });
    const rng = new Rng(5);
    const batch = tf.tensor2d(Array.from({ length: 4 }, () => Array.from({ length: 9 }, () => rng.int(12))), undefined, "int32");
    const state = adamw(student, Object.keys(student), { weightDecay: 0 });
    const first = loss(student, batch).dataSync()[0];
    for (let i = 0; i < 30; i++) trainStep(student, loss, batch, state, 1e-2).dispose();
    disposeAdamW(state);
    expect(loss(student, batch).dataSync()[0]).toBeLessThan(first * 0.5);
    expect(Array.from(teacher.params["wte"].dataSync())).toEqual(Array.from(before));
    expect(() => distillFrom(teacher, { ...config, vocabSize: 13 })).toThrow(/student.vocabSize must equal the teacher's \(12\)/);
  });
});
