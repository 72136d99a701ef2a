/**
 * The gradient of `AvgPool` (`tf.avgPool`) where windows overlap the padding.
 *
 * tfjs's average pooling divides each window's sum by the number of input cells it covers (padding
 * excluded, PyTorch's `count_include_pad=False`) on every backend, but tfjs-core 4.22's gradient
 * (`avgPoolGrad`, the `AvgPoolGrad` kernels) spreads `dy` with `1 / (kh * kw)` everywhere: at the
 * borders of a 'same' (or explicitly padded) pool the gradient was too small by the window's
 * padded share (a 3x3 stride-2 'same' pool of a 7x9 map: 32% off along the gradient). This one
 * scales `dy` by `kh * kw / count` per output position first, which makes the kernel's uniform
 * spread the exact gradient; windows inside the input keep `dy` as it is.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor4D } from "../../types.ts";

/** Attributes of `AvgPool` as `tf.avgPool` passes them. */
interface AvgPoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/**
 * Input cells each output position's window covers along one axis.
 *
 * @returns per output index, the count, or null when every window lies inside the input.
 */
function coverage(inSize: number, outSize: number, k: number, stride: number, before: number): number[] | null {
  const counts = Array.from({ length: outSize }, (_, o) => {
    const start = o * stride - before;
    return Math.max(1, Math.min(inSize, start + k) - Math.max(0, start));
  });
  return counts.every((c) => c === k) ? null : counts;
}

/**
 * The gradient config of `AvgPool`, falling back to `original` when no window touches the padding.
 *
 * @param original tfjs-core's gradient config for `AvgPool`.
 * @returns the config to register with `tf.registerGradient`.
 */
export function avgPoolGrad(original: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: "AvgPool",
    inputsToSave: ["x"],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: tf.NamedAttrMap) => {
      const [x] = saved;
      const a = attrs as unknown as AvgPoolAttrs;
      if (x.rank !== 4) return original.gradFunc(dy, saved, attrs);
      const info = tf.backend_util.computePool2DInfo(
        x.shape as [number, number, number, number],
        a.filterSize,
        a.strides,
        1,
        a.pad,
        a.dimRoundingMode,
      );
      const rows = coverage(info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.padInfo.top);
      const cols = coverage(info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.padInfo.left);
      if (rows == null && cols == null) return original.gradFunc(dy, saved, attrs);
      const area = info.filterHeight * info.filterWidth;
      const r = rows ?? new Array(info.outHeight).fill(info.filterHeight);
      const c = cols ?? new Array(info.outWidth).fill(info.filterWidth);
      // kh kw / count per output position, [1, Ho, Wo, 1]
      const scale = tf.tensor4d(
        r.flatMap((rc) => c.map((cc) => area / (rc * cc))),
        [1, info.outHeight, info.outWidth, 1],
      );
      const scaled = tf.mul(dy as Tensor, scale) as Tensor4D;
      scale.dispose();
      return original.gradFunc(scaled, saved, attrs);
    },
  };
}
