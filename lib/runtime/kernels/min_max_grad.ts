/**
 * Gradients of the `Max` and `Min` reductions without a broadcast comparison.
 *
 * tfjs-core's gradient is `dy * cast(equal(x, y))` with the reduced `y` broadcast against `x`;
 * wasm's Equal has no fast broadcasting path (255 ms for CBAM's global max pool over
 * [8,32,32,64]). Since `y - x >= 0` for a maximum (`x - y >= 0` for a minimum), and is exactly 0
 * where they are equal, the mask is `1 - step(y - x)`: a broadcast subtraction and unary ops,
 * which XNNPACK runs.
 *
 * Ties share the gradient: each of the k entries equal to the extremum gets dy / k, as in
 * TensorFlow's `reduce_max` gradient and PyTorch's `amax`. tfjs-core gives each of them the whole
 * dy, which is k times the change of the maximum along that gradient: a step of size e along -g
 * lowers max(5, 5) by e dy, where g . g said 2 e dy^2 / dy (an SGD step on a max over a tie overshot
 * by k). With dy / k, g . d is the one-sided derivative along d = -g.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "../../types.ts";

/**
 * The gradient config of `Max` or `Min`.
 *
 * @param kind which reduction.
 * @returns the config to register with `tf.registerGradient`.
 */
export function minMaxGrad(kind: "Max" | "Min"): tf.GradConfig {
  return {
    kernelName: kind,
    inputsToSave: ["x"],
    outputsToSave: [true],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: tf.NamedAttrMap) => {
      const [x, y] = saved;
      // Max names its axes reductionIndices, Min axis
      const a = attrs as unknown as { reductionIndices?: number | number[]; axis?: number | number[] };
      const raw = kind === "Max" ? a.reductionIndices : a.axis;
      const axes = raw == null ? x.shape.map((_, i) => i) : tf.util.parseAxisParam(raw, x.shape);
      // y (and dy) lack the reduced axes unless the op kept them
      const keep = y.rank < x.rank ? tf.backend_util.expandShapeToKeepDim(y.shape, axes) : y.shape;
      return {
        x: () => {
          const yk = tf.reshape(y, keep), dyk = tf.reshape(dy as Tensor, keep);
          const gap = kind === "Max" ? tf.sub(yk, x) : tf.sub(x, yk); // >= 0, 0 at the extremum
          const mask = tf.sub(1, tf.step(gap));
          const ties = tf.sum(mask, axes, true); // >= 1: the extremum itself
          return tf.mul(tf.div(dyk, ties), mask);
        },
      };
    },
  };
}
