/**
 * `MaxPoolGrad` and `MaxPool3DGrad` on wasm for windows whose maximum is not positive.
 *
 * tfjs-backend-wasm 4.22's kernels (`MaxPoolGrad.cc`, `MaxPool3DGrad.cc`) look for each window's
 * maximum starting from `std::numeric_limits<float>::min()`, which is the smallest positive float
 * (1.18e-38), not the lowest one. A window whose values are all below it (all negative, or all
 * zero) finds no maximum and its gradient is dropped: `tf.grad` of `sum(maxPool(x))` was 0, not 1,
 * for such a window, so a maxPool over values that can be negative (a non-local block's sub-sampled
 * phi and g, DNL's and OCR's pooled keys, GE's and Residual Attention's pools, any `maxPool2dTorch`)
 * trained with part of its gradient missing on wasm; the cpu backend was right.
 *
 * The replacement keeps the native kernel (fast) and splits `dy` by window: windows whose maximum
 * is at least that threshold run on the input as it is; the others run on the input shifted by
 * `1 - min(y)`, which makes their maxima at least 1 without changing any order within a window
 * (up to float32 rounding of the shift: two values closer than one ulp of the shift may tie, and a
 * tie goes to either, as with exact ties). Non-finite maxima go to the cpu kernel.
 *
 * `MaxPoolGrad` (2-D) with finite maxima does not run the native loop at all: it runs
 * {@link maxPoolGradDirect} (one pass over the windows, right for any sign), 5-10x faster.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel } from "./as_kernel.ts";
import { cpuFallbackKernel } from "./cpu_fallback.ts";
import { maxPoolGradDirect } from "./max_pool_grad_direct.ts";
import type { KernelBackend, KernelConfig, Tensor } from "../../types.ts";

/** Attributes of the `MaxPoolGrad` kernel, as tfjs passes them. */
interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: "same" | "valid" | number;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/** `std::numeric_limits<float>::min()`: 2^-126, where the native kernels start their search. */
export const NATIVE_MAX_POOL_START = 2 ** -126;

/**
 * The wasm kernel config replacing `native` (tfjs-backend-wasm's `MaxPoolGrad` or
 * `MaxPool3DGrad`), correct for windows of non-positive values.
 *
 * @param native the wasm backend's own kernel config.
 * @returns the config to register in its place.
 */
export function maxPoolGradWasmKernel(native: KernelConfig): KernelConfig {
  const cpu = tf.getKernel(native.kernelName, "cpu");
  const fallback = cpu == null ? undefined : cpuFallbackKernel(cpu, "wasm");
  return {
    kernelName: native.kernelName,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const backend = args.backend as KernelBackend;
      const { dy, input, output } = args.inputs;
      const engine = tf.engine();
      // the native kernel on tensors, its output a tensor of the current scope
      const nativeGrad = (g: Tensor, x: Tensor): Tensor => {
        const info = native.kernelFunc({ inputs: { dy: g, input: x, output }, backend, attrs: args.attrs });
        return engine.makeTensorFromTensorInfo(info as tf.TensorInfo, backend);
      };
      return runOpsAsKernel(backend, { dy, input, output }, (t) => {
        const low = tf.min(t.output).dataSync()[0];
        if (
          native.kernelName === tf.MaxPoolGrad && t.input.rank === 4 && t.input.dtype === "float32" &&
          Number.isFinite(low)
        ) {
          const a = args.attrs as unknown as PoolAttrs;
          const info = tf.backend_util.computePool2DInfo(
            t.input.shape as [number, number, number, number],
            a.filterSize,
            a.strides,
            1,
            a.pad,
            a.dimRoundingMode,
          );
          const dx = maxPoolGradDirect(backend as never, t.dy, t.input, t.output, info);
          return engine.makeTensorFromTensorInfo(dx, backend);
        }
        if (low >= NATIVE_MAX_POOL_START) return nativeGrad(t.dy, t.input);
        if (!Number.isFinite(low)) {
          if (fallback == null) throw new Error(`${native.kernelName} on wasm: no cpu kernel for a non-finite input`);
          const info = fallback.kernelFunc({ inputs: { dy, input, output }, backend, attrs: args.attrs });
          return engine.makeTensorFromTensorInfo(info as tf.TensorInfo, backend);
        }
        const found = tf.greaterEqual(t.output, NATIVE_MAX_POOL_START);
        const zero = tf.zerosLike(t.dy);
        const kept = nativeGrad(tf.where(found, t.dy, zero), t.input);
        const lifted = nativeGrad(tf.where(found, zero, t.dy), tf.add(t.input, 1 - low));
        return tf.add(kept, lifted);
      });
    },
  };
}
