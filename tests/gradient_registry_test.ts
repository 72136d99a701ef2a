/**
 * Generated from the registry: every mechanism's gradient, with its example config and inputs, agrees
 * with central differences (inference mode: no batch statistics, no dropout, so the loss is a fixed
 * function). f = sum(output * w) for a fixed random w; along the gradient and a random direction in
 * weight space, and along the gradient and random directions in input space (tests/support/grad_check.ts).
 * The kernels are checked one by one in gradient_check_test.ts; this is the safety net over their
 * compositions. On the default backend (wasm here).
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { attentionEntries } from "../lib/registry.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { withSeed } from "../lib/runtime/seed.ts";
import { create, feed, randomInputs, shapesOf, trainableVariables } from "./_reliability.ts";
import { gradCheck } from "./support/grad_check.ts";

await initBackend({ quiet: true });

/** Allowed error, relative to |g| (float32, ReLU kinks and max pools within a step). */
const TOL = 1e-2;
const EPS = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5];

/**
 * Looser tolerances, and why. BAM's output is x (1 + attention): its weights' gradient is small
 * (|g| 0.4) next to the float32 noise of an output dominated by x (about 1e-6 in f), and its ReLUs
 * bend the loss within the steps that rise above that noise; wasm and cpu agree on g to 1e-7 and
 * their central differences scatter around it the same way (0.92-1.03 over steps 1e-1..3e-5).
 * Worst seen over 6 seeds: 1.7e-2.
 */
const TOLERANCE: Record<string, number> = { bam: 3e-2 };

/** The fixed (seeded) weights of output i. */
const weightsFor = (t: tf.Tensor, i: number) => tf.randomNormal(t.shape, 0, 1, "float32", 99 + i);

/** sum(y * w), w fixed for y's shape; several outputs are summed. */
function weighted(y: tf.Tensor | tf.Tensor[]): tf.Scalar {
  const ys = Array.isArray(y) ? y : [y];
  return tf.addN(ys.map((t, i) => tf.sum(tf.mul(t, weightsFor(t, i))))) as tf.Scalar;
}

/**
 * The same sum in float64 on the host, for the central differences: the float32 sum's rounding
 * (about 1e-7 of the sum of |y w| over thousands of terms) swamped weights with small gradients
 * (BAM's weights: |g| 0.4 against an output dominated by x itself).
 */
function weighted64(y: tf.Tensor | tf.Tensor[]): number {
  return tf.tidy(() =>
    (Array.isArray(y) ? y : [y]).reduce((s, t, i) => {
      const a = t.dataSync(), b = weightsFor(t, i).dataSync();
      for (let k = 0; k < a.length; k++) s += a[k] * b[k];
      return s;
    }, 0)
  );
}

for (const entry of attentionEntries()) {
  Deno.test(`${entry.name}: gradient = central differences (weights and inputs, inference mode)`, () => {
    const tol = TOLERANCE[entry.name] ?? TOL;
    const before = tf.memory().numTensors;
    const layer = create(entry);
    const xs = randomInputs(shapesOf(entry), 3);
    const run = (ins: tf.Tensor[]) => layer.apply(feed(ins), { training: false }) as tf.Tensor | tf.Tensor[];
    const out = (...ins: tf.Tensor[]) => weighted(run(ins));
    const out64 = (...ins: tf.Tensor[]) => tf.tidy(() => weighted64(run(ins)));
    withSeed(5, () => tf.dispose(tf.tidy(() => out(...xs)))); // builds the weights
    const vars = trainableVariables(layer);
    const problems: string[] = [];
    if (vars.length > 0) {
      const { value, grads } = tf.variableGrads(() => out(...xs), vars);
      const g = vars.map((v) => grads[v.name]);
      const norm = Math.sqrt(tf.tidy(() => tf.addN(g.map((t) => tf.sum(tf.square(t)))).dataSync()[0]));
      const saved = vars.map((v) => tf.clone(v));
      const at = (d: tf.Tensor[], e: number) => {
        vars.forEach((v, i) => {
          const moved = tf.tidy(() => tf.add(saved[i], tf.mul(d[i], e)));
          v.assign(moved);
          moved.dispose();
        });
        const l = out64(...xs);
        vars.forEach((v, i) => v.assign(saved[i]));
        return l;
      };
      const random = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, "float32", 200 + i));
      for (const [name, raw] of [["gradient", g], ["random", random]] as const) {
        const d = tf.tidy(() => {
          const n = Math.sqrt(tf.addN(raw.map((t) => tf.sum(tf.square(t)))).dataSync()[0]) || 1;
          return raw.map((t) => tf.div(t, n));
        });
        const analytic = tf.tidy(() => tf.addN(g.map((t, i) => tf.sum(tf.mul(t, d[i])))).dataSync()[0]);
        const errors = EPS.map((e) => Math.abs((at(d, e) - at(d, -e)) / (2 * e) - analytic) / Math.max(norm, 1e-12));
        const error = Math.min(...errors);
        if (!(error < tol)) {
          problems.push(`weights along ${name}: g.d ${analytic}, errors ${errors.map((x) => x.toExponential(1))}`);
        }
        tf.dispose(d);
      }
      tf.dispose([value, ...g, ...saved, ...random]);
    }
    for (const c of gradCheck(out, xs, { eps: EPS, seed: 7, value: out64 })) {
      if (!(c.error < tol)) {
        const err = c.error.toExponential(1);
        problems.push(`inputs along ${c.direction}: g.d ${c.analytic}, central difference ${c.numeric} (${err})`);
      }
    }
    tf.dispose(xs);
    layer.dispose();
    assert.equal(tf.memory().numTensors - before, 0, "tensors left behind");
    assert.deepEqual(problems, [], `${entry.name}: ${problems.join("; ")}`);
  });
}
