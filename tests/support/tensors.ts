/**
 * Small tensor helpers shared by the tests: the largest absolute difference of two tensors, a
 * seeded shuffle, and a permutation of the positions of a feature map (for the tests that check
 * that self-attention is equivariant to a reordering of positions).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** max |a - b| over all elements (a and b broadcast). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** A permutation of 0..k-1, shuffled (Fisher-Yates) by a linear congruential generator seeded by `seed`. */
export function shuffled(k: number, seed: number): number[] {
  const p = [...Array(k).keys()];
  let s = seed;
  for (let i = k - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Permutes the H*W positions of [N,H,W,C] or [N,T,H,W,C] (every frame alike): new i holds old perm[i]. */
export function permutePositions(x: tf.Tensor, perm: number[]): tf.Tensor {
  return tf.tidy(() => {
    const s = x.shape;
    const lead = s.slice(0, -3);
    const [h, w, c] = s.slice(-3);
    return tf.reshape(tf.gather(tf.reshape(x, [...lead, h * w, c]), perm, lead.length), s);
  });
}

/**
 * Deterministic pseudo-random values in [-1, 1) (a linear congruential generator seeded by `seed`),
 * `n` of them or as many as `shape` holds: the same inputs on every backend and run.
 */
export function seededValues(shapeOrSize: number[] | number, seed: number): Float32Array {
  const n = typeof shapeOrSize === "number" ? shapeOrSize : shapeOrSize.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
