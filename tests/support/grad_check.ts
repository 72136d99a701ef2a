/**
 * A finite-difference gradient check for the tests: does a step along a direction change a scalar
 * function by what its gradient says?
 *
 * For f(x_1..x_k) (a scalar), the analytic directional derivative along d is sum_i g_i . d_i with
 * g = tf.grads(f); the numeric one is the central difference (f(x + e d) - f(x - e d)) / 2e. In
 * float32 the central difference has a truncation error O(e^2) and a rounding error O(1e-7 |f| / e),
 * so several step sizes are tried and the best kept: a wrong gradient misses at every step size.
 * The error is relative to |g| |d| (a cosine-like scale), so it means the same for any shape.
 *
 * Directions: seeded random normals over every input, each input on its own, and the gradient
 * itself (the descent direction that an optimiser takes).
 */
import * as tf from "@tensorflow/tfjs-core";

/** What {@link gradCheck} measured along one direction. */
export interface DirectionCheck {
  /** Which direction ("random 0", "input 1", "gradient"). */
  direction: string;
  /** sum_i g_i . d_i. */
  analytic: number;
  /** The central difference closest to it over the step sizes. */
  numeric: number;
  /** |numeric - analytic| / (|g| |d|). */
  error: number;
  /** The step size of `numeric`. */
  eps: number;
}

/** Options of {@link gradCheck}. */
export interface GradCheckOptions {
  /** Step sizes, relative to |d| = 1 per direction. Default [1e-2, 3e-3, 1e-3]. */
  eps?: number[];
  /** Random directions over all inputs. Default 2. */
  randomDirections?: number;
  /** Seed of the directions. Default 1. */
  seed?: number;
  /**
   * f's value for the central differences, if it can be computed more exactly than `f` (e.g. its
   * final sum in float64 on the host: a float32 sum of thousands of terms has a rounding noise that
   * a small gradient drowns in). Default: `f`'s float32 value.
   */
  value?: (...xs: tf.Tensor[]) => number;
}

/** Sum over all elements of a list of tensors' elementwise products. */
function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  return tf.tidy(() => a.reduce((s, t, i) => s + tf.sum(tf.mul(t, b[i])).dataSync()[0], 0));
}

/**
 * Checks the gradient of `f` at `xs` (float32 tensors) along several directions; returns one
 * record per direction, worst first. Frees everything it makes.
 */
export function gradCheck(
  f: (...xs: tf.Tensor[]) => tf.Scalar,
  xs: tf.Tensor[],
  opts: GradCheckOptions = {},
): DirectionCheck[] {
  const epsList = opts.eps ?? [1e-2, 3e-3, 1e-3];
  const seed = opts.seed ?? 1;
  const grads = tf.grads((...a: tf.Tensor[]) => f(...a))(xs);
  const exact = opts.value ?? ((...a: tf.Tensor[]) => f(...a).dataSync()[0]);
  const value = (shift: tf.Tensor[], e: number) =>
    tf.tidy(() => exact(...xs.map((x, i) => tf.add(x, tf.mul(shift[i], e)))));
  const directions: [string, tf.Tensor[]][] = [];
  for (let r = 0; r < (opts.randomDirections ?? 2); r++) {
    directions.push([`random ${r}`, xs.map((x, i) => tf.randomNormal(x.shape, 0, 1, "float32", seed + 31 * r + i))]);
  }
  if (xs.length > 1) {
    xs.forEach((_, k) =>
      directions.push([
        `input ${k}`,
        xs.map((x, i) => (i === k ? tf.randomNormal(x.shape, 0, 1, "float32", seed + 7 + k) : tf.zerosLike(x))),
      ])
    );
  }
  directions.push(["gradient", grads.map((g) => tf.clone(g))]);
  const gnorm = Math.sqrt(dot(grads, grads));
  const out: DirectionCheck[] = [];
  for (const [name, raw] of directions) {
    const n = Math.sqrt(dot(raw, raw));
    const d = raw.map((t) => tf.div(t, n > 0 ? n : 1));
    const analytic = dot(grads, d);
    let best: DirectionCheck | undefined;
    for (const e of epsList) {
      const numeric = (value(d, e) - value(d, -e)) / (2 * e);
      const error = Math.abs(numeric - analytic) / Math.max(gnorm, 1e-12);
      if (!best || error < best.error) best = { direction: name, analytic, numeric, error, eps: e };
    }
    out.push(best!);
    tf.dispose([...raw, ...d]);
  }
  tf.dispose(grads);
  return out.sort((a, b) => b.error - a.error);
}
