// Show, Attend and Tell reader of two-digit MNIST: a tiny training run lowers the teacher-forced
// loss without leaking tensors; the shipped reader reads >= 90% of 500 test images fully right,
// about what its meta.json records, and its attention points at the digit being read.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { loadMnist, sliceMnist } from "../lib/data/mnist.ts";
import { multiDigitMnist } from "../lib/data/digits.ts";
import { batches, disposeBatch } from "../lib/data/batches.ts";
import {
  evaluateSat,
  loadShippedSat,
  readDigits,
  SAT_START,
  SAT_VOCAB,
  satModel,
  teacherTokens,
  trainSat,
} from "../lib/train/sat_train.ts";
import { softmaxCrossEntropy } from "../lib/train/train.ts";
import { CoordinateChannels } from "../lib/train/coordinate_channels.ts";
import type { LayersModel } from "../lib/types.ts";

await initBackend({ backend: "wasm", quiet: true });

/** Teacher-forced cross-entropy of a model on one batch of a two-digit set. */
function tfLoss(model: LayersModel, xs: tf.Tensor, labels: Int32Array, ys: tf.Tensor): number {
  return tf.tidy(() => {
    const tokens = teacherTokens(labels, xs.shape[0], 2);
    const logits = model.predict([xs, tokens]) as tf.Tensor;
    return softmaxCrossEntropy(tf.pad(ys, [[0, 0], [0, 0], [0, 1]]), logits).dataSync()[0];
  });
}

Deno.test("sat: CoordinateChannels appends the column and row in [-1, 1] at the cell centres", () => {
  const x = tf.ones([2, 3, 4, 5]);
  const n0 = tf.memory().numTensors;
  const y = new CoordinateChannels().apply(x) as tf.Tensor;
  assert.deepEqual(y.shape, [2, 3, 4, 7]);
  const v = y.arraySync() as number[][][][];
  assert.deepEqual(v[1][2].map((c) => c[5]), [-0.75, -0.25, 0.25, 0.75]); // x of row 2
  assert.deepEqual(
    [0, 1, 2].map((r) => Number(v[0][r][3][6].toFixed(6))),
    [-2 / 3, 0, 2 / 3].map((z) => Number(z.toFixed(6))),
  );
  assert.equal(v[0][0][0][0], 1);
  y.dispose();
  assert.equal(tf.memory().numTensors, n0);
  x.dispose();
});

Deno.test("sat: teacherTokens starts with the start token and shifts the labels by one", () => {
  const t = teacherTokens([3, 7, 1, 9], 2, 2);
  assert.deepEqual(t.shape, [2, 2, SAT_VOCAB]);
  assert.deepEqual(Array.from(tf.tidy(() => tf.argMax(t, -1).dataSync())), [SAT_START, 3, SAT_START, 1]);
  t.dispose();
  assert.throws(() => teacherTokens([1, 2, 3], 2, 2), /teacherTokens: expected 4 labels \(2 x 2\), got 3/);
});

Deno.test("sat: a tiny training run lowers the loss and leaks no tensors", async () => {
  const src = sliceMnist(await loadMnist({ split: "train", limit: 3000 }), 0, 3000);
  const held = multiDigitMnist(src, { digits: 2, count: 64, seed: 99 });
  const [b] = batches(held, { batchSize: 64 });
  const model = satModel({ seed: 3, filters: [8, 16, 32], decoderDim: 32, attnDim: 16, dropout: 0 });
  const before = tfLoss(model, b.xs, b.labels, b.ys);
  const n0 = tf.memory().numTensors;
  const logs = await trainSat(model, (e) => multiDigitMnist(src, { digits: 2, count: 640, seed: e }), {
    epochs: 2,
    batchSize: 32,
    learningRate: 5e-3,
    progress: false,
  });
  assert.equal(tf.memory().numTensors, n0, "trainSat leaked tensors");
  const after = tfLoss(model, b.xs, b.labels, b.ys);
  assert.equal(logs.length, 2);
  assert.ok(logs.every((l) => Number.isFinite(l.loss) && l.penalty >= 0));
  assert.ok(after < before - 0.05, `held-out loss ${before} -> ${after}`);
  const n1 = tf.memory().numTensors;
  const r = readDigits(model, b.xs);
  assert.deepEqual(r.tokens.shape, [64, 2]);
  assert.deepEqual(r.attention.shape, [64, 2, 9, 16]);
  const sums = tf.tidy(() => tf.sum(r.attention, [2, 3]).dataSync());
  for (const s of sums) assert.ok(Math.abs(s - 1) < 1e-4, `attention sums to ${s}`);
  tf.dispose([r.tokens, r.attention]);
  assert.equal(tf.memory().numTensors, n1, "readDigits leaked tensors");
  assert.throws(
    () => readDigits(model, tf.zeros([1, 28, 28, 1]) as tf.Tensor4D),
    /readDigits: expected images \[N, 36, 64, 1\], got \[1, 28, 28, 1\]/,
  );
  disposeBatch(b);
  model.dispose();
});

Deno.test("sat: the shipped reader reads >= 90% of 500 test images fully right, as its meta.json says", async () => {
  const { model, meta } = await loadShippedSat();
  const test = multiDigitMnist(await loadMnist({ split: "test" }), { digits: 2, count: 500, seed: 12345 });
  const n0 = tf.memory().numTensors;
  const e = evaluateSat(model, test);
  assert.equal(tf.memory().numTensors, n0, "evaluateSat leaked tensors");
  assert.equal(e.count, 500);
  assert.ok(e.sequenceAcc >= 0.9, `both digits right in ${e.sequenceAcc} of the images`);
  // the first 500 of the recorded test images: within a binomial margin of the recorded accuracy
  assert.ok(Math.abs(1 - e.sequenceAcc - meta.testError) < 0.04, `error ${1 - e.sequenceAcc} vs ${meta.testError}`);
  // each step attends to the digit it reads: far above the ~25% of the grid that one digit's box covers
  for (const s of e.steps) assert.ok(s.pointing > 0.8, `attention peak in the box ${s.pointing}`);
  model.dispose();
});
