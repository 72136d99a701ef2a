/**
 * `Conv2DBackpropInput` (the input gradient of conv2d) computed as ONE forward conv2d: the output
 * gradient, zero-stuffed by the stride and padded, convolved with the 180°-rotated filter whose
 * in/out channels are swapped. wasm's own kernel is a plain loop, 5-10x slower than its forward
 * conv (XNNPACK) on the shapes of a VGG or ResNet backward pass. Below
 * {@link BACKPROP_INPUT_MIN_POSITIONS} input positions (a ResNet's last stage on a small image) the
 * filter's rearrangement costs more than the loop, which then runs instead.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel, windowAxis } from "./as_kernel.ts";
import { reverseLeadingAxis } from "./reverse.ts";
import { type ConvPad, type ConvStrides, type DimRoundingMode, nhwcConvInfo } from "./conv2d_backprop_filter.ts";
import type { KernelBackend, KernelConfig, Tensor, Tensor4D } from "../../types.ts";

/**
 * Input gradient of a stride-`strides` 2-D convolution (dilation 1, as tfjs' conv2d gradient).
 *
 * `dx[n,y,x,ci] = sum_{kh,kw,co} dy[n,i,j,co] * W[kh,kw,ci,co]` over `y = i*sh + kh - padTop`,
 * computed as one stride-1 'valid' conv2d of `dy` (zero-stuffed by the stride, then windowed to
 * `H + kh - 1` rows starting at `kh - 1 - padTop`) with `reverse(W, [0, 1])` transposed to
 * `[kh, kw, Cout, Cin]`.
 *
 * @param inputShape the forward input's shape, `[N, H, W, Cin]` (or `[N, Cin, H, W]` for NCHW).
 * @param dy output gradient, `[N, Ho, Wo, Cout]` (or `[N, Cout, Ho, Wo]`).
 * @param filter `[kh, kw, Cin, Cout]`.
 * @param strides conv strides.
 * @param pad the forward conv's padding.
 * @param dataFormat "NHWC" (default) or "NCHW".
 * @param dimRoundingMode rounding of the output size when `pad` is a number.
 * @returns input gradient, the forward input's shape.
 */
export function conv2dBackpropInputViaConv(
  inputShape: [number, number, number, number],
  dy: Tensor4D,
  filter: Tensor4D,
  strides: ConvStrides,
  pad: ConvPad,
  dataFormat: "NHWC" | "NCHW" = "NHWC",
  dimRoundingMode?: DimRoundingMode,
): Tensor4D {
  return tf.tidy(() => {
    const nchw = dataFormat === "NCHW";
    const shape: [number, number, number, number] = nchw
      ? [inputShape[0], inputShape[2], inputShape[3], inputShape[1]]
      : inputShape;
    const dys = nchw ? tf.transpose(dy, [0, 2, 3, 1]) : dy;
    const info = nhwcConvInfo(shape, filter.shape, strides, pad, dimRoundingMode);
    const { strideHeight: sh, strideWidth: sw, padInfo } = info;
    const { filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo } = info;
    const [n, h, w] = shape;
    const cout = filter.shape[3];
    const cin = filter.shape[2];
    if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && ho === h && wo === w) {
      // a 1x1 conv at stride 1: dx = dy W^T, one matrix product
      const dx = tf.reshape(tf.matMul(tf.reshape(dys, [-1, cout]), tf.reshape(filter, [cin, cout]), false, true), [
        n,
        h,
        w,
        cin,
      ]);
      return (nchw ? tf.transpose(dx, [0, 3, 1, 2]) : dx) as Tensor4D;
    }
    if (kh === 1 && kw === 1) {
      // a strided 1x1 conv: the product at the output's resolution, then zeros between the rows and
      // columns it touched (the zero-stuffed conv below spends sh*sw times the work on zeros)
      let z: Tensor = tf.reshape(
        tf.matMul(tf.reshape(dys, [-1, cout]), tf.reshape(filter, [cin, cout]), false, true),
        [n, ho, 1, wo, 1, cin],
      );
      z = tf.reshape(tf.pad(z, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]), [n, ho * sh, wo * sw, cin]);
      // output (i, j) read input (i*sh - padTop, j*sw - padLeft)
      const dx = windowAxis(windowAxis(z, 1, -padInfo.top, h), 2, -padInfo.left, w);
      return (nchw ? tf.transpose(dx, [0, 3, 1, 2]) : dx) as Tensor4D;
    }
    let d: Tensor = dys;
    if (sh > 1 || sw > 1) {
      d = tf.reshape(dys, [n, ho, 1, wo, 1, cout]);
      d = tf.pad(d, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
      d = tf.reshape(d, [n, ho * sh, wo * sw, cout]);
    }
    d = windowAxis(d, 1, kh - 1 - padInfo.top, h + kh - 1);
    d = windowAxis(d, 2, kw - 1 - padInfo.left, w + kw - 1);
    // rot180 of [kh, kw] is the reverse of the flattened kh*kw axis: one block copy per tap
    const rev = reverseLeadingAxis(tf.reshape(filter, [kh * kw, cin, cout]));
    const rot = tf.reshape(tf.transpose(rev, [0, 2, 1]), [kh, kw, cout, cin]) as Tensor4D; // [kh, kw, Cout, Cin]
    const dx = tf.conv2d(d as Tensor4D, rot, 1, "valid");
    return nchw ? tf.transpose(dx, [0, 3, 1, 2]) : dx;
  });
}

/**
 * Input gradient as one matrix product and a col2im: `cols^T = W dy^T` (`[kh*kw*Cin, N*Ho*Wo]`,
 * with the filter, reshaped to `[kh*kw*Cin, Cout]` without a copy, as the product's left operand
 * and the small `dy` as the packed right one), then each tap's `[N, Ho, Wo, Cin]` slice,
 * zero-stuffed by the stride, shifted into place and summed. For few output positions (a
 * ResNet's last stages on small images): the forward-conv path rearranges and re-packs the whole
 * filter on every call, which there costs several times the arithmetic.
 *
 * @param inputShape the forward input's shape, `[N, H, W, Cin]` (NHWC only).
 * @param dy output gradient, `[N, Ho, Wo, Cout]`.
 * @param filter `[kh, kw, Cin, Cout]`.
 * @param strides conv strides.
 * @param pad the forward conv's padding.
 * @param dimRoundingMode rounding of the output size when `pad` is a number.
 * @returns input gradient `[N, H, W, Cin]`.
 */
export function conv2dBackpropInputViaMatMul(
  inputShape: [number, number, number, number],
  dy: Tensor4D,
  filter: Tensor4D,
  strides: ConvStrides,
  pad: ConvPad,
  dimRoundingMode?: DimRoundingMode,
): Tensor4D {
  return tf.tidy(() => {
    const info = nhwcConvInfo(inputShape, filter.shape, strides, pad, dimRoundingMode);
    const { strideHeight: sh, strideWidth: sw, padInfo } = info;
    const { filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo } = info;
    const [n, h, w, cin] = inputShape;
    const cout = filter.shape[3];
    const p = n * ho * wo;
    const colsT = tf.matMul(tf.reshape(filter, [kh * kw * cin, cout]), tf.reshape(dy, [p, cout]), false, true);
    const taps = tf.transpose(tf.reshape(colsT, [kh * kw, cin, p]), [0, 2, 1]); // [kh*kw, P, Cin]
    const parts: Tensor[] = [];
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        let t: Tensor = tf.reshape(tf.slice(taps, [a * kw + b, 0, 0], [1, p, cin]), [n, ho, wo, cin]);
        if (sh > 1 || sw > 1) {
          t = tf.reshape(
            tf.pad(tf.reshape(t, [n, ho, 1, wo, 1, cin]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [
              0,
              sw - 1,
            ], [0, 0]]),
            [n, ho * sh, wo * sw, cin],
          );
        }
        // tap (a, b) of output (i, j) lands on input (i*sh + a - padTop, j*sw + b - padLeft)
        parts.push(windowAxis(windowAxis(t, 1, a - padInfo.top, h), 2, b - padInfo.left, w));
      }
    }
    return (parts.length === 1 ? parts[0] : tf.addN(parts)) as Tensor4D;
  });
}

/** Input positions N*H*W from which the forward-conv path beats wasm's loop (measured: 1.5-7x above, slower below). */
export const BACKPROP_INPUT_MIN_POSITIONS = 64;

/**
 * Output positions N*Ho*Wo up to which {@link conv2dBackpropInputViaMatMul} runs instead of the
 * forward-conv path (which re-packs the whole filter per call) or wasm's loop.
 */
export const BACKPROP_INPUT_MATMUL_MAX_POSITIONS = 256;

/** Attributes of the `Conv2DBackpropInput` kernel, as tfjs passes them. */
interface InputAttrs {
  strides: ConvStrides;
  pad: ConvPad;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: DimRoundingMode;
  inputShape: [number, number, number, number];
}

/**
 * Kernel config computing `Conv2DBackpropInput` (inputs `dy`, `filter`; attrs `strides`, `pad`,
 * `dataFormat`, `dimRoundingMode`, `inputShape`) with {@link conv2dBackpropInputViaConv}.
 *
 * @param backendName backend to register for ("wasm").
 * @param fallback the backend's own kernel, run below {@link BACKPROP_INPUT_MIN_POSITIONS} positions.
 * @returns a config for `tf.registerKernel`.
 */
export function conv2dBackpropInputKernel(backendName: string, fallback?: KernelConfig): KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName,
    kernelFunc: (args) => {
      const { inputs, backend, attrs } = args;
      const a = attrs as unknown as InputAttrs;
      const [n, d1, d2, d3] = a.inputShape;
      const positions = n * (a.dataFormat === "NCHW" ? d2 * d3 : d1 * d2);
      const pointwise = a.inputShape.length === 4 && (inputs.filter as tf.TensorInfo).shape[0] === 1 &&
        (inputs.filter as tf.TensorInfo).shape[1] === 1;
      const dyShape = (inputs.dy as tf.TensorInfo).shape;
      const outPositions = dyShape[0] * (a.dataFormat === "NCHW" ? dyShape[2] * dyShape[3] : dyShape[1] * dyShape[2]);
      if (!pointwise && a.dataFormat !== "NCHW" && outPositions <= BACKPROP_INPUT_MATMUL_MAX_POSITIONS) {
        return runOpsAsKernel(
          backend as KernelBackend,
          inputs,
          (t) =>
            conv2dBackpropInputViaMatMul(
              a.inputShape,
              t.dy as Tensor4D,
              t.filter as Tensor4D,
              a.strides,
              a.pad,
              a.dimRoundingMode,
            ),
        );
      }
      if (fallback && !pointwise && positions < BACKPROP_INPUT_MIN_POSITIONS) return fallback.kernelFunc(args);
      return runOpsAsKernel(
        backend as KernelBackend,
        inputs,
        (t) =>
          conv2dBackpropInputViaConv(
            a.inputShape,
            t.dy as Tensor4D,
            t.filter as Tensor4D,
            a.strides,
            a.pad,
            a.dataFormat,
            a.dimRoundingMode,
          ),
      );
    },
  };
}
