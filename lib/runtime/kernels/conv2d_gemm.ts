/**
 * `FusedConv2D` on wasm for convolutions with few output positions and a large filter (a
 * ResNet's last stage on small images: 3x3 512->512 at 8x2x2) as one matrix product whose packed
 * operand is the small im2col matrix, not the filter.
 *
 * tfjs-backend-wasm caches XNNPACK's convolution operator per filter tensor; in training the
 * filter is a new tensor every step, so every forward convolution re-packs its weights (about 6 ns
 * per weight: 3x3x512x512 at 8x2x2 takes 26 ms where its arithmetic, 151 MFLOP, takes 5). Here
 * `y^T = W^T cols^T`: the filter `[kh*kw*Cin, Cout]` is transposed (`transpose2d`, under 2 ns per weight) and is
 * the product's unpacked left operand; the packed right operand is the im2col matrix `cols^T`
 * (`[kh*kw*Cin, N*Ho*Wo]`, small when there are few positions). 11.7 vs 26 ms at 3x3 512->512
 * 8x2x2; equal at 256->256 8x4x4, slower at 128->128 8x8x8, hence {@link GEMM_MAX_POSITIONS_PER_COUT}.
 * The sums run in another order than XNNPACK's convolution (float32 rounding differs, about 1e-6
 * relative).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel } from "./as_kernel.ts";
import { transpose2d } from "./transpose.ts";
import type { KernelBackend, KernelConfig, Tensor, Tensor4D } from "../../types.ts";

/**
 * The route runs when `N*Ho*Wo * GEMM_MAX_POSITIONS_PER_COUT <= Cout` (and the filter has more
 * than one tap): at 8x2x2 with 512 outputs (32 positions) it is 2.2x faster, at 8x4x4 with 256
 * (128 positions) even.
 */
export const GEMM_MAX_POSITIONS_PER_COUT = 1 / 8;

/**
 * The im2col matrix of `x`: `[N*Ho*Wo, kh*kw*Cin]`, columns in the filter's `[kh, kw, Cin]`
 * order. Each tap is a slice of the padded input; with stride `s`, a slice of `s*Ho` rows viewed
 * as `[Ho, s]` and its phase 0 taken (one more slice).
 *
 * @param x input `[N, H, W, Cin]`.
 * @param info the convolution's geometry (dilation 1).
 * @returns the `[N*Ho*Wo, kh*kw*Cin]` matrix.
 */
export function im2col(x: Tensor4D, info: tf.backend_util.Conv2DInfo): Tensor {
  return tf.tidy(() => {
    const { filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo, padInfo } = info;
    const { strideHeight: sh, strideWidth: sw } = info;
    const [n, h, w, c] = x.shape;
    // rows up to the last tap's strided window: (kh - 1) + sh * ho
    const bottom = Math.max(0, kh - 1 + sh * ho - h - padInfo.top);
    const right = Math.max(0, kw - 1 + sw * wo - w - padInfo.left);
    const padded = tf.pad(x, [[0, 0], [padInfo.top, bottom], [padInfo.left, right], [0, 0]]);
    const taps: Tensor[] = [];
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        if (sh === 1 && sw === 1) {
          taps.push(tf.slice(padded, [0, a, b, 0], [n, ho, wo, c]));
          continue;
        }
        const window = tf.reshape(tf.slice(padded, [0, a, b, 0], [n, sh * ho, sw * wo, c]), [n, ho, sh, wo, sw, c]);
        taps.push(tf.reshape(tf.slice(window, [0, 0, 0, 0, 0, 0], [n, ho, 1, wo, 1, c]), [n, ho, wo, c]));
      }
    }
    return tf.reshape(taps.length === 1 ? taps[0] : tf.concat(taps, 3), [n * ho * wo, kh * kw * c]);
  });
}

/**
 * The filter gradient runs as {@link conv2dBackpropFilterViaGemm} when
 * `N*Ho*Wo * GEMM_FILTER_MAX_POSITIONS_PER_COUT <= Cout` (more than one tap): at 8x2x2
 * with 512 outputs 10.9 vs 15.7 ms, at 8x4x4 with 256 6.6 vs 8.8; at 8x8x8 with 128 (512
 * positions) 7.7 vs 7.4, at 8x16x16 with 64 9.3 vs 7.7.
 */
export const GEMM_FILTER_MAX_POSITIONS_PER_COUT = 1 / 2;

/**
 * The filter gradient of a convolution (any stride, dilation 1) as one matrix product,
 * `dW = cols^T dy` (`[kh*kw*Cin, N*Ho*Wo] x [N*Ho*Wo, Cout]`): the packed operand is `dy`, small
 * when there are few positions. Summation order differs from the dilated-convolution path (about
 * 1e-6 relative).
 *
 * @param x input `[N, H, W, Cin]`.
 * @param dy output gradient `[N, Ho, Wo, Cout]`.
 * @param info the convolution's geometry (dilation 1).
 * @returns `[kh, kw, Cin, Cout]`.
 */
export function conv2dBackpropFilterViaGemm(x: Tensor4D, dy: Tensor4D, info: tf.backend_util.Conv2DInfo): Tensor4D {
  return tf.tidy(() => {
    const { filterHeight: kh, filterWidth: kw, inChannels: cin, outChannels: cout } = info;
    const colsT = transpose2d(im2col(x, info) as tf.Tensor2D); // [K, P]
    const dw = tf.matMul(colsT, tf.reshape(dy, [-1, cout]));
    return tf.reshape(dw, [kh, kw, cin, cout]) as Tensor4D;
  });
}

/**
 * The wasm `FusedConv2D` kernel: the transposed-filter product (see the module documentation) for
 * dilation-1 NHWC float32 convolutions (any stride) without bias or activation and with few output
 * positions per output channel; `native` for every other one.
 *
 * @param native the wasm backend's own `FusedConv2D`.
 * @returns the config to register in its place.
 */
export function wasmGemmConv2DKernel(native: KernelConfig): KernelConfig {
  return {
    kernelName: native.kernelName,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
      const a = args.attrs as Record<string, unknown>;
      const strides = a.strides as number | [number, number];
      const dilations = (a.dilations ?? 1) as number | [number, number];
      const one = (s: number | [number, number]) => (Array.isArray(s) ? s[0] === 1 && s[1] === 1 : s === 1);
      if (
        x == null || filter == null || bias != null || preluActivationWeights != null ||
        (a.activation != null && a.activation !== "linear") || a.dataFormat === "NCHW" ||
        x.dtype !== "float32" || filter.dtype !== "float32" || !one(dilations) ||
        filter.shape[0] * filter.shape[1] === 1
      ) {
        return native.kernelFunc(args);
      }
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        filter.shape as [number, number, number, number],
        strides,
        1,
        a.pad as "same",
        a.dimRoundingMode as "floor" | undefined,
        false,
        "channelsLast",
      );
      const positions = info.batchSize * info.outHeight * info.outWidth;
      const cout = info.outChannels;
      if (positions > cout * GEMM_MAX_POSITIONS_PER_COUT || positions === 0) return native.kernelFunc(args);
      return runOpsAsKernel(args.backend as KernelBackend, { x, filter }, (t) => {
        const [kh, kw, cin] = t.filter.shape;
        const colsT = transpose2d(im2col(t.x as Tensor4D, info) as tf.Tensor2D); // [K, P], the packed operand
        const wT = transpose2d(tf.reshape(t.filter, [kh * kw * cin, cout])); // [Cout, K]
        const yT = tf.matMul(wT, colsT) as tf.Tensor2D; // [Cout, P]
        return tf.reshape(transpose2d(yT), [info.batchSize, info.outHeight, info.outWidth, cout]);
      });
    },
  };
}
