/**
 * `Slice` and `Identity` on wasm without tfjs-backend-wasm 4.22's copies of the whole input.
 *
 * tfjs-backend-wasm's `Slice` starts with `backend.readSync(x)`, a copy of the whole input out of
 * the wasm heap, then copies each innermost row of the slice with its own `subarray().set()`: the
 * input gradient of a convolution taken as a matrix product (`conv2d_backprop_input.ts`) slices a
 * `[kh*kw, P, Cin]` product 9 times, copying it 9 times (36 ms of a 550 ms ResNet-18 training step
 * on one thread). {@link wasmSliceKernel} copies inside the heap (`copyWithin`, a memmove), one copy
 * per contiguous run: the trailing axes that the slice keeps whole are merged with the first one it
 * cuts, so a slice of a leading axis is one copy.
 *
 * tfjs-backend-wasm's `Identity` (what `tf.clone` and every gradient's pass-through run: 595 calls,
 * 15 ms per ResNet-18 step) copies its input; {@link wasmIdentityKernel} shares the input's storage
 * with one more reference, as the cpu backend's `Identity` and wasm's own `Reshape` do.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig } from "../../types.ts";
import { heapBytes, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";

/**
 * `Slice` on wasm (attrs `begin`, `size`; `size` -1 runs to the end), copying contiguous runs
 * inside the heap (see the module documentation). Strings run `native`.
 *
 * @param native the wasm backend's own `Slice`.
 * @returns the config to register in its place.
 */
export function wasmSliceKernel(native: KernelConfig): KernelConfig {
  return {
    kernelName: tf.Slice,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === "string") return native.kernelFunc(args);
      const { begin, size } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
      const [from, sizes] = tf.slice_util.parseSliceParams(x, begin, size);
      tf.slice_util.assertParamsValid(x, from, sizes);
      const backend = args.backend as unknown as WasmHeapBackend;
      const out = backend.makeOutput(sizes, x.dtype);
      const total = tf.util.sizeFromShape(sizes);
      if (total === 0) return out;
      const heap = heapBytes(backend); // after makeOutput, which may grow the heap
      const bytes = x.dtype === "bool" ? 1 : 4;
      const src = heapOffset(backend, x), dst = heapOffset(backend, out);
      const copy = (to: number, offset: number) =>
        heap.copyWithin(dst + to * bytes, src + offset * bytes, src + (offset + run) * bytes);
      const shape = x.shape, rank = shape.length;
      const strides = tf.util.computeStrides(shape); // rank - 1 entries; the last axis' stride is 1
      const stride = (axis: number) => (axis === rank - 1 ? 1 : strides[axis]);
      // the run: every trailing axis kept whole, and the first axis (from the end) that is cut
      let axis = rank - 1, run = 1;
      while (axis >= 0 && sizes[axis] === shape[axis]) run *= shape[axis--];
      if (axis >= 0) run *= sizes[axis--];
      // axes 0..axis are iterated; the run starts at the cut axis' begin
      let base = 0;
      for (let a = 0; a < rank; a++) base += from[a] * stride(a);
      if (axis < 0) {
        copy(0, base);
        return out;
      }
      const index = new Array(axis + 1).fill(0);
      for (let at = 0; at < total; at += run) {
        let offset = base;
        for (let a = 0; a <= axis; a++) offset += index[a] * stride(a);
        copy(at, offset);
        for (let a = axis; a >= 0; a--) {
          if (++index[a] < sizes[a]) break;
          index[a] = 0;
        }
      }
      return out;
    },
  };
}

/**
 * `Identity` on wasm sharing its input's storage (one more reference; see the module
 * documentation). Strings run `native`.
 *
 * @param native the wasm backend's own `Identity`.
 * @returns the config to register in its place.
 */
export function wasmIdentityKernel(native: KernelConfig): KernelConfig {
  return {
    kernelName: tf.Identity,
    backendName: "wasm",
    setupFunc: native.setupFunc,
    disposeFunc: native.disposeFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === "string") return native.kernelFunc(args);
      (args.backend as unknown as WasmHeapBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
}
