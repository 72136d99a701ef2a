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
 * `MaxPoolGrad` (2D) does not use the native kernel at all: {@link maxPoolGrad2dWasmKernel} finds
 * each window's maximum and adds `dy` there in one pass over the wasm heap. Besides being right for
 * every window, it is 10x faster than the split above (which runs the native kernel twice, and the
 * windows of a max pool after a ReLU are often all zero): on a 60x60 cluttered-MNIST CNN the two
 * max-pool gradients had taken 40 of 150 ms of a training step.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel } from "./as_kernel.ts";
import { cpuFallbackKernel } from "./cpu_fallback.ts";
import { heapFloat32, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";
import type { KernelBackend, KernelConfig, Tensor } from "../../types.ts";

/** `std::numeric_limits<float>::min()`: 2^-126, where the native kernels start their search. */
export const NATIVE_MAX_POOL_START = 2 ** -126;

/**
 * `MaxPoolGrad` on wasm (NHWC, float32) as one pass over the wasm heap: for each output cell
 * `[b, y, x, c]` the first position of the window's strict maximum (searched from -Infinity, in row-major
 * window order, as tfjs's cpu kernel `maxPoolPositions`: a window of only NaN or -Infinity gets no
 * gradient) receives `dy[b, y, x, c]`; overlapping windows add up. Channels are the inner loop, so
 * every read and write is contiguous.
 *
 * @param native the wasm backend's own `MaxPoolGrad`, used for non-float32 inputs.
 * @returns the config to register in its place.
 */
export function maxPoolGrad2dWasmKernel(native: KernelConfig): KernelConfig {
  return {
    kernelName: native.kernelName,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const dy = args.inputs.dy!, input = args.inputs.input!;
      if (dy.dtype !== "float32" || input.dtype !== "float32") return native.kernelFunc(args);
      const backend = args.backend as unknown as WasmHeapBackend;
      const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
      const info = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number],
        filterSize,
        strides,
        1,
        pad,
        dimRoundingMode,
      );
      if (!tf.util.arraysEqual(info.outShape, dy.shape)) {
        throw new Error(`MaxPoolGrad on wasm: dy has shape [${dy.shape}], the pool's output is [${info.outShape}]`);
      }
      const out = backend.makeOutput(input.shape, "float32");
      const heap = heapFloat32(backend); // after makeOutput, which may grow the heap
      const xAt = heapOffset(backend, input) / 4,
        dyAt = heapOffset(backend, dy) / 4,
        dxAt = heapOffset(backend, out) / 4;
      const { batchSize, inHeight, inWidth, inChannels: ch, outHeight, outWidth } = info;
      const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
      const top = info.padInfo.top, left = info.padInfo.left;
      heap.fill(0, dxAt, dxAt + tf.util.sizeFromShape(input.shape));
      const best = new Float32Array(ch);
      const where = new Int32Array(ch);
      for (let b = 0; b < batchSize; b++) {
        const xBatch = xAt + b * inHeight * inWidth * ch;
        const dxBatch = dxAt - xAt + xBatch;
        for (let oy = 0; oy < outHeight; oy++) {
          const y0 = Math.max(0, oy * strideHeight - top);
          const y1 = Math.min(inHeight, oy * strideHeight - top + filterHeight);
          for (let ox = 0; ox < outWidth; ox++) {
            const x0 = Math.max(0, ox * strideWidth - left);
            const x1 = Math.min(inWidth, ox * strideWidth - left + filterWidth);
            best.fill(-Infinity);
            where.fill(-1);
            for (let y = y0; y < y1; y++) {
              for (let x = x0; x < x1; x++) {
                const at = (y * inWidth + x) * ch;
                for (let c = 0; c < ch; c++) {
                  const v = heap[xBatch + at + c];
                  if (v > best[c]) {
                    best[c] = v;
                    where[c] = at + c;
                  }
                }
              }
            }
            const g = dyAt + ((b * outHeight + oy) * outWidth + ox) * ch;
            for (let c = 0; c < ch; c++) if (where[c] >= 0) heap[dxBatch + where[c]] += heap[g + c];
          }
        }
      }
      return out;
    },
  };
}

/**
 * The wasm kernel config replacing `native` (tfjs-backend-wasm's `MaxPoolGrad` or
 * `MaxPool3DGrad`), correct for windows of non-positive values. Registered for `MaxPool3DGrad`;
 * `MaxPoolGrad` gets {@link maxPoolGrad2dWasmKernel}.
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
