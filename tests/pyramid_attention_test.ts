/**
 * Interaction-aware pyramid attention: properties the generated tests and the fixtures do not cover
 * (video variants, normalisation, the neutral point at zero scores, permutation invariance where the
 * pyramid is position-agnostic, the PCA-inspired loss).
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import {
  PyramidAttention,
  pyramidAttention,
  pyramidAttentionLoss,
  pyramidLevels,
} from "../lib/modules/pyramid_attention.ts";
import { captureAttention } from "../lib/capture.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff, permutePositions, shuffled } from "./support/tensors.ts";

await initBackend({ quiet: true });

const OPTS = { pooling: "avg", fusion: "sum", features: "concat", temporal: "fuse" } as const;

Deno.test("pyramid_attention: shapes for images and videos (fuse, joint), features concat or last", () => {
  const before = tf.memory().numTensors;
  const cases: [number[][], Record<string, unknown>, number[], number[]][] = [
    [[[3, 13, 11, 6], [3, 9, 7, 8], [3, 5, 3, 12]], { maps: 3 }, [3, 3, 26], [3, 5, 3, 3]],
    [[[3, 13, 11, 6], [3, 5, 3, 12]], { maps: 2, features: "last" }, [3, 2, 12], [3, 5, 3, 2]],
    [[[3, 4, 10, 6, 8], [3, 4, 5, 3, 12]], { maps: 2 }, [3, 2, 20], [3, 5, 3, 2]],
    [[[3, 4, 10, 6, 8], [3, 4, 5, 3, 12]], { maps: 2, temporal: "joint" }, [3, 2, 20], [3, 4, 5, 3, 2]],
  ];
  for (const [shapes, config, out, map] of cases) {
    const xs = shapes.map((s, i) => tf.randomNormal(s, 0, 1, "float32", i + 1));
    const layer = new PyramidAttention(config);
    tf.dispose(layer.apply(xs) as tf.Tensor);
    const { output, maps } = layer.attend(xs);
    assert.deepEqual(output.shape, out);
    assert.deepEqual(layer.computeOutputShape(shapes), out);
    assert.deepEqual(maps.attention.shape, map);
    assert.deepEqual(maps.scores.shape, map);
    // a softmax over the positions (over all frames' positions for "joint"), per map
    const axes = map.length === 5 ? [1, 2, 3] : [1, 2];
    const sums = tf.sum(maps.attention, axes);
    sums.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
    tf.dispose([...xs, sums, output, ...Object.values(maps)]);
    layer.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("pyramid_attention: zero score kernels give a uniform attention and the mean of the pooled features", () => {
  const before = tf.memory().numTensors;
  for (const shapes of [[[3, 14, 10, 6], [3, 7, 5, 8]], [[3, 3, 14, 10, 6], [3, 3, 7, 5, 8]]]) {
    const xs = shapes.map((s, i) => tf.randomNormal(s, 0, 1, "float32", i + 7));
    const kernels = [tf.zeros([6, 2]), tf.zeros([8, 2])];
    for (const temporal of ["fuse", "joint"] as const) {
      const r = pyramidAttention(xs, kernels, { ...OPTS, temporal });
      const { pooled, n } = pyramidLevels(xs, "avg");
      const want = tf.tidy(() => tf.tile(tf.mean(tf.reshape(tf.concat(pooled, 3), [n, 1, -1, 14]), 2), [1, 2, 1]));
      assert.ok(maxAbsDiff(r.output, want) < 1e-5, `${shapes.length} ${temporal}`);
      const k = r.maps.attention.size / (n * 2);
      r.maps.attention.dataSync().forEach((v) => assert.ok(Math.abs(v - 1 / k) < 1e-7));
      tf.dispose([r.output, ...Object.values(r.maps), ...pooled, want]);
    }
    tf.dispose([...xs, ...kernels]);
  }
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("pyramid_attention: position-agnostic where R is the identity: positions permute the maps, not the output", () => {
  // equivariance needs every level at the last one's size (pooling from a larger map mixes positions)
  const before = tf.memory().numTensors;
  for (
    const [shapes, config] of [
      [[[3, 7, 5, 6], [3, 7, 5, 8]], { maps: 2 }],
      [[[3, 7, 5, 6], [3, 7, 5, 8]], { maps: 3, pooling: "max", fusion: "max", features: "last" }],
      [[[3, 2, 7, 5, 6], [3, 2, 7, 5, 8]], { maps: 2 }],
      [[[3, 2, 7, 5, 6], [3, 2, 7, 5, 8]], { maps: 2, temporal: "joint" }],
    ] as [number[][], Record<string, unknown>][]
  ) {
    const xs = shapes.map((s, i) => tf.randomNormal(s, 0, 1, "float32", i + 11));
    const perm = shuffled(35, 9);
    const xp = xs.map((x) => permutePositions(x, perm));
    const layer = new PyramidAttention(config);
    tf.dispose(layer.apply(xs) as tf.Tensor);
    const a = layer.attend(xs);
    const b = layer.attend(xp);
    assert.ok(maxAbsDiff(a.output, b.output) < 1e-5, `${JSON.stringify(config)}: output invariant`);
    for (const m of ["attention", "scores"]) {
      const want = permutePositions(a.maps[m], perm);
      assert.ok(maxAbsDiff(want, b.maps[m]) < 1e-5, `${JSON.stringify(config)}: ${m} permutes`);
      want.dispose();
    }
    if (shapes[0].length === 5) {
      // the frames: the output is invariant to their order; a joint attention permutes with them
      const fp = [1, 0];
      const xf = xs.map((x) => tf.gather(x, fp, 1));
      const f = layer.attend(xf);
      assert.ok(maxAbsDiff(a.output, f.output) < 1e-5, "frame order invariant");
      if (config.temporal === "joint") {
        const want = tf.gather(a.maps.attention, fp, 1);
        assert.ok(maxAbsDiff(want, f.maps.attention) < 1e-6, "joint attention permutes with the frames");
        want.dispose();
      }
      tf.dispose([...xf, f.output, ...Object.values(f.maps)]);
    }
    tf.dispose([...xs, ...xp, a.output, b.output, ...Object.values(a.maps), ...Object.values(b.maps)]);
    layer.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("pyramid_attention: the PCA-inspired loss: interaction by hand, orthogonality 0 for disjoint maps, 1 for equal ones", () => {
  const before = tf.memory().numTensors;
  // one sample, 3 positions, features with known cosines: x0 = x1 (cos 1), x2 orthogonal to both
  const x = tf.tensor3d([[[2, 0], [1, 0], [0, 3]]]);
  const a = tf.tensor3d([[[0.5, 1], [0.25, 0], [0.25, 0]]]); // map 0 spread, map 1 one-hot
  const r = pyramidAttentionLoss(a, x, 0.5);
  // map 0: sum_{k != j} a_k a_j cos = 2 * (0.5 * 0.25 * 1) = 0.25; map 1: 0; mean over maps 0.125
  assert.ok(Math.abs(r.interaction.dataSync()[0] - 0.125) < 1e-6);
  // normalised maps: m0 = (0.5,.25,.25)/|.|, m1 = e0: cos = 0.5 / sqrt(0.375); squared ~ 0.6667, twice / (2*1)
  const cos2 = 0.25 / 0.375;
  assert.ok(Math.abs(r.orthogonality.dataSync()[0] - cos2) < 1e-6);
  assert.ok(Math.abs(r.loss.dataSync()[0] - (-0.125 + 0.5 * cos2)) < 1e-6);
  const orthogonality = (maps: number[][]) =>
    tf.tidy(() => pyramidAttentionLoss(tf.tensor3d([maps]), x).orthogonality.dataSync()[0]);
  assert.equal(orthogonality([[1, 0], [0, 1], [0, 0]]), 0);
  assert.ok(Math.abs(orthogonality([[0.2, 0.2], [0.3, 0.3], [0.5, 0.5]]) - 1) < 1e-6);
  assert.equal(orthogonality([[0.2], [0.3], [0.5]]), 0);
  tf.dispose([x, a, r.loss, r.interaction, r.orthogonality]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  assert.throws(
    () => tf.tidy(() => void pyramidAttentionLoss(tf.zeros([1, 4, 2]), tf.zeros([1, 3, 2]))),
    /over the same positions/,
  );
});

Deno.test("pyramid_attention: the loss trains the score kernels through captured maps", () => {
  const xs = [tf.randomNormal([2, 10, 6, 4], 0, 1, "float32", 21), tf.randomNormal([2, 5, 3, 8], 0, 1, "float32", 22)];
  const layer = new PyramidAttention({ maps: 2 });
  tf.dispose(layer.apply(xs) as tf.Tensor);
  const vars = layer.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
  const before = tf.memory().numTensors;
  let cap: ReturnType<typeof captureAttention<tf.Tensor>> | undefined;
  const { grads, value } = tf.variableGrads(() => {
    cap = captureAttention(() => layer.apply(xs, { training: true }) as tf.Tensor);
    const { pooled } = pyramidLevels(xs, "avg");
    return pyramidAttentionLoss(cap.maps[layer.name].attention, tf.concat(pooled, 3)).loss;
  }, vars);
  for (const v of vars) {
    const norm = tf.tidy(() => tf.sum(tf.abs(grads[v.name])).dataSync()[0]);
    assert.ok(norm > 0 && Number.isFinite(norm), `gradient for ${v.name}`);
  }
  cap!.dispose();
  tf.dispose(cap!.result);
  tf.dispose([grads, value]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  tf.dispose(xs);
  layer.dispose();
});

Deno.test("pyramid_attention: errors name the layer: pyramid size, batch, frames, rank, options", () => {
  const layer = new PyramidAttention({ name: "pyr" });
  const a = tf.zeros([2, 10, 6, 4]);
  const b = tf.zeros([2, 5, 3, 8]);
  tf.dispose(layer.apply([a, b]) as tf.Tensor);
  const before = tf.memory().numTensors;
  assert.throws(() => layer.apply([a]), /^Error: pyr: expected 2 feature maps \(the pyramid it was built for\), got 1/);
  const otherBatch = tf.zeros([3, 5, 3, 8]);
  const otherC = tf.zeros([2, 5, 3, 6]);
  for (const bad of [otherBatch, otherC]) {
    assert.throws(() => layer.apply([a, bad]), /pyr: expected feature map 1 as a non-empty float32 rank-4 tensor/);
  }
  assert.equal(tf.memory().numTensors - 2, before, "tensors leaked on errors");
  const video = new PyramidAttention({ name: "pyr_video" });
  const v1 = tf.zeros([2, 3, 6, 4, 4]);
  const v2 = tf.zeros([2, 2, 3, 2, 8]);
  assert.throws(() => video.apply([v1, v2]), /pyr_video: expected feature map 1 as .* with batch 2, 3 frames/);
  const kernels = [tf.zeros([4, 1]), tf.zeros([8, 1])];
  assert.throws(
    () => pyramidAttention([v1, v2], kernels, OPTS),
    /expected every feature map with batch 2 and 2 frames/,
  );
  tf.dispose(kernels);
  const mixed = new PyramidAttention({ name: "pyr_mixed" });
  assert.throws(() => mixed.apply([v1, b]), /pyr_mixed: expected feature maps of one rank/);
  assert.throws(() => new PyramidAttention({ maps: 0 }), /expected maps, a positive integer/);
  assert.throws(() => new PyramidAttention({ fusion: "concat" as "sum" }), /expected fusion "sum" or "max"/);
  assert.throws(() => new PyramidAttention({ temporal: "lstm" as "fuse" }), /expected temporal "fuse" or "joint"/);
  tf.dispose([a, b, otherBatch, otherC, v1, v2]);
  layer.dispose();
});
