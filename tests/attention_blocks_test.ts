/**
 * The shared pieces of the self-attention family: the materialised softmax attention step, pyramid
 * sampling, and the conv/BatchNorm/Dropout2d blocks with PyTorch semantics.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { materialisedSoftmaxAttention } from "../lib/ops/blocked_attention.ts";
import { pyramidLength, pyramidSample } from "../lib/ops/pyramid_sample.ts";
import { adaptiveAvgPool2d } from "../lib/ops/adaptive_pool.ts";
import { applyBatchNorm, dropout2d } from "../lib/ops/conv_bn.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

Deno.test("materialisedSoftmaxAttention equals a loop reference and its rows sum to 1", () => {
  const before = tf.memory().numTensors;
  const [n, lq, lk, d, dv] = [2, 5, 7, 3, 4];
  const q = tf.randomNormal([n, lq, d], 0, 1, "float32", 1) as tf.Tensor3D;
  const k = tf.randomNormal([n, lk, d], 0, 1, "float32", 2) as tf.Tensor3D;
  const v = tf.randomNormal([n, lk, dv], 0, 1, "float32", 3) as tf.Tensor3D;
  const scale = 0.7;
  const { output: out, attention: map } = materialisedSoftmaxAttention(q, k, v, { scale });
  assert.deepEqual(out.shape, [n, lq, dv]);
  assert.deepEqual(map.shape, [n, lq, lk]);
  const [qd, kd, vd, od, md] = [q, k, v, out, map].map((t) => t.dataSync());
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < lq; i++) {
      const logits = Array.from({ length: lk }, (_, j) => {
        let s = 0;
        for (let c = 0; c < d; c++) s += qd[(b * lq + i) * d + c] * kd[(b * lk + j) * d + c];
        return s * scale;
      });
      const mx = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - mx));
      const z = e.reduce((a, x) => a + x, 0);
      let rowSum = 0;
      for (let j = 0; j < lk; j++) {
        assert.ok(Math.abs(md[(b * lq + i) * lk + j] - e[j] / z) < 1e-6);
        rowSum += md[(b * lq + i) * lk + j];
      }
      assert.ok(Math.abs(rowSum - 1) < 1e-5);
      for (let c = 0; c < dv; c++) {
        let want = 0;
        for (let j = 0; j < lk; j++) want += (e[j] / z) * vd[(b * lk + j) * dv + c];
        assert.ok(Math.abs(od[(b * lq + i) * dv + c] - want) < 1e-5);
      }
    }
  }
  tf.dispose([q, k, v, out, map]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("materialisedSoftmaxAttention names the shapes it cannot combine", () => {
  const q = tf.zeros([2, 5, 3]) as tf.Tensor3D;
  const k = tf.zeros([2, 7, 4]) as tf.Tensor3D;
  const v = tf.zeros([2, 7, 4]) as tf.Tensor3D;
  assert.throws(
    () => materialisedSoftmaxAttention(q, k, v),
    /expected q and k to share the feature size D, got q \[2,5,3\], k \[2,7,4\]/,
  );
  tf.dispose([q, k, v]);
});

Deno.test("pyramidSample concatenates PyTorch adaptive pools, row-major, in order", () => {
  const before = tf.memory().numTensors;
  const x = tf.randomNormal([2, 7, 5, 3], 0, 1, "float32", 4) as tf.Tensor4D;
  const sizes = [1, 3, 6, 8];
  assert.equal(pyramidLength(sizes), 110);
  const s = pyramidSample(x, sizes);
  assert.deepEqual(s.shape, [2, 110, 3]);
  let offset = 0;
  for (const size of sizes) {
    const part = tf.slice(s, [0, offset, 0], [-1, size * size, -1]);
    const pool = adaptiveAvgPool2d(x, size, size);
    const want = tf.reshape(pool, [2, size * size, 3]);
    assert.ok(maxAbsDiff(part, want) < 1e-6, `size ${size}`);
    tf.dispose([part, pool, want]);
    offset += size * size;
  }
  assert.throws(() => pyramidSample(x, [1, 0]), /expected positive integer sizes, got \[1,0\]/);
  assert.throws(() => pyramidSample(x, []), /expected positive integer sizes/);
  tf.dispose([x, s]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("applyBatchNorm: training normalises with batch statistics and moves the running ones (twice when asked)", () => {
  const before = tf.memory().numTensors;
  const x = tf.tidy(() => tf.add(tf.mul(tf.randomNormal([4, 3, 5, 2], 0, 1, "float32", 5), 2), 3));
  const p = { gamma: tf.ones([2]), beta: tf.zeros([2]), movingMean: tf.zeros([2]), movingVariance: tf.ones([2]) };
  const { mean, variance } = tf.tidy(() => tf.moments(x, [0, 1, 2]));
  const count = 4 * 3 * 5;
  const unbiased = tf.mul(variance, count / (count - 1));
  for (const updates of [1, 2]) {
    let got: tf.Tensor[] = [];
    const y = tf.tidy(() =>
      applyBatchNorm(x, { ...p, update: (m, v) => (got = [tf.keep(m), tf.keep(v)]) }, { training: true, updates })
    );
    const keep = (1 - 0.1) ** updates;
    const wantMean = tf.mul(mean, 1 - keep);
    const wantVar = tf.tidy(() => tf.add(tf.mul(unbiased, 1 - keep), keep));
    assert.ok(maxAbsDiff(got[0], wantMean) < 1e-5, `mean after ${updates}`);
    assert.ok(maxAbsDiff(got[1], wantVar) < 1e-4, `variance after ${updates}`);
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.mean(y, [0, 1, 2]))).dataSync()[0]) < 1e-5);
    tf.dispose([y, wantMean, wantVar, ...got]);
  }
  // inference uses the running statistics: identity here
  const y = tf.tidy(() => applyBatchNorm(x, p, { training: false }));
  assert.ok(maxAbsDiff(y, x) < 1e-4);
  tf.dispose([x, y, mean, variance, unbiased, p.gamma, p.beta, p.movingMean, p.movingVariance]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("dropout2d drops whole channels in training, scales the rest, and is the identity in inference", () => {
  const x = tf.ones([3, 4, 5, 16]) as tf.Tensor4D;
  assert.equal(dropout2d(x, 0.5, false), x);
  const y = dropout2d(x, 0.5, true);
  const d = y.dataSync();
  for (let b = 0; b < 3; b++) {
    for (let c = 0; c < 16; c++) {
      const v0 = d[b * 4 * 5 * 16 + c];
      assert.ok(v0 === 0 || Math.abs(v0 - 2) < 1e-6, `kept values are scaled by 1/(1-p): ${v0}`);
      for (let i = 1; i < 20; i++) assert.equal(d[(b * 20 + i) * 16 + c], v0, "whole channel");
    }
  }
  tf.dispose([x, y]);
});
