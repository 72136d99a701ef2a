/**
 * Reading and writing tensors on tfjs-backend-wasm's heap, for the kernels that work there in
 * place (`max_pool_grad.ts`, `reduce_heap.ts`, `slice.ts`, `reverse.ts`, `transpose.ts`,
 * `simd_loops.ts`): where a tensor's data starts, and views of the heap.
 *
 * A view must be taken after the last `makeOutput` of a kernel: an allocation may grow the heap,
 * which detaches the views taken before it.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** The parts of tfjs-backend-wasm's `BackendWasm` that the heap kernels use (not exported by tfjs). */
export interface WasmHeapBackend {
  /** The Emscripten module; `HEAPU8` spans the whole heap. */
  wasm: { HEAPU8: Uint8Array };
  /** Each tensor's place on the heap (byte offset). */
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  /** Allocates an output tensor on the heap. */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** One more reference to a tensor's data. */
  incRef(dataId: tf.DataId): void;
}

/**
 * The byte offset on the wasm heap where `info`'s data starts.
 *
 * @param backend the wasm backend.
 * @param info a tensor of that backend.
 * @returns the offset in bytes.
 */
export function heapOffset(backend: WasmHeapBackend, info: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data == null) throw new Error(`wasm heap: a tensor of shape [${info.shape}] has no data on the wasm backend`);
  return data.memoryOffset;
}

/**
 * The whole wasm heap as bytes (take it after the kernel's last `makeOutput`).
 *
 * @param backend the wasm backend.
 * @returns a view of the heap.
 */
export function heapBytes(backend: WasmHeapBackend): Uint8Array {
  return backend.wasm.HEAPU8;
}

/**
 * The whole wasm heap as float32 (index = byte offset / 4; take it after the kernel's last `makeOutput`).
 *
 * @param backend the wasm backend.
 * @returns a view of the heap.
 */
export function heapFloat32(backend: WasmHeapBackend): Float32Array {
  return new Float32Array(backend.wasm.HEAPU8.buffer);
}
