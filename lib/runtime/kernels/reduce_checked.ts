/**
 * `Sum` and `Mean` on wasm through XNNPACK pooling in place (`reduce.ts`), with a check that keeps
 * NaN and infinities exact.
 *
 * tfjs-backend-wasm 4.22 reduces only over innermost axes and transposes the whole tensor first
 * otherwise: BatchNorm statistics and their gradients (axes 0-2 of NHWC), global average pooling
 * (axes 1, 2) and batched matrix-vector products (GC's context pooling, a sum over axis 1 of
 * `[8, 1024, 64]`: 1.8 ms, of which the transpose, slowed by the power-of-two stride, is most) pay a
 * full, cache-unfriendly copy. `reduce.ts` pools in place instead, but XNNPACK's average pooling
 * clamps its output, which turns a NaN into -Infinity (and Infinity - Infinity into -Infinity).
 * A sum with a NaN, or an infinity, is never finite, and a finite output never hides one: so
 * whenever the pooled output holds a non-finite value (read in place, it is small), the reduction
 * runs again with tfjs's kernel, whose result is exact. `Max` stays tfjs's: max pooling turns a NaN
 * into a finite value.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { wasmReduceKernel } from "./reduce.ts";
import { wasmTransposeKernel } from "./transpose.ts";
import type { KernelConfig } from "../../types.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const ours = new WeakSet<tf.KernelFunc>();

/** Whether every value of a float32 wasm tensor is finite (read in the heap, no copy). */
function allFinite(backend: Any, info: tf.TensorInfo): boolean {
  const offset = backend.dataIdMap.get(info.dataId).memoryOffset as number;
  const size = tf.util.sizeFromShape(info.shape);
  const values = new Float32Array(backend.wasm.HEAPU8.buffer, offset, size);
  for (let i = 0; i < size; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

/**
 * The checked kernel: the pooled reduction, or `original`'s when the pooled output is not all finite.
 *
 * @param kind `Sum` or `Mean`.
 * @param original tfjs's wasm kernel.
 * @returns the config to register.
 */
export function checkedReduceKernel(kind: "Sum" | "Mean", original: KernelConfig): KernelConfig {
  const pooled = wasmReduceKernel(kind, original);
  const kernelFunc: tf.KernelFunc = (args) => {
    const out = pooled.kernelFunc(args) as tf.TensorInfo;
    if (out.dtype !== "float32" || allFinite(args.backend, out)) return out;
    (args.backend as Any).disposeData(out.dataId);
    return original.kernelFunc(args);
  };
  ours.add(kernelFunc);
  return { ...pooled, kernelFunc };
}

/**
 * Replace wasm's `Sum` and `Mean` by {@link checkedReduceKernel}s and its `Transpose` by the
 * rank-merging one of `transpose.ts`, once (no-op without wasm).
 *
 * @returns the kernel names replaced by this call.
 */
export function registerCheckedReductions(): string[] {
  const done: string[] = [];
  for (const kind of ["Sum", "Mean"] as const) {
    const existing = tf.getKernel(kind, "wasm");
    if (existing == null || ours.has(existing.kernelFunc)) continue;
    tf.unregisterKernel(kind, "wasm");
    tf.registerKernel(checkedReduceKernel(kind, existing));
    done.push(kind);
  }
  const transpose = tf.getKernel("Transpose", "wasm");
  if (transpose != null && !ours.has(transpose.kernelFunc)) {
    const merged = wasmTransposeKernel(transpose);
    ours.add(merged.kernelFunc);
    tf.unregisterKernel("Transpose", "wasm");
    tf.registerKernel(merged);
    done.push("Transpose");
  }
  return done;
}
