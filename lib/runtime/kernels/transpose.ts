/**
 * `Transpose` on wasm with the axes that move together merged first.
 *
 * tfjs-backend-wasm 4.22's transpose is fast up to rank 4 and slow beyond: a rank-5 permutation of
 * an [8, 32, 32, 64, 2] tensor took 70 ms where the same data moved as the rank-4 permutation it is
 * (height and width travel together) took 2 ms. This kernel drops the size-1 axes and merges every
 * run of input axes that stay adjacent and in order in the output, then runs tfjs's kernel on that
 * lower-rank view of the same memory. The depthwise filter gradient of SK's grouped convolutions
 * spent half of SK's training step in one such transpose.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig } from "../../types.ts";
import { heapFloat32, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";

/**
 * The smallest equivalent transpose: `shape` and `perm` with size-1 axes dropped and adjacent
 * axes that move together merged.
 *
 * @param shape input shape.
 * @param perm output axis i is input axis perm[i].
 * @returns the merged input shape and permutation.
 */
export function mergedTranspose(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((a) => shape[a] !== 1);
  // runs of consecutive input axes in output order
  const runs: number[][] = [];
  for (const a of kept) {
    const last = runs.at(-1);
    // consecutive among the kept axes: no kept axis lies between them in the input
    if (last && a > last.at(-1)! && shape.slice(last.at(-1)! + 1, a).every((d) => d === 1)) last.push(a);
    else runs.push([a]);
  }
  const byInput = [...runs].sort((r1, r2) => r1[0] - r2[0]);
  return {
    shape: byInput.map((r) => r.reduce((p, a) => p * shape[a], 1)),
    perm: runs.map((r) => byInput.indexOf(r)),
  };
}

/**
 * The wasm `Transpose` kernel config: tfjs's kernel on the merged view when that has a lower rank.
 *
 * @param original tfjs's kernel.
 * @returns the config to register.
 */
export function wasmTransposeKernel(original: KernelConfig): KernelConfig {
  return {
    ...original,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const perm = (args.attrs as unknown as { perm: number[] }).perm;
      const merged = mergedTranspose(x.shape, perm);
      if (merged.shape.length >= x.shape.length || merged.shape.length === 0) return original.kernelFunc(args);
      const out = original.kernelFunc({
        ...args,
        inputs: { x: { ...x, shape: merged.shape } },
        attrs: { ...args.attrs, perm: merged.perm },
      }) as tf.TensorInfo;
      return { ...out, shape: perm.map((a) => x.shape[a]) };
    },
  };
}

const ours = new WeakSet<tf.KernelFunc>();

/**
 * Replace wasm's `Transpose` by {@link wasmTransposeKernel}, once (no-op without wasm).
 *
 * @returns whether this call replaced it.
 */
export function registerMergedTranspose(): boolean {
  const existing = tf.getKernel("Transpose", "wasm");
  if (existing == null || ours.has(existing.kernelFunc)) return false;
  const merged = wasmTransposeKernel(existing);
  ours.add(merged.kernelFunc);
  tf.unregisterKernel("Transpose", "wasm");
  tf.registerKernel(merged);
  return true;
}

/** The block edge of {@link transpose2d} (16: 4.0 ms for a 4608x512 matrix; 8: 4.8, 32: 5.3). */
const BLOCK = 16;

/**
 * The transpose of a float32 matrix. On wasm one blocked pass over the heap: tfjs-backend-wasm
 * 4.22's `Transpose` took 10 ms for a 4608x512 matrix (a 3x3 512->512 filter), this 4.0 ms.
 * Elsewhere (or another dtype) `tf.transpose`.
 *
 * @param x `[rows, cols]`.
 * @returns `[cols, rows]`, a new tensor.
 */
export function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() !== "wasm" || x.dtype !== "float32") return tf.transpose(x);
  const [rows, cols] = x.shape;
  const backend = tf.backend() as unknown as WasmHeapBackend;
  const out = backend.makeOutput([cols, rows], "float32");
  const heap = heapFloat32(backend); // after makeOutput, which may grow the heap
  const src = heapOffset(backend, x) / 4, dst = heapOffset(backend, out) / 4;
  for (let i0 = 0; i0 < rows; i0 += BLOCK) {
    const i1 = Math.min(rows, i0 + BLOCK);
    for (let j0 = 0; j0 < cols; j0 += BLOCK) {
      const j1 = Math.min(cols, j0 + BLOCK);
      for (let j = j0; j < j1; j++) {
        const to = dst + j * rows;
        for (let i = i0; i < i1; i++) heap[to + i] = heap[src + i * cols + j];
      }
    }
  }
  return tf.engine().makeTensorFromTensorInfo(out, backend as unknown as tf.KernelBackend) as tf.Tensor2D;
}
