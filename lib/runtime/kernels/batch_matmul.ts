/**
 * A faster `BatchMatMul` for the wasm backend.
 *
 * tfjs-backend-wasm 4.22 runs a matrix product through XNNPACK only when both operands have batch
 * size 1 and neither is transposed; every other case (attention's `[N, HW, C] x [N, C, HW]`, a
 * batched `x @ W`, every gradient, which transposes) falls to a scalar triple loop on one thread,
 * 8-11x slower. This kernel runs those as XNNPACK 1x1 convolutions instead (the path tfjs's
 * Conv2D takes, which uses the thread pool): per batch, the `[M, K]` slice of `a` as an
 * `[1, M, 1, K]` image and the `[K, N]` slice of `b` as a `[1, 1, K, N]` filter, both addressed in
 * place in the wasm heap (tensor ids registered on the slices, no copies). Transposed operands
 * are transposed once first; a `b` shared by every batch makes one `[Ba*M, K] x [K, N]` product.
 * Batched products with a single row or column become a broadcast multiply and a sum. Small
 * products, many small products, and the batch-1 untransposed case keep tfjs's kernel.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { runOpsAsKernel } from "./as_kernel.ts";
import type { KernelBackend, KernelConfig, Tensor } from "../../types.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/**
 * Whether the 1x1-convolution path pays: measured on 2 cores, it is 10-30x faster from 2^15
 * multiply-adds per product up, but each product costs a thread-pool round trip and an XNNPACK
 * operator, so hundreds of small products (criss-cross attention's rows) are faster in
 * tfjs's loop.
 */
function worthIt(batch: number, work: number): boolean {
  return work >= 1 << 18 || (work >= 1 << 15 && batch <= 64);
}

type TensorInfoLike = tf.TensorInfo;

/** What the wasm backend keeps per tensor. */
interface WasmData {
  id: number;
  memoryOffset: number;
}

/**
 * Batched products with one row or one column (GC's context pooling `[N,1,HW] x [N,HW,C]`, batched
 * matrix-vector products) as a broadcast multiply and a sum: 8-10x faster than a 1-pixel
 * convolution per batch, which packs the whole `b` slice as a filter for one output row.
 */
function matrixVector(
  args: Parameters<tf.KernelFunc>[0],
  d: { M: number; N: number; K: number; batchA: number; batchB: number; transposeA: boolean; transposeB: boolean },
): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const { M, N, K, batchA, batchB, transposeA, transposeB } = d;
  return runOpsAsKernel(args.backend as KernelBackend, { a, b }, (t) => {
    let y: Tensor;
    if (M === 1) {
      // out[n, 0, j] = sum_k a[n, k] b[n, k, j]; a is [.., 1, K] or, transposed, [.., K, 1]: same memory
      if (transposeB) y = tf.sum(tf.mul(tf.reshape(t.a, [batchA, 1, K]), tf.reshape(t.b, [batchB, N, K])), 2);
      else y = tf.sum(tf.mul(tf.reshape(t.a, [batchA, K, 1]), tf.reshape(t.b, [batchB, K, N])), 1);
    } else {
      // out[n, i, 0] = sum_k a[n, i, k] b[n, k]; b is [.., K, 1] or, transposed, [.., 1, K]: same memory
      if (transposeA) y = tf.sum(tf.mul(tf.reshape(t.a, [batchA, K, M]), tf.reshape(t.b, [batchB, K, 1])), 1);
      else y = tf.sum(tf.mul(tf.reshape(t.a, [batchA, M, K]), tf.reshape(t.b, [batchB, 1, K])), 2);
    }
    return tf.reshape(y, [...outBatch, M, N]);
  });
}

/**
 * The wasm `BatchMatMul` kernel config: XNNPACK 1x1 convolutions for batched or transposed
 * products, tfjs's kernel (`original`) for the rest.
 *
 * @param original the kernel it replaces.
 * @returns the config to register.
 */
export function wasmBatchMatMulKernel(original: KernelConfig): KernelConfig {
  return {
    kernelName: "BatchMatMul",
    backendName: "wasm",
    setupFunc: original.setupFunc,
    kernelFunc: (args) => {
      const { inputs, backend, attrs } = args as Any;
      const { a, b } = inputs as { a: TensorInfoLike; b: TensorInfoLike };
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (a.dtype !== "float32" || b.dtype !== "float32") return original.kernelFunc(args);
      const ar = a.shape.length, br = b.shape.length;
      const K = transposeA ? a.shape[ar - 2] : a.shape[ar - 1];
      const M = transposeA ? a.shape[ar - 1] : a.shape[ar - 2];
      const N = transposeB ? b.shape[br - 2] : b.shape[br - 1];
      const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
      const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
      const plain = !transposeA && !transposeB && batchA === 1 && batchB === 1;
      const batch = Math.max(batchA, batchB);
      const broadcastable = batchA === batchB || batchA === 1 || batchB === 1;
      // (a b shared by every batch is one [batch, K] x [K, N] product below, better as it is)
      if (batch > 1 && ((M === 1 && batchB > 1) || N === 1) && broadcastable) {
        return matrixVector(args, { M, N, K, batchA, batchB, transposeA, transposeB });
      }
      if (
        plain || !worthIt(batchB === 1 ? 1 : batch, M * N * K) || (batchA !== batchB && batchA !== 1 && batchB !== 1)
      ) {
        return original.kernelFunc(args);
      }
      const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      const transpose = tf.getKernel("Transpose", "wasm")!.kernelFunc;
      const temporaries: TensorInfoLike[] = [];
      const lastTwoSwapped = (t: TensorInfoLike, rows: number, cols: number, n: number) => {
        const t3: TensorInfoLike = { ...t, shape: [n, cols, rows] };
        const out = transpose({ inputs: { x: t3 }, backend, attrs: { perm: [0, 2, 1] } }) as TensorInfoLike;
        temporaries.push(out);
        return out;
      };
      const a2 = transposeA ? lastTwoSwapped(a, M, K, batchA) : a; // [batchA, M, K]
      const b2 = transposeB ? lastTwoSwapped(b, K, N, batchB) : b; // [batchB, K, N]
      const out = backend.makeOutput([...outBatchShape, M, N], "float32") as TensorInfoLike;
      const wasm = backend.wasm;
      const data = (t: TensorInfoLike) => backend.dataIdMap.get(t.dataId) as WasmData;
      const view = (offset: number, size: number) => {
        const id = backend.dataIdNextNumber++;
        wasm.tfjs.registerTensor(id, size, offset);
        return id;
      };
      const product = (aOffset: number, bOffset: number, outOffset: number, rows: number) => {
        const av = view(aOffset, rows * K), bv = view(bOffset, K * N), ov = view(outOffset, rows * N);
        // x [1, rows, 1, K] * filter [1, 1, K, N], stride 1, no padding
        wasm._Conv2D(av, 1, rows, 1, bv, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, K, N, ov);
        // disposing the filter id also frees the XNNPACK operator tfjs cached on it
        for (const id of [av, bv, ov]) wasm.tfjs.disposeData(id);
      };
      const aBase = data(a2).memoryOffset, bBase = data(b2).memoryOffset, outBase = data(out).memoryOffset;
      if (batchB === 1) {
        product(aBase, bBase, outBase, batch * M);
      } else {
        for (let i = 0; i < batch; i++) {
          const aOffset = aBase + (batchA === 1 ? 0 : i * M * K * 4);
          product(aOffset, bBase + i * K * N * 4, outBase + i * M * N * 4, M);
        }
      }
      for (const t of temporaries) backend.disposeData(t.dataId);
      return out;
    },
  };
}
