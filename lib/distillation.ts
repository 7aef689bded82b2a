// Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student learns from a big teacher's
// whole next-token distribution, not only from the one token that actually came next.
import { tf } from "./tf";
import { DecoderConfig, Params, decoderForward } from "./decoder";
import { crossEntropy } from "./layers";

function need(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

export interface DistillOptions {
  /** Softens both distributions; Hinton et al. scale the KL term by T² so its gradients keep their size. */
  temperature?: number;
  /** Weight of the teacher's term; 1 − alpha goes to the ordinary cross-entropy on the true tokens. */
  alpha?: number;
}

// L = α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α)·CE(softmax(z_s), y), averaged over rows
// student [N,V], teacher [N,V] logits, targets [N] int32 -> scalar (nats)
export function distillationLoss(student: tf.Tensor2D, teacher: tf.Tensor2D, targets: tf.Tensor1D, options: DistillOptions = {}): tf.Scalar {
  const { temperature: T = 2, alpha = 0.5 } = options;
  need(student.rank === 2 && teacher.rank === 2 && student.shape.join() === teacher.shape.join(),
    `student and teacher logits must both be [rows, vocab] of one shape, got [${student.shape.join(",")}] and [${teacher.shape.join(",")}]`);
  need(T > 0 && Number.isFinite(T), `temperature must be a positive number, got ${T}`);
  need(alpha >= 0 && alpha <= 1, `alpha must be in [0, 1], got ${alpha}`);
  return tf.tidy(() => {
    const logQ = tf.logSoftmax(student.div(T));
    const logP = tf.logSoftmax(teacher.div(T));
    const kl = tf.sum(tf.exp(logP).mul(logP.sub(logQ)), -1).mean(); // Σ_w p_w (log p_w − log q_w)
    const soft = kl.mul(alpha * T * T);
    return alpha === 1 ? (soft as tf.Scalar) : (soft.add(crossEntropy(student, targets).mul(1 - alpha)) as tf.Scalar);
  });
}

// the student's loss on a batch: distillationLoss(student(x), teacher(x), next tokens); the teacher is frozen
// teacher {params, config}, student config -> loss(params, ids [B,T+1]) for lib/train.ts's train
export function distillFrom(teacher: { params: Params; config: DecoderConfig }, student: DecoderConfig, options: DistillOptions = {}):
  (params: Params, ids: tf.Tensor2D) => tf.Scalar {
  need(teacher.config.vocabSize === student.vocabSize,
    `student.vocabSize must equal the teacher's (${teacher.config.vocabSize}) so their distributions compare, got ${student.vocabSize}`);
  return (params, ids) => {
    const [B, T1] = ids.shape;
    const T = T1 - 1;
    const inputs = ids.slice([0, 0], [B, T]);
    const targets = ids.slice([0, 1], [B, T]).reshape([B * T]) as tf.Tensor1D;
    // the teacher's logits are constants for the student's gradient: stopGradient is implicit, since
    // only the student's variables are trained, and the teacher's forward is outside their graph
    const zt = decoderForward(teacher.params, teacher.config, inputs).logits.reshape([B * T, student.vocabSize]) as tf.Tensor2D;
    const zs = decoderForward(params, student, inputs).logits.reshape([B * T, student.vocabSize]) as tf.Tensor2D;
    return distillationLoss(zs, zt, targets, options);
  };
}
