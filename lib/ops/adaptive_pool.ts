/**
 * Adaptive pooling with PyTorch's bin rule (`nn.AdaptiveAvgPool2d`, `nn.AdaptiveMaxPool2d`).
 *
 * Output cell i of an axis of length `size` pooled to `out` bins covers
 * [floor(i * size / out), ceil((i + 1) * size / out)): bins overlap when `out` does not divide
 * `size`, and every input position belongs to at least one bin. NHWC in and out.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor2D, Tensor4D } from "../types.ts";

/** The [start, end) ranges of PyTorch's adaptive pooling bins for one axis. */
export function adaptiveBins(size: number, out: number): [number, number][] {
  if (!(Number.isInteger(size) && Number.isInteger(out) && size > 0 && out > 0)) {
    throw new Error(`adaptiveBins: expected positive integer sizes, got size ${size} and ${out} bins`);
  }
  const bins: [number, number][] = [];
  for (let i = 0; i < out; i++) {
    bins.push([Math.floor((i * size) / out), Math.ceil(((i + 1) * size) / out)]);
  }
  return bins;
}

/** The averaging matrix [out, size] of one axis: row i holds 1/len over bin i. */
function averagingMatrix(size: number, out: number): Tensor2D {
  const m = new Float32Array(out * size);
  adaptiveBins(size, out).forEach(([s, e], i) => {
    for (let j = s; j < e; j++) m[i * size + j] = 1 / (e - s);
  });
  return tf.tensor2d(m, [out, size]);
}

/**
 * Adaptive average pooling: x [N,H,W,C] -> [N,outH,outW,C] with PyTorch's bins. Differentiable
 * (two matrix products with fixed averaging matrices).
 */
export function adaptiveAvgPool2d(x: Tensor4D, outH: number, outW: number): Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    if (outH === 1 && outW === 1) return tf.mean(x, [1, 2], true) as Tensor4D;
    if (outH === h && outW === w) return x.clone();
    // each product has the pooled axis last and the small averaging matrix on the right, so that
    // XNNPACK packs only that matrix (with the activations on the right it packed all of them)
    const pwT = tf.transpose(averagingMatrix(w, outW)); // [W, outW]
    const phT = tf.transpose(averagingMatrix(h, outH)); // [H, outH]
    // pool W: [N*H*C, W] x [W, outW]
    const xw = tf.reshape(tf.transpose(x, [0, 1, 3, 2]), [n * h * c, w]);
    const yw = tf.reshape(tf.matMul(xw, pwT), [n, h, c, outW]);
    // pool H: [N*C*outW, H] x [H, outH]
    const xh = tf.reshape(tf.transpose(yw, [0, 2, 3, 1]), [n * c * outW, h]);
    const yh = tf.reshape(tf.matMul(xh, phT), [n, c, outW, outH]);
    return tf.transpose(yh, [0, 3, 2, 1]) as Tensor4D;
  });
}

/** Adaptive max pooling: x [N,H,W,C] -> [N,outH,outW,C] with PyTorch's bins. */
export function adaptiveMaxPool2d(x: Tensor4D, outH: number, outW: number): Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    if (outH === 1 && outW === 1) return tf.max(x, [1, 2], true) as Tensor4D;
    const rows = adaptiveBins(h, outH).map(([hs, he]) => {
      const band = tf.slice(x, [0, hs, 0, 0], [-1, he - hs, -1, -1]);
      const cells = adaptiveBins(w, outW).map(([ws, we]) =>
        tf.max(tf.slice(band, [0, 0, ws, 0], [-1, -1, we - ws, -1]), [1, 2], true)
      );
      return tf.concat(cells, 2);
    });
    return tf.concat(rows, 1) as Tensor4D;
  });
}
