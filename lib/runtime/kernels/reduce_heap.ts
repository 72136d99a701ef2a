/**
 * `Sum` and `Mean` on wasm over a block of axes before the last one (BatchNorm's statistics and
 * their gradients: axes 0, 1, 2 of NHWC; global average pooling: axes 1, 2; bias gradients: axis
 * 0) as one pass over the wasm heap, without tfjs's transpose.
 *
 * tfjs-backend-wasm 4.22 reduces only over innermost axes, so it first transposes the whole tensor
 * to bring the reduced axes last (6 ms for an `[8,32,32,64]` `sum(x, [0, 1, 2])`). When the reduced
 * axes are one contiguous block before the last axis, the tensor is already `[outer, R, inner]` in
 * memory; {@link wasmHeapReduceKernel} adds the R rows of each `[outer]` slab into `inner` float32
 * accumulators, channels as the inner loop (every read contiguous; 4 channels at a time with
 * WebAssembly SIMD, `simd_loops.ts`). The additions are those of
 * tfjs's kernel in its order (float32, starting from 0, the R elements in row-major order of the
 * reduced axes; the mean divides the sum by R), so the results are bit-equal to it, NaN and
 * Infinity included (an earlier version as XNNPACK pooling in place lost NaN and was removed).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig } from "../../types.ts";
import { sumRows } from "./simd_loops.ts";
import { heapFloat32, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";

/** `[outer, R, inner]` if `axes` are one contiguous block that does not include the last axis. */
export function reducedBlock(shape: number[], axes: number[]): [number, number, number] | undefined {
  const rank = shape.length;
  const sorted = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted[sorted.length - 1] >= rank - 1) return undefined;
  for (let i = 1; i < sorted.length; i++) if (sorted[i] !== sorted[i - 1] + 1) return undefined;
  const size = (from: number, to: number) => shape.slice(from, to).reduce((a, b) => a * b, 1);
  const first = sorted[0], last = sorted[sorted.length - 1];
  return [size(0, first), size(first, last + 1), size(last + 1, rank)];
}

/**
 * A wasm `Sum` or `Mean` kernel that reduces a float32 `[outer, R, inner]` block in one heap pass
 * (see the module documentation) and otherwise runs `native`.
 *
 * @param kind "Sum" or "Mean".
 * @param native the wasm backend's own kernel.
 * @returns the config to register in its place.
 */
export function wasmHeapReduceKernel(kind: "Sum" | "Mean", native: KernelConfig): KernelConfig {
  return {
    kernelName: kind,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const { axis, keepDims } = args.attrs as unknown as { axis: number | number[] | null; keepDims: boolean };
      const axes = axis == null ? x.shape.map((_, i) => i) : Array.isArray(axis) ? axis : [axis];
      const block = x.dtype === "float32" ? reducedBlock(x.shape, axes) : undefined;
      if (block == null || block[0] * block[1] * block[2] === 0) return native.kernelFunc(args);
      const [outer, r, inner] = block;
      const rank = x.shape.length;
      const reduced = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
      const shape = keepDims
        ? x.shape.map((d, i) => (reduced.has(i) ? 1 : d))
        : x.shape.filter((_, i) => !reduced.has(i));
      const backend = args.backend as unknown as WasmHeapBackend;
      const out = backend.makeOutput(shape, "float32");
      const heap = heapFloat32(backend); // after makeOutput, which may grow the heap
      const xAt = heapOffset(backend, x) / 4, outAt = heapOffset(backend, out) / 4;
      for (let o = 0; o < outer; o++) {
        const slab = xAt + o * r * inner, to = outAt + o * inner;
        heap.fill(0, to, to + inner);
        // the first inner & ~3 columns 4 lanes at a time (simd_loops.ts), the rest here
        const done = sumRows(backend, slab * 4, to * 4, r, inner);
        for (let j = 0; j < r; j++) {
          const row = slab + j * inner;
          for (let c = done; c < inner; c++) heap[to + c] += heap[row + c];
        }
        if (kind === "Mean") { for (let c = 0; c < inner; c++) heap[to + c] /= r; }
      }
      return out;
    },
  };
}
