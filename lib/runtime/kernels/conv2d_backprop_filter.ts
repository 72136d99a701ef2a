/**
 * `Conv2DBackpropFilter` (the weight gradient of conv2d) computed as ONE
 * forward conv2d on transposed tensors (the "dilation = stride" trick).
 * wasm has no such kernel; cpu has a naive loop that is 20-70x slower.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel, windowAxis } from "./as_kernel.ts";
import { conv2dBackpropFilterViaGemm, GEMM_FILTER_MAX_POSITIONS_PER_COUT } from "./conv2d_gemm.ts";
import type { KernelBackend, KernelConfig, Tensor4D } from "../../types.ts";

/** Explicit NHWC padding `[[0, 0], [top, bottom], [left, right], [0, 0]]`. */
export type ExplicitPadding = [
  [number, number],
  [number, number],
  [number, number],
  [number, number],
];

/** Padding accepted by tfjs convs: 'same', 'valid', a number or explicit pairs. */
export type ConvPad = "same" | "valid" | number | ExplicitPadding;

/** Conv strides (or dilations): one number or `[height, width]`. */
export type ConvStrides = number | [number, number];

/** How tfjs rounds the output size when `pad` is a number. */
export type DimRoundingMode = "floor" | "round" | "ceil";

/** tfjs' geometry (strides, padding, output size) of an NHWC conv2d with dilation 1, as its gradients see it. */
export function nhwcConvInfo(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  strides: ConvStrides,
  pad: ConvPad,
  dimRoundingMode?: DimRoundingMode,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
}

/**
 * Filter gradient of a stride-`strides` 2-D convolution.
 *
 * `dW[kh,kw,ci,co] = sum_{n,i,j} x[n, i*sh+kh-padTop, j*sw+kw-padLeft, ci] *
 * dy[n,i,j,co]`, computed as `conv2d(x^T, dy^T, dilation = stride)` with
 * `x^T = x -> [Cin, Hp, Wp, N]` (padded/cropped to exactly
 * `(Ho-1)*sh + kh` rows) and `dy^T = dy -> [Ho, Wo, N, Cout]` as the filter;
 * the `[Cin, kh, kw, Cout]` result is transposed to `[kh, kw, Cin, Cout]`.
 * Padding follows tfjs exactly (asymmetric 'same': top = floor(total / 2)).
 *
 * @param x input, `[N, H, W, Cin]` (NHWC) or `[N, Cin, H, W]` (NCHW).
 * @param dy output gradient, `[N, Ho, Wo, Cout]` (or `[N, Cout, Ho, Wo]`).
 * @param filterShape `[kh, kw, Cin, Cout]`.
 * @param strides conv strides (number or `[sh, sw]`).
 * @param pad the forward conv's padding.
 * @param dataFormat "NHWC" (default, what tfjs-layers uses) or "NCHW".
 * @param dimRoundingMode rounding of the output size when `pad` is a number.
 * @returns filter gradient `[kh, kw, Cin, Cout]`.
 */
export function conv2dBackpropFilterViaConv(
  x: Tensor4D,
  dy: Tensor4D,
  filterShape: [number, number, number, number],
  strides: ConvStrides,
  pad: ConvPad,
  dataFormat: "NHWC" | "NCHW" = "NHWC",
  dimRoundingMode?: DimRoundingMode,
): Tensor4D {
  return tf.tidy(() => {
    let xs = x;
    let dys = dy;
    if (dataFormat === "NCHW") {
      xs = tf.transpose(x, [0, 2, 3, 1]);
      dys = tf.transpose(dy, [0, 2, 3, 1]);
    }
    const info = nhwcConvInfo(xs.shape, filterShape, strides, pad, dimRoundingMode);
    const { strideHeight: sh, strideWidth: sw, padInfo } = info;
    const { filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo } = info;
    let xp = windowAxis(xs, 1, padInfo.top, (ho - 1) * sh + kh);
    xp = windowAxis(xp, 2, padInfo.left, (wo - 1) * sw + kw);
    const xT = tf.transpose(xp, [3, 1, 2, 0]); // [Cin, Hp, Wp, N]
    const dyT = tf.transpose(dys, [1, 2, 0, 3]); // [Ho, Wo, N, Cout]
    const dilations: [number, number] = [ho > 1 ? sh : 1, wo > 1 ? sw : 1];
    const g = tf.conv2d(xT, dyT, 1, "valid", "NHWC", dilations);
    return tf.transpose(g, [1, 2, 0, 3]); // [kh, kw, Cin, Cout]
  });
}

/** Attributes of the `Conv2DBackpropFilter` kernel, as tfjs passes them. */
interface FilterAttrs {
  strides: ConvStrides;
  pad: ConvPad;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: DimRoundingMode;
  filterShape: [number, number, number, number];
}

/**
 * Kernel config computing `Conv2DBackpropFilter` (inputs `x`, `dy`; attrs
 * `strides`, `pad`, `dataFormat`, `dimRoundingMode`, `filterShape`) with
 * {@link conv2dBackpropFilterViaConv} on the given backend; on wasm, NHWC convolutions
 * with few output positions per output channel as one matrix product instead
 * (`conv2dBackpropFilterViaGemm` in `conv2d_gemm.ts`).
 *
 * @param backendName backend to register for ("wasm", "cpu", ...).
 * @returns a config for `tf.registerKernel`.
 */
export function conv2dBackpropFilterKernel(
  backendName: string,
): KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropFilter,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as FilterAttrs;
      const x = inputs.x as tf.TensorInfo;
      if (
        backendName === "wasm" && a.dataFormat !== "NCHW" && x.dtype === "float32" &&
        a.filterShape[0] * a.filterShape[1] > 1
      ) {
        const info = nhwcConvInfo(
          x.shape as [number, number, number, number],
          a.filterShape,
          a.strides,
          a.pad,
          a.dimRoundingMode,
        );
        const positions = info.batchSize * info.outHeight * info.outWidth;
        if (positions > 0 && positions <= info.outChannels * GEMM_FILTER_MAX_POSITIONS_PER_COUT) {
          // few positions: one product whose packed operand is the small dy (conv2d_gemm.ts)
          return runOpsAsKernel(
            backend as KernelBackend,
            inputs,
            (t) => conv2dBackpropFilterViaGemm(t.x as Tensor4D, t.dy as Tensor4D, info),
          );
        }
      }
      return runOpsAsKernel(
        backend as KernelBackend,
        inputs,
        (t) =>
          conv2dBackpropFilterViaConv(
            t.x as Tensor4D,
            t.dy as Tensor4D,
            a.filterShape,
            a.strides,
            a.pad,
            a.dataFormat,
            a.dimRoundingMode,
          ),
      );
    },
  };
}
