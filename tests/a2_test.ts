/**
 * A2-Nets double attention beyond the generated tests: parameter counts of both structures, the
 * gathering and distribution options, output channels without the reconstruction conv, config errors.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { DoubleAttention } from "../lib/modules/a2.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

function count(layer: DoubleAttention): number {
  return layer.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

const TUTORIAL = { gather: "mean", distribution: "spatial", reconstruct: false, residual: false } as const;

Deno.test("a2: parameter counts follow the structures (tutorial 3(C^2 + C), paper with reconstruction)", () => {
  const x = tf.randomNormal([3, 7, 5, 32]);
  const tutorial = new DoubleAttention(TUTORIAL);
  tf.dispose(tutorial.apply(x) as tf.Tensor);
  assert.equal(count(tutorial), 3 * (32 * 32 + 32));
  const [c, cm, cn] = [32, 16, 8];
  const paper = new DoubleAttention({ cm, cn });
  tf.dispose(paper.apply(x) as tf.Tensor);
  // convA C->cm, convB and convV C->cn, conv_reconstruct cm->C, all with bias
  assert.equal(count(paper), c * cm + cm + 2 * (c * cn + cn) + cm * c + c);
  assert.deepEqual(Object.keys(stateDict(paper)).sort(), [
    "convA.bias",
    "convA.weight",
    "convB.bias",
    "convB.weight",
    "convV.bias",
    "convV.weight",
    "conv_reconstruct.bias",
    "conv_reconstruct.weight",
  ]);
  tutorial.dispose();
  paper.dispose();
  x.dispose();
});

Deno.test("a2: mean gathering is the sum divided by HW; maps are normalised as documented", () => {
  const [n, h, w, c] = [3, 7, 5, 16];
  const x = tf.randomNormal([n, h, w, c], 0, 1, "float32", 5);
  const mean = new DoubleAttention({ ...TUTORIAL, cm: 12, cn: 6 });
  const sum = new DoubleAttention({ ...TUTORIAL, cm: 12, cn: 6, gather: "sum" });
  tf.dispose([mean.apply(x) as tf.Tensor, sum.apply(x) as tf.Tensor]);
  const sd = stateDict(mean);
  loadStateDict(sum, sd);
  const before = tf.memory().numTensors;
  const a = mean.attend(x);
  const b = sum.attend(x);
  assert.deepEqual(a.output.shape, [n, h, w, 12], "without reconstruct the output has c_m channels");
  assert.deepEqual(mean.computeOutputShape([n, h, w, c]), [n, h, w, 12]);
  tf.tidy(() => {
    assert.ok(maxAbsDiff(tf.mul(a.output, h * w), b.output) < 1e-4);
    // gather: each of the c_n maps sums to 1 over the positions; spatial distribution too
    const ones = tf.ones([n, 1, 1, 6]);
    assert.ok(maxAbsDiff(tf.sum(a.maps.gather, [1, 2], true), ones) < 1e-5);
    assert.ok(maxAbsDiff(tf.sum(a.maps.distribute, [1, 2], true), ones) < 1e-5);
  });
  tf.dispose([a.output, b.output, a.maps, b.maps]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  // the paper's distribution: softmax over the c_n descriptors at each position
  const paper = new DoubleAttention({ cm: 12, cn: 6 });
  tf.dispose(paper.apply(x) as tf.Tensor);
  const p = paper.attend(x);
  assert.deepEqual(p.output.shape, [n, h, w, c]);
  const sums = tf.sum(p.maps.distribute, 3);
  assert.ok(maxAbsDiff(sums, tf.onesLike(sums)) < 1e-5);
  tf.dispose([p.output, p.maps, sums, sd, x]);
  for (const l of [mean, sum, paper]) l.dispose();
});

Deno.test("a2: the residual adds the input; without it the output is the projected Z", () => {
  const x = tf.randomNormal([3, 5, 9, 8], 0, 1, "float32", 6);
  const withRes = new DoubleAttention({ cm: 4, cn: 4 });
  const noRes = new DoubleAttention({ cm: 4, cn: 4, residual: false });
  tf.dispose([withRes.apply(x) as tf.Tensor, noRes.apply(x) as tf.Tensor]);
  const sd = stateDict(withRes);
  loadStateDict(noRes, sd);
  const a = withRes.apply(x) as tf.Tensor;
  const b = noRes.apply(x) as tf.Tensor;
  assert.ok(maxAbsDiff(a, tf.add(b, x)) < 1e-5);
  tf.dispose([a, b, sd, x]);
  withRes.dispose();
  noRes.dispose();
});

Deno.test("a2: configs that cannot work get an Error naming the layer", () => {
  assert.throws(() => new DoubleAttention({ name: "a2x", gather: "max" as "sum" }), /^Error: a2x: expected gather/);
  assert.throws(
    () => new DoubleAttention({ name: "a2y", distribution: "x" as "channel" }),
    /a2y: expected distribution/,
  );
  assert.throws(() => new DoubleAttention({ name: "a2z", cm: 0 }), /a2z: expected cm a positive integer or null/);
  const x = tf.zeros([1, 3, 5, 8]);
  const bad = new DoubleAttention({ name: "a2w", cm: 4, reconstruct: false, residual: true });
  assert.throws(() => bad.apply(x), /a2w: expected cm \(4\) equal to the input's channels \(8\) for a residual/);
  x.dispose();
});
