// The FusedBatchNorm, Max and Min gradients that registerTrainingKernels installs
// (lib/runtime/kernels/batch_norm_grad.ts, min_max_grad.ts) equal tfjs-core's: BatchNorm with and
// without scale; Max/Min over several axes, ties sharing the gradient. Run: deno test -A tests/gradients_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers tfjs-core's gradients
import { fusedBatchNormGrad } from "../lib/runtime/kernels/batch_norm_grad.ts";
import { initBackend } from "../lib/runtime/backend.ts";

// the gradient tfjs registered, before initBackend replaces it
const original = tf.getGradient("FusedBatchNorm");
await initBackend({ quiet: true });

for (const withScale of [true, false]) {
  Deno.test(`FusedBatchNorm gradient equals tfjs-core's (scale ${withScale})`, () => {
    const mine = fusedBatchNormGrad(original);
    const x = tf.randomNormal([4, 5, 6, 8], 0.5, 2, "float32", 1);
    const mean = tf.randomNormal([8], 0.3, 1, "float32", 2);
    const variance = tf.randomUniform([8], 0.5, 2, "float32", 3);
    const scale = withScale ? tf.randomNormal([8], 1, 0.5, "float32", 4) : undefined;
    const dy = tf.randomNormal([4, 5, 6, 8], 0, 1, "float32", 5);
    const attrs = { varianceEpsilon: 1e-3 };
    const saved = [x, mean, variance, scale as tf.Tensor];
    const want = original.gradFunc(dy, saved, attrs);
    const got = mine.gradFunc(dy, saved, attrs);
    for (const name of ["x", "mean", "variance", "scale", "offset"]) {
      const a = want[name](), b = got[name]();
      assert.deepEqual(b.shape, a.shape, name);
      const av = a.dataSync(), bv = b.dataSync();
      let worst = 0;
      for (let i = 0; i < av.length; i++) {
        worst = Math.max(worst, Math.abs(av[i] - bv[i]) / Math.max(1, Math.abs(av[i])));
      }
      assert.ok(worst < 1e-5, `${name}: max relative difference ${worst}`);
    }
  });
}

Deno.test("training a BatchNorm layer through tf.grads uses the new gradient and matches tfjs's", () => {
  assert.notEqual(tf.getGradient("FusedBatchNorm").gradFunc, original.gradFunc);
  const x = tf.randomNormal([3, 4, 4, 5], 0, 1, "float32", 9);
  const f = (t: tf.Tensor) => {
    const { mean, variance } = tf.moments(t, [0, 1, 2]);
    // (tfjs cannot differentiate tf.batchNorm without a scale: it saves the missing input)
    return tf.sum(tf.square(tf.batchNorm(t, mean, variance, tf.fill([5], 0.2), tf.fill([5], 1.5), 1e-5)));
  };
  const mine = tf.grad(f)(x).dataSync();
  tf.registerGradient(original);
  try {
    const theirs = tf.grad(f)(x).dataSync();
    for (let i = 0; i < mine.length; i++) assert.ok(Math.abs(mine[i] - theirs[i]) < 1e-4, `${i}`);
  } finally {
    tf.registerGradient(fusedBatchNormGrad(original));
  }
});

Deno.test("Max / Min gradients (1 - step mask): the equal mask shared between ties", () => {
  const x = tf.tensor4d([1, 5, 5, 2, 0, -1, 3, 3, 7, 7, 7, -2, 4, 0, 1, 1], [2, 2, 2, 2]);
  type Case = [typeof tf.max, number | number[] | undefined, boolean];
  const cases: Case[] = [
    [tf.max, [1, 2], false],
    [tf.min, [1, 2], false],
    [tf.max, [3], false],
    [tf.min, [0, 3], false],
    [tf.max, undefined, false],
    [tf.max, [1, 2], true], // keepDims: y already has the reduced axes (CBAM's pools)
    [tf.min, 3, true],
  ];
  for (const [op, axes, keepDims] of cases) {
    const f = (t: tf.Tensor) => tf.sum(tf.mul(op(t, axes, keepDims), tf.scalar(3)));
    const got = tf.grad(f)(x).arraySync();
    // the reference: dy * (x == y) / (number of ties), y broadcast (TensorFlow's and PyTorch amax's)
    const want = tf.tidy(() => {
      const y = op(x, axes, true);
      const hit = tf.cast(tf.equal(x, y), "float32");
      return tf.div(tf.mul(hit, 3), tf.sum(hit, axes, true)).arraySync();
    });
    assert.deepEqual(got, want, `${op.name} ${JSON.stringify(axes)} keepDims ${keepDims}`);
  }
});
