/**
 * Faster `Sum`, `Mean` and `Max` on the wasm backend for reductions that leave the last axis:
 * BatchNorm statistics and their gradients (axes 0, 1, 2 of NHWC), global pooling (axes 1, 2),
 * bias gradients (axis 0).
 *
 * tfjs-backend-wasm reduces only over innermost axes, so it first transposes the whole tensor to
 * bring the reduced axes last: a full copy with a slow access pattern (6 ms for an [8,32,32,64]
 * `sum(x, [0, 1, 2])`, 27 ms at [8,56,56,64]). When the reduced axes are one contiguous block
 * before the last axis, the tensor is already `[outer, R, inner]` in memory, which XNNPACK's
 * pooling reads as an `[outer, R, 1, inner]` image: an `[R, 1]` average (or max) pool is the
 * reduction, with no copy (0.2-1 ms at those sizes). `Sum` is that mean times R.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel } from "./as_kernel.ts";
import type { KernelBackend, KernelConfig, Tensor, Tensor4D } from "../../types.ts";

/**
 * The most channels (`inner`) handed to the pooling kernels: with 16384 channels tfjs-backend-wasm
 * 4.22's XNNPACK average pooling writes past its output and corrupts the heap (8192 was fine when
 * tested; half of it is the limit here).
 */
const MAX_CHANNELS = 4096;

/** `[outer, R, inner]` if `axes` are one contiguous block that does not include the last axis. */
function blockShape(shape: number[], axes: number[]): [number, number, number] | undefined {
  const rank = shape.length;
  const sorted = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted[sorted.length - 1] >= rank - 1) return undefined;
  for (let i = 1; i < sorted.length; i++) if (sorted[i] !== sorted[i - 1] + 1) return undefined;
  const size = (from: number, to: number) => shape.slice(from, to).reduce((a, b) => a * b, 1);
  return [
    size(0, sorted[0]),
    size(sorted[0], sorted[sorted.length - 1] + 1),
    size(sorted[sorted.length - 1] + 1, rank),
  ];
}

/** The reduced shape, with ones where `keepDims`. */
function reducedShape(shape: number[], axes: number[], keepDims: boolean): number[] {
  const rank = shape.length;
  const set = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  return keepDims ? shape.map((d, i) => (set.has(i) ? 1 : d)) : shape.filter((_, i) => !set.has(i));
}

type Kind = "Sum" | "Mean" | "Max";

/**
 * A wasm reduction kernel (`Sum`, `Mean` or `Max`) that pools in place when the axes allow (see
 * the module documentation) and otherwise runs `original`.
 *
 * @param kind which reduction.
 * @param original the kernel it replaces.
 * @returns a config for `tf.registerKernel`.
 */
export function wasmReduceKernel(kind: Kind, original: KernelConfig): KernelConfig {
  return {
    kernelName: kind,
    backendName: "wasm",
    setupFunc: original.setupFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const { axis, keepDims } = args.attrs as unknown as { axis: number | number[] | null; keepDims: boolean };
      // axis null: every axis (the last one included: tfjs's kernel)
      const axes = axis == null ? x.shape.map((_, i) => i) : Array.isArray(axis) ? axis : [axis];
      const block = x.dtype === "float32" ? blockShape(x.shape, axes) : undefined;
      // a single reduced element, or an empty tensor: nothing to gain; more than MAX_CHANNELS
      // channels: tfjs's XNNPACK pooling writes out of bounds (16384 channels corrupt the heap)
      if (block == null || block[1] < 2 || block[0] * block[1] * block[2] === 0 || block[2] > MAX_CHANNELS) {
        return original.kernelFunc(args);
      }
      const [outer, r, inner] = block;
      return runOpsAsKernel(args.backend as KernelBackend, { x }, ({ x }) => {
        const image = tf.reshape(x, [outer, r, 1, inner]) as Tensor4D;
        let y: Tensor = kind === "Max" ? tf.maxPool(image, [r, 1], 1, "valid") : tf.avgPool(image, [r, 1], 1, "valid");
        if (kind === "Sum") y = tf.mul(y, r);
        return tf.reshape(y, reducedShape(x.shape, axes, keepDims));
      });
    },
  };
}
