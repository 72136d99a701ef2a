/**
 * Bridge between the kernel world (backend `TensorInfo`s, manual ref-counts)
 * and the op world (`Tensor`s, `tf.tidy`), so a kernel can be written as a
 * few ordinary tfjs ops.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { KernelBackend, Tensor } from "../../types.ts";

/**
 * Run `body` with the kernel inputs wrapped as tensors and hand its result
 * back as a kernel output.
 *
 * Each input `TensorInfo` is wrapped with `engine.makeTensorFromTensorInfo`
 * after `backend.incRef(dataId)` (the wrapper's dispose must not free the
 * caller's data); the wrappers and every intermediate are disposed, and the
 * result's data gets one extra backend reference that the engine's output
 * tensor then owns. Net effect: `tf.memory().numTensors` is unchanged apart
 * from the kernel's own output. While `body` runs, `tf.profile` stops recording: a profile lists
 * the registered kernel once, not also the ops it is written with (whose MACs it would count twice).
 *
 * @param backend the backend the kernel runs on (the engine's current one).
 * @param inputs the kernel's named inputs; `null` entries are skipped.
 * @param body computes the output from the wrapped inputs with tfjs ops.
 * @returns the output as a `TensorInfo` owned by the caller.
 */
export function runOpsAsKernel(
  backend: KernelBackend,
  inputs: tf.NamedTensorInfoMap,
  body: (tensors: Record<string, Tensor>) => Tensor,
): tf.TensorInfo {
  const engine = tf.engine();
  const wrapped: Record<string, Tensor> = {};
  for (const [name, info] of Object.entries(inputs)) {
    if (info == null) continue;
    backend.incRef(info.dataId);
    wrapped[name] = engine.makeTensorFromTensorInfo(info, backend);
  }
  // tfjs-core's engine records each kernel it runs while `state.profiling` is set
  const state = (engine as unknown as { state: { profiling: boolean } }).state;
  const profiling = state.profiling;
  state.profiling = false;
  try {
    const out = tf.tidy(() => body(wrapped));
    backend.incRef(out.dataId); // the reference the engine's output will own
    const result: tf.TensorInfo = { dataId: out.dataId, shape: out.shape.slice(), dtype: out.dtype };
    out.dispose();
    return result;
  } finally {
    state.profiling = profiling;
    for (const t of Object.values(wrapped)) t.dispose();
  }
}

/**
 * Take a window of length `size` along `axis` of a virtually zero-padded `x`:
 * `out[r] = x[r - before]`, zero where `r - before` is outside `x`. Negative
 * `before` (or a short `size`) crops instead of padding. Used to turn any conv
 * padding (same / valid / explicit, asymmetric) into an explicit 'valid' conv.
 *
 * @param x any-rank tensor.
 * @param axis axis to window.
 * @param before zeros to put before the data (negative: elements to drop).
 * @param size length of the result along `axis`.
 * @returns tensor shaped like `x` except `shape[axis] === size`.
 */
export function windowAxis<T extends Tensor>(
  x: T,
  axis: number,
  before: number,
  size: number,
): T {
  const len = x.shape[axis];
  const start = Math.max(0, -before);
  const end = Math.min(len, size - before);
  if (start === 0 && end === len && before === 0 && size === len) return x;
  const outShape = x.shape.slice();
  outShape[axis] = size;
  if (end <= start) return tf.zeros(outShape, x.dtype) as T;
  return tf.tidy(() => {
    let y: Tensor = x;
    if (start > 0 || end < len) y = cropAxis(x, axis, start, end - start);
    const padBefore = Math.max(0, before);
    const padAfter = size - padBefore - (end - start);
    if (padBefore > 0 || padAfter > 0) {
      const paddings = x.shape.map(() => [0, 0] as [number, number]);
      paddings[axis] = [padBefore, padAfter];
      y = tf.pad(y, paddings);
    }
    return y as T;
  });
}

/**
 * `x` restricted to `[start, start + size)` along `axis`. Uses `tf.gather` on
 * the cpu backend, whose `slice` of a non-leading axis is a per-element loop
 * (~300 ms for 800k floats, gather ~40 ms); `tf.slice` elsewhere (wasm: 6 ms).
 */
function cropAxis(x: Tensor, axis: number, start: number, size: number) {
  if (tf.getBackend() === "cpu") {
    return tf.tidy(() => tf.gather(x, tf.range(start, start + size, 1, "int32"), axis));
  }
  const begin = x.shape.map(() => 0);
  const sliceSize = x.shape.slice();
  begin[axis] = start;
  sliceSize[axis] = size;
  return tf.slice(x, begin, sliceSize);
}
