/**
 * Reversing the leading axis of a tensor as one block copy per slice. tfjs-backend-wasm 4.22's
 * `Reverse` computes an index per element, and `split` + `concat` of the slices (what the
 * convolution gradients did) cost 3 ms for a 3x3x512x512 filter; on wasm this copies the
 * `[rest]`-sized slices in the wasm heap directly (`copyWithin`, a memmove).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "../../types.ts";
import { heapBytes, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";

/**
 * `x` with its first axis reversed (`out[i] = x[T - 1 - i]`).
 *
 * @param x a tensor of rank >= 1, shape `[T, ...rest]`.
 * @returns a new tensor of `x`'s shape and dtype.
 */
export function reverseLeadingAxis<T extends Tensor>(x: T): T {
  const taps = x.shape[0];
  if (taps <= 1) return tf.clone(x);
  if (tf.getBackend() !== "wasm" || x.dtype !== "float32") return tf.reverse(x, 0);
  const backend = tf.backend() as unknown as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, "float32");
  const src = heapOffset(backend, x), dst = heapOffset(backend, out);
  const bytes = (x.size / taps) * 4;
  const heap = heapBytes(backend); // after makeOutput, which may grow the heap
  for (let i = 0; i < taps; i++) {
    heap.copyWithin(dst + i * bytes, src + (taps - 1 - i) * bytes, src + (taps - i) * bytes);
  }
  return tf.engine().makeTensorFromTensorInfo(out, backend as unknown as tf.KernelBackend) as T;
}
