/**
 * IAU (Interaction-Aggregation-Update): properties the generated tests and the fixtures do not
 * cover: video shapes, the identity at the zero-initialised updates, permutation equivariance over
 * positions and frames, the interaction mask, gradients and running statistics of the video block.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { IAU, iau, iauMask, type IAUWeights } from "../lib/modules/iau.ts";
import { stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { withSeed } from "../lib/runtime/seed.ts";
import { maxAbsDiff, permutePositions, shuffled } from "./support/tensors.ts";

await initBackend({ quiet: true });

Deno.test("iau: shapes on non-square odd maps, batch 3, images and videos", () => {
  const before = tf.memory().numTensors;
  for (const [shape, t] of [[[3, 7, 5, 16], 1], [[3, 3, 7, 5, 16], 3], [[3, 2, 9, 3, 12], 2]] as const) {
    const x = tf.randomNormal([...shape], 0, 1, "float32", 1);
    const layer = new IAU({ zeroInit: false, parts: 3 });
    withSeed(11, () => tf.dispose(layer.apply(x) as tf.Tensor));
    const { output, maps } = layer.attend(x);
    const c = shape[shape.length - 1];
    assert.deepEqual(output.shape, shape);
    assert.deepEqual(layer.computeOutputShape([...shape]), [...shape]);
    assert.deepEqual(maps.parts.shape, [...shape.slice(0, -1), 3]);
    assert.deepEqual(maps.channelAffinity.shape, [3, c * t, c * t]);
    assert.deepEqual(maps.relation.shape, [3, 3 * t, 3 * t]);
    maps.parts.dataSync().forEach((v) => assert.ok(v >= 0 && v <= 1)); // a sigmoid (may saturate in float32)
    for (const m of ["channelAffinity", "relation"]) {
      const sums = tf.sum(maps[m], 2);
      sums.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5, `${m} rows sum to 1`));
      sums.dispose();
    }
    tf.dispose([x, output, ...Object.values(maps)]);
    layer.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("iau: with the reference's zero-initialised updates the block is the identity (inference and training)", () => {
  for (const shape of [[3, 7, 5, 16], [3, 3, 5, 7, 12]]) {
    const x = tf.randomNormal(shape, 0, 1, "float32", 2);
    const layer = new IAU();
    for (const training of [false, true]) {
      const y = layer.apply(x, { training }) as tf.Tensor;
      assert.equal(maxAbsDiff(y, x), 0, `${shape} training ${training}`);
      y.dispose();
    }
    x.dispose();
    layer.dispose();
  }
});

Deno.test("iau: permuting the positions permutes the output and the part maps; affinities are invariant", () => {
  const before = tf.memory().numTensors;
  for (const shape of [[3, 7, 5, 16], [3, 3, 5, 7, 12]]) {
    const x = tf.randomNormal(shape, 0, 1, "float32", 3);
    const perm = shuffled(35, 5);
    const xp = permutePositions(x, perm);
    const layer = new IAU({ zeroInit: false });
    // seeded weights: with unseeded ones the 1e-5 tolerances under the 1e8 mask failed about 1 run in 10
    withSeed(3, () => tf.dispose(layer.apply(x) as tf.Tensor));
    const a = layer.attend(x);
    const b = layer.attend(xp);
    const want = permutePositions(a.output, perm);
    assert.ok(maxAbsDiff(want, b.output) < 1e-4, `${shape}: output permutes`);
    const parts = permutePositions(a.maps.parts, perm);
    assert.ok(maxAbsDiff(parts, b.maps.parts) < 1e-5, `${shape}: parts permute`);
    assert.ok(
      maxAbsDiff(a.maps.channelAffinity, b.maps.channelAffinity) < 1e-5,
      `${shape}: channel affinity invariant`,
    );
    assert.ok(maxAbsDiff(a.maps.relation, b.maps.relation) < 1e-5, `${shape}: relation invariant`);
    // training mode: the BatchNorm statistics are over all positions, so equivariance holds too
    const ta = layer.apply(x, { training: true }) as tf.Tensor;
    const tb = layer.apply(xp, { training: true }) as tf.Tensor;
    const twant = permutePositions(ta, perm);
    assert.ok(maxAbsDiff(twant, tb) < 1e-4, `${shape}: output permutes in training`);
    tf.dispose([x, xp, want, parts, twant, ta, tb, a.output, b.output]);
    tf.dispose([...Object.values(a.maps), ...Object.values(b.maps)]);
    layer.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("iau: permuting the frames of a clip permutes the output, the part relation and the channel affinity", () => {
  const [n, t, h, w, c, k] = [2, 4, 3, 5, 8, 4];
  const x = tf.randomNormal([n, t, h, w, c], 0, 1, "float32", 4);
  const perm = [2, 0, 3, 1];
  const xp = tf.gather(x, perm, 1);
  const layer = new IAU({ zeroInit: false });
  withSeed(12, () => tf.dispose(layer.apply(x) as tf.Tensor));
  const a = layer.attend(x);
  const b = layer.attend(xp);
  const out = tf.gather(a.output, perm, 1);
  assert.ok(maxAbsDiff(out, b.output) < 1e-4, "output frames permute");
  // node t*K + k and channel row c*T + t move with their frame
  const nodePerm = perm.flatMap((p) => [...Array(k).keys()].map((j) => p * k + j));
  const rowPerm = [...Array(c).keys()].flatMap((ch) => perm.map((p) => ch * t + p));
  const rel = tf.gather(tf.gather(a.maps.relation, nodePerm, 1), nodePerm, 2);
  const aff = tf.gather(tf.gather(a.maps.channelAffinity, rowPerm, 1), rowPerm, 2);
  assert.ok(maxAbsDiff(rel, b.maps.relation) < 1e-5, "relation permutes by frame blocks");
  assert.ok(maxAbsDiff(aff, b.maps.channelAffinity) < 1e-5, "channel affinity permutes by frame");
  tf.dispose([x, xp, out, rel, aff, a.output, b.output, ...Object.values(a.maps), ...Object.values(b.maps)]);
  layer.dispose();
});

Deno.test("iau: the interaction mask keeps spatial edges (same frame) and temporal edges (same part)", () => {
  const m = iauMask(2, 3);
  assert.deepEqual(m.arraySync(), [
    [1, 0, 0, 0, 1, 1],
    [0, 1, 0, 1, 0, 1],
    [0, 0, 1, 1, 1, 0],
    [0, 1, 1, 1, 0, 0],
    [1, 0, 1, 0, 1, 0],
    [1, 1, 0, 0, 0, 1],
  ]);
  m.dispose();
  // the relation puts no weight on masked pairs
  const x = tf.randomNormal([2, 2, 5, 3, 8], 0, 1, "float32", 6);
  const layer = new IAU({ zeroInit: false, parts: 3 });
  withSeed(13, () => tf.dispose(layer.apply(x) as tf.Tensor));
  const { output, maps } = layer.attend(x);
  const mask = iauMask(2, 3);
  const masked = tf.sum(tf.mul(maps.relation, mask)).dataSync()[0];
  assert.equal(masked, 0);
  tf.dispose([x, mask, output, ...Object.values(maps)]);
  layer.dispose();
});

Deno.test("iau: a one-frame clip is exactly the image block (same op, same weights)", () => {
  const x = tf.randomNormal([3, 7, 5, 12], 0, 1, "float32", 7);
  const layer = new IAU({ zeroInit: false });
  withSeed(14, () => tf.dispose(layer.apply(x) as tf.Tensor));
  const read = (name: string) => layer.weights.find((v) => v.originalName.endsWith(`/${name}`))!.read();
  const conv = (p: string, bn: boolean) => ({
    kernel: read(`${p}_kernel`),
    bias: read(`${p}_bias`),
    bn: bn
      ? {
        gamma: read(`${p}_bn_gamma`),
        beta: read(`${p}_bn_beta`),
        movingMean: read(`${p}_bn_moving_mean`),
        movingVariance: read(`${p}_bn_moving_variance`),
      }
      : undefined,
  });
  const w: IAUWeights = {
    w1: conv("w1", true),
    sa: conv("sa", true),
    g: conv("g", false),
    relation: conv("relation", true),
    gconv: conv("gconv", true),
    w2: conv("w2", true),
  };
  const image = iau(x, w);
  const clip = iau(tf.expandDims(x, 1), w);
  assert.equal(maxAbsDiff(tf.squeeze(clip.output, [1]), image.output), 0);
  assert.equal(maxAbsDiff(clip.maps.relation, image.maps.relation), 0);
  const direct = layer.attend(x);
  assert.equal(maxAbsDiff(direct.output, image.output), 0);
  tf.dispose([x, image.output, clip.output, direct.output, ...Object.values(image.maps)]);
  tf.dispose([...Object.values(clip.maps), ...Object.values(direct.maps)]);
  layer.dispose();
});

Deno.test("iau: video block: every trainable weight gets a gradient, BatchNorm running statistics move, no leaks", () => {
  const x = tf.randomNormal([3, 3, 5, 7, 12], 0, 1, "float32", 8);
  const target = tf.randomNormal([3, 3, 5, 7, 12], 0, 1, "float32", 9);
  const layer = new IAU({ zeroInit: false });
  withSeed(8, () => tf.dispose(layer.apply(x) as tf.Tensor));
  const before = tf.memory().numTensors;
  const vars = layer.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
  const names = vars.map((v) => v.name.split("/").pop());
  assert.ok(!names.includes("relation_bias"), "the edge bias is frozen");
  const loss = () => tf.losses.meanSquaredError(target, layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
  const meanVar = layer.weights.find((v) => v.originalName.endsWith("/sa_bn_moving_mean"))!;
  const m0 = meanVar.read().clone();
  const { grads, value } = tf.variableGrads(loss, vars);
  for (const v of vars) {
    const norm = tf.tidy(() => tf.sum(tf.abs(grads[v.name])).dataSync()[0]);
    if (v.name.endsWith("/relation_bn_beta")) {
      // the edge scores' BatchNorm shift adds one constant to every score of a row, which the row
      // softmax cancels (as it does the frozen edge bias): its gradient is 0 up to rounding
      assert.ok(norm < 1e-4, `gradient for ${v.name}: ${norm}, expected ~0`);
      continue;
    }
    assert.ok(norm > 0 && Number.isFinite(norm), `gradient for ${v.name}: ${norm}`);
  }
  assert.ok(maxAbsDiff(m0, meanVar.read()) > 0, "running mean updated in training");
  tf.dispose([grads, value, m0]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  tf.dispose([x, target]);
  layer.dispose();
});

Deno.test("iau: state_dict keys and shapes are the reference's IAU (images) and IAUBlock3D (videos)", () => {
  const image = new IAU();
  const video = new IAU();
  const xi = tf.zeros([1, 3, 3, 16]);
  const xv = tf.zeros([1, 2, 3, 3, 16]);
  tf.dispose([image.apply(xi) as tf.Tensor, video.apply(xv) as tf.Tensor]);
  const bn = (
    p: string,
  ) => [`${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`, `${p}.num_batches_tracked`];
  const keys = (sa: string, st: string) =>
    [
      `${sa}.conv.conv.weight`,
      `${sa}.conv.conv.bias`,
      ...bn(`${sa}.conv.bn`),
      "g.weight",
      "g.bias",
      `${st}.module_w.relation.0.weight`,
      `${st}.module_w.relation.0.bias`,
      ...bn(`${st}.module_w.relation.1`),
      `${st}.module_l.fsm.0.weight`,
      `${st}.module_l.fsm.0.bias`,
      ...bn(`${st}.module_l.fsm.1`),
      "W1.0.weight",
      "W1.0.bias",
      ...bn("W1.1"),
      "W2.0.weight",
      "W2.0.bias",
      ...bn("W2.1"),
    ].sort();
  const si = stateDict(image);
  const sv = stateDict(video);
  assert.deepEqual(Object.keys(si).sort(), keys("sa", "SIAU"));
  assert.deepEqual(Object.keys(sv).sort(), keys("SA", "STIAU"));
  assert.deepEqual(si["sa.conv.conv.weight"].shape, [4, 16, 1, 1]);
  assert.deepEqual(sv["SA.conv.conv.weight"].shape, [4, 16, 1, 1, 1]);
  assert.deepEqual(sv["W1.0.weight"].shape, [16, 16, 1, 1, 1]);
  assert.deepEqual(sv["g.weight"].shape, [8, 16, 1, 1]);
  assert.deepEqual(sv["STIAU.module_w.relation.0.weight"].shape, [1, 16, 1, 1]);
  assert.deepEqual(si["W2.0.weight"].shape, [16, 16, 1, 1]);
  // the reference's zero init of the updates' BatchNorm
  assert.equal(tf.tidy(() => tf.sum(tf.abs(si["W1.1.weight"])).dataSync()[0]), 0);
  tf.dispose([xi, xv, ...Object.values(si), ...Object.values(sv)]);
  image.dispose();
  video.dispose();
});

Deno.test("iau: bad configs and inputs get Errors naming the layer", () => {
  assert.throws(() => new IAU({ name: "iau_bad", parts: 0 }), /^Error: iau_bad: expected parts, a positive integer/);
  assert.throws(() => new IAU({ interChannels: 2.5 }), /expected interChannels, a positive integer or null/);
  const one = new IAU({ name: "iau_one" });
  const x1 = tf.zeros([1, 3, 3, 1]);
  assert.throws(() => one.apply(x1), /iau_one: expected at least 2 channels/);
  const flat = new IAU({ name: "iau_flat" });
  const x3 = tf.zeros([2, 9, 16]);
  assert.throws(() => flat.apply(x3), /iau_flat: expected a rank-4 NHWC or rank-5 NTHWC input, got shape \[2,9,16\]/);
  // a video block refuses images
  const video = new IAU({ name: "iau_video" });
  const xv = tf.zeros([1, 2, 3, 3, 8]);
  tf.dispose(video.apply(xv) as tf.Tensor);
  const xi = tf.zeros([1, 3, 3, 8]);
  assert.throws(() => video.apply(xi), /iau_video: expected a rank-5 NTHWC tensor/);
  tf.dispose([x1, x3, xv, xi]);
  video.dispose();
});
