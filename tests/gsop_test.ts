/**
 * GSoP beyond the generated tests: covariance pooling against MPNCOV's formula, parameter counts of
 * the attention and the bottleneck, the reduction-stride rule, strided bottleneck shapes, running
 * statistics in training, and config errors.
 */
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { covariancePool, GSoP, GSoPBottleneck, gsopBottleneckEntry, gsopReductionStride } from "../lib/modules/gsop.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

function count(layer: tfl.layers.Layer): number {
  return layer.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

Deno.test("gsop: covariancePool equals MPNCOV's X I_hat X^T, I_hat = (1/M)(I - 11^T/M)", () => {
  const [n, h, w, d] = [3, 5, 7, 6];
  const x = tf.randomNormal([n, h, w, d], 0, 1, "float32", 1) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const got = covariancePool(x);
  assert.equal(tf.memory().numTensors, before + 1, "tensors leaked");
  const m = h * w;
  const want = tf.tidy(() => {
    const xs = tf.transpose(tf.reshape(x, [n, m, d]), [0, 2, 1]); // [N, d, M] as PyTorch
    const iHat = tf.sub(tf.mul(tf.eye(m), 1 / m), tf.fill([m, m], 1 / m / m));
    return tf.matMul(tf.matMul(xs, tf.tile(tf.expandDims(iHat, 0), [n, 1, 1])), xs, false, true);
  });
  assert.deepEqual(got.shape, [n, d, d]);
  assert.ok(maxAbsDiff(got, want) < 1e-5);
  tf.dispose([x, got, want]);
});

Deno.test("gsop: parameter counts, 5Cd + 4d^2 + 9d + C for the attention; the bottleneck adds ResNet's", () => {
  for (const [c, d] of [[64, 32], [40, 8], [32, 16]]) {
    const layer = new GSoP({ attDim: d });
    tf.tidy(() => layer.apply(tf.zeros([1, 5, 3, c])) as tf.Tensor);
    assert.equal(count(layer), 5 * c * d + 4 * d * d + 9 * d + c, `C=${c}, d=${d}`);
    layer.dispose();
  }
  // the public fixture's Bottleneck(64, 16, att_dim 32): 4544 for the ResNet part + GSoP = 19232
  for (const [cin, p, s, d] of [[64, 16, 1, 32], [24, 8, 2, 12], [32, 8, 1, 16]]) {
    const block = new GSoPBottleneck({ planes: p, stride: s, attDim: d });
    tf.tidy(() => block.apply(tf.zeros([1, 7, 5, cin])) as tf.Tensor);
    const c = 4 * p;
    const resnet = cin * p + 2 * p + 9 * p * p + 2 * p + p * c + 2 * c;
    const down = s !== 1 || cin !== c ? cin * c + 2 * c : 0;
    assert.equal(count(block), resnet + down + 5 * c * d + 4 * d * d + 9 * d + c, `${cin}, ${p}, ${s}, ${d}`);
    if (cin === 64) assert.equal(count(block), 19232);
    block.dispose();
  }
});

Deno.test("gsop: drStride null follows the reference (2 for planes <= 64, i.e. C <= 256, else 1)", () => {
  assert.equal(gsopReductionStride(16), 2);
  assert.equal(gsopReductionStride(64), 2);
  assert.equal(gsopReductionStride(65), 1);
  const x = tf.randomNormal([2, 5, 7, 260], 0, 1, "float32", 2);
  const auto = new GSoP({ attDim: 4 });
  const one = new GSoP({ attDim: 4, drStride: 1 });
  const two = new GSoP({ attDim: 4, drStride: 2 });
  for (const l of [auto, one, two]) tf.dispose(l.apply(x) as tf.Tensor);
  const sd = stateDict(auto);
  loadStateDict(one, sd);
  loadStateDict(two, sd);
  const [a, b, c] = [auto, one, two].map((l) => l.apply(x) as tf.Tensor);
  assert.equal(maxAbsDiff(a, b), 0, "C = 260 > 256: stride 1");
  assert.ok(maxAbsDiff(a, c) > 0);
  tf.dispose([a, b, c, sd, x]);
  for (const l of [auto, one, two]) l.dispose();
});

Deno.test("gsop_bottleneck: stride 2 with the downsample shortcut; shapes, maps, PyTorch names", () => {
  const x = tf.randomNormal([3, 9, 7, 24], 0, 1, "float32", 3);
  const block = new GSoPBottleneck({ planes: 8, stride: 2, attDim: 12 });
  tf.dispose(block.apply(x) as tf.Tensor);
  const before = tf.memory().numTensors;
  const r = block.attend(x);
  assert.deepEqual(r.output.shape, [3, 5, 4, 32]);
  assert.deepEqual(block.computeOutputShape([3, 9, 7, 24]), [3, 5, 4, 32]);
  assert.deepEqual(block.computeOutputShape([null, null, null, 24]), [null, null, null, 32]);
  assert.deepEqual(r.maps.channel.shape, [3, 1, 1, 32]);
  assert.deepEqual(r.maps.preAttention.shape, [3, 5, 4, 32]);
  assert.ok(r.output.dataSync().every((v) => v >= 0), "the block ends with a ReLU");
  tf.dispose([r.output, r.maps]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  const keys = block.torchParams().map((p) => p.name);
  for (const k of ["downsample.0.weight", "downsample.1.running_var", "row_conv_group.weight", "bn3.weight"]) {
    assert.ok(keys.includes(k), k);
  }
  x.dispose();
  block.dispose();
});

Deno.test("gsop: training uses batch statistics and moves the running ones (momentum 0.1), no leaks", () => {
  const x = tf.randomNormal([3, 7, 5, 32], 1, 2, "float32", 4);
  const layer = new GSoP({ attDim: 8 });
  tf.dispose(layer.apply(x) as tf.Tensor);
  const mean = () => layer.nonTrainableWeights.find((w) => w.name.includes("dr_bn_moving_mean"))!.read().dataSync();
  assert.ok(mean().every((v) => v === 0));
  const before = tf.memory().numTensors;
  tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
  assert.equal(tf.memory().numTensors, before, "tensors leaked in training");
  // the new running mean is 0.1 * the batch mean of the BatchNorm's input (ReLU'd input, strided 1x1 conv)
  const sd = stateDict(layer);
  const want = tf.tidy(() => {
    const k = tf.reshape(tf.transpose(tf.reshape(sd["conv_for_DR.weight"], [8, 32])), [1, 1, 32, 8]);
    const y = tf.add(tf.conv2d(tf.relu(x) as tf.Tensor4D, k as tf.Tensor4D, 2, "valid"), sd["conv_for_DR.bias"]);
    return tf.mul(tf.mean(y, [0, 1, 2]), 0.1).dataSync();
  });
  const got = mean();
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${got[i]} vs ${want[i]}`);
  tf.dispose([sd, x]);
  layer.dispose();
});

Deno.test("gsop: configs that cannot work get an Error naming the layer", () => {
  assert.throws(() => new GSoP({ name: "g1", attDim: 0 }), /^Error: g1: expected attDim a positive integer, got 0/);
  assert.throws(() => new GSoP({ name: "g2", drStride: 1.5 }), /g2: expected drStride a positive integer or null/);
  assert.throws(() => new GSoPBottleneck({ name: "g3", stride: 0 }), /g3: expected stride a positive integer/);
  const x = tf.zeros([1, 5, 5, 30]);
  assert.throws(
    () => new GSoPBottleneck({ name: "g4", attDim: 4 }).apply(x),
    /g4: expected planes, or input channels divisible by 4/,
  );
  x.dispose();
  assert.throws(
    () => gsopBottleneckEntry.fixtures!.gsop({ planes: 16, attention: "2" }),
    /only attention '1' \(channel GSoP\) is implemented/,
  );
});
