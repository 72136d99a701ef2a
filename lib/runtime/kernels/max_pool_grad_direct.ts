/**
 * The gradient of a 2-D max pool (NHWC) on wasm as one pass over the pool's output, in
 * JavaScript on the wasm heap.
 *
 * tfjs-backend-wasm 4.22's `MaxPoolGrad` is a scalar loop that, for every input element, searches
 * each window containing it for its maximum again: 14 ms for ResNet-18's 3x3 stride-2 pool at
 * 8x32x32x64 on one thread, where the forward pool takes 0.13 ms, and twice that when some windows
 * are all zero (see `max_pool_grad.ts`), which after a ReLU they are. The pool's output `y` holds
 * each window's maximum already, so here each window, visited once, gives its `dy` to its first
 * tap (row-major, as tfjs's kernels choose) whose value equals `y`, channels innermost (contiguous).
 * Written as tfjs ops instead (a slice, an equality and selects per tap) it took longer than the
 * native loop: wasm's `Slice` copies each channel row with its own `subarray().set()`.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** What the wasm backend offers a kernel (the subset used here). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/**
 * Input gradient of `y = maxPool(x)` (NHWC, dilation 1): each window's `dy` goes to its first
 * maximum in row-major order; windows without a value equal to their `y` (a NaN maximum) give none.
 *
 * @param backend the wasm backend.
 * @param dy output gradient, `[N, Ho, Wo, C]` float32.
 * @param x the pool's input, `[N, H, W, C]` float32.
 * @param y the pool's output, `[N, Ho, Wo, C]` float32.
 * @param info the pool's geometry (`backend_util.computePool2DInfo`).
 * @returns the input gradient, `[N, H, W, C]`, owned by the caller.
 */
export function maxPoolGradDirect(
  backend: WasmHeapBackend,
  dy: tf.TensorInfo,
  x: tf.TensorInfo,
  y: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, padInfo } = info;
  const { outHeight: ho, outWidth: wo, dilationHeight, dilationWidth } = info;
  if (dilationHeight !== 1 || dilationWidth !== 1) {
    throw new Error(`MaxPoolGrad on wasm: expected dilation 1, got [${dilationHeight}, ${dilationWidth}]`);
  }
  const [n, h, w, c] = x.shape;
  if (dy.shape.join() !== [n, ho, wo, c].join() || y.shape.join() !== dy.shape.join()) {
    throw new Error(
      `MaxPoolGrad on wasm: expected dy and the output shaped [${[n, ho, wo, c]}], got [${dy.shape}] and [${y.shape}]`,
    );
  }
  // the output first: allocating may grow the heap, which detaches views taken before
  const out = backend.makeOutput([n, h, w, c], "float32");
  const dx = backend.typedArrayFromHeap(out);
  const xs = backend.typedArrayFromHeap(x), ys = backend.typedArrayFromHeap(y), gs = backend.typedArrayFromHeap(dy);
  dx.fill(0);
  const taken = new Uint8Array(c);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < ho; i++) {
      const r0 = i * sh - padInfo.top;
      const rLo = Math.max(0, r0), rHi = Math.min(h, r0 + kh);
      for (let j = 0; j < wo; j++) {
        const c0 = j * sw - padInfo.left;
        const cLo = Math.max(0, c0), cHi = Math.min(w, c0 + kw);
        const yo = ((b * ho + i) * wo + j) * c;
        taken.fill(0);
        let left = c; // channels whose maximum is not found yet
        for (let r = rLo; r < rHi && left > 0; r++) {
          for (let q = cLo; q < cHi && left > 0; q++) {
            const xo = ((b * h + r) * w + q) * c;
            for (let k = 0; k < c; k++) {
              if (taken[k] === 0 && xs[xo + k] === ys[yo + k]) {
                dx[xo + k] += gs[yo + k];
                taken[k] = 1;
                left--;
              }
            }
          }
        }
      }
    }
  }
  return out;
}
