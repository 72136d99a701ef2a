/**
 * DANet PAM and CAM: parameter counts, gamma initialisation, the released vs paper energy of CAM,
 * PAM's blocked path against the materialised one, properties of the maps, config errors, leaks.
 */
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { DANetChannelAttention, danetChannelAttention } from "../lib/modules/danet_cam.ts";
import { DANetPositionAttention } from "../lib/modules/danet_pam.ts";
import { captureAttention } from "../lib/capture.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

/**
 * The largest gradient entry (at least 1): float32 agreement is checked against it, since a gradient
 * that is zero in exact arithmetic (the key bias: softmax ignores a per-row constant) is the
 * cancellation of terms of that size.
 */
function gradScale(grads: Record<string, tf.Tensor>): number {
  return Math.max(1, ...Object.values(grads).map((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])));
}

function trainableCount(layer: tfl.layers.Layer): number {
  return layer.trainableWeights.reduce((n, w) => n + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
}

Deno.test("danet_pam: parameters 2 (C C/r + C/r) + C^2 + C + 1; danet_cam: gamma only", () => {
  for (const [c, r] of [[64, 8], [32, 8], [48, 4]]) {
    const pam = new DANetPositionAttention({ reduction: r });
    tf.dispose(pam.apply(tf.zeros([1, 3, 3, c])) as tf.Tensor);
    const cq = Math.floor(c / r);
    assert.equal(trainableCount(pam), 2 * (c * cq + cq) + c * c + c + 1);
    pam.dispose();
  }
  assert.equal(2 * (64 * 8 + 8) + 64 * 64 + 64 + 1, 5201); // the public fixture's param_count
  const cam = new DANetChannelAttention();
  tf.dispose(cam.apply(tf.zeros([1, 3, 3, 16])) as tf.Tensor);
  assert.equal(trainableCount(cam), 1);
  cam.dispose();
});

Deno.test("danet: gamma starts at 0 (identity) as the reference, gammaInit moves it", () => {
  const x = tf.randomNormal([2, 5, 7, 16], 0, 1, "float32", 1);
  for (
    const make of [
      (g?: number) => new DANetPositionAttention({ gammaInit: g }),
      (g?: number) => new DANetChannelAttention({ gammaInit: g }),
    ]
  ) {
    const zero = make();
    const y0 = zero.apply(x) as tf.Tensor;
    assert.equal(maxAbsDiff(y0, x), 0);
    const moved = make(0.7);
    const y1 = moved.apply(x) as tf.Tensor;
    assert.ok(maxAbsDiff(y1, x) > 1e-3);
    assert.equal(stateDict(moved).gamma.dataSync()[0], Math.fround(0.7));
    tf.dispose([y0, y1]);
    zero.dispose();
    moved.dispose();
  }
  x.dispose();
});

Deno.test("danet_cam: released energy is softmax(-E), the paper's softmax(E); both leak-free", () => {
  const x = tf.randomNormal([3, 3, 2, 8], 0, 1, "float32", 2) as tf.Tensor4D;
  const gamma = tf.tensor1d([0.5]);
  const before = tf.memory().numTensors;
  const released = danetChannelAttention(x, gamma);
  const paper = danetChannelAttention(x, gamma, { energy: "paper" });
  const [rel, pap] = [released.maps.channel_affinity, paper.maps.channel_affinity];
  assert.deepEqual(rel.shape, [3, 8, 8]);
  tf.tidy(() => {
    const a = tf.reshape(x, [3, 6, 8]);
    const e = tf.matMul(a, a, true, false);
    assert.ok(maxAbsDiff(rel, tf.softmax(tf.neg(e))) < 1e-6);
    assert.ok(maxAbsDiff(pap, tf.softmax(e)) < 1e-6);
    // out = gamma * X A + x, with X the map
    const want = tf.add(tf.mul(0.5, tf.reshape(tf.matMul(a, pap, false, true), x.shape)), x);
    assert.ok(maxAbsDiff(paper.output, want) < 1e-5);
  });
  tf.dispose([released.output, rel, paper.output, pap]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, gamma]);
});

Deno.test("danet_pam: blocked path (no capture) == materialised (capture), values and gradients", () => {
  const pam = new DANetPositionAttention({ reduction: 4, gammaInit: 0.8, blockSize: 6 });
  const x = tf.randomNormal([3, 7, 5, 16], 0, 1, "float32", 3);
  tf.dispose(pam.apply(x) as tf.Tensor);
  const sd = stateDict(pam);
  const fresh = Object.fromEntries(
    Object.entries(sd).map(([k, t], i) => [k, tf.randomNormal(t.shape, 0, 0.4, "float32", 10 + i)]),
  );
  loadStateDict(pam, fresh);
  tf.dispose([sd, fresh]);
  const before = tf.memory().numTensors;
  const blocked = pam.apply(x) as tf.Tensor;
  const cap = captureAttention(() => pam.apply(x) as tf.Tensor);
  assert.ok(maxAbsDiff(blocked, cap.result) < 1e-5);
  const map = cap.maps[pam.name].affinity;
  assert.deepEqual(map.shape, [3, 35, 35]);
  tf.tidy(() => assert.ok(maxAbsDiff(tf.sum(map, -1), tf.onesLike(tf.sum(map, -1))) < 1e-5));
  tf.dispose([blocked, cap.result]);
  cap.dispose();
  assert.equal(tf.memory().numTensors, before);

  const vars = pam.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const loss = () => tf.sum(tf.square(pam.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar;
  const gb = tf.variableGrads(loss, vars);
  const gm = captureAttention(() => tf.variableGrads(loss, vars));
  const scale = gradScale(gm.result.grads);
  for (const v of vars) {
    assert.ok(maxAbsDiff(gb.grads[v.name], gm.result.grads[v.name]) < 1e-5 * scale, v.name);
  }
  gm.dispose();
  tf.dispose([gb.grads, gb.value, gm.result.grads, gm.result.value, x]);
  assert.equal(tf.memory().numTensors, before - 1);
  pam.dispose();
});

Deno.test("danet: configs that cannot work get Errors naming the layer", () => {
  assert.throws(
    () => new DANetChannelAttention({ name: "cam_x", energy: "softmin" as "paper" }),
    /^Error: cam_x: expected energy "released" or "paper", got "softmin"/,
  );
  assert.throws(
    () => new DANetChannelAttention({ name: "cam_y", gammaInit: NaN }),
    /cam_y: expected a finite gammaInit, got NaN/,
  );
  assert.throws(
    () => new DANetPositionAttention({ name: "pam_z", blockSize: -1 }),
    /pam_z: expected a positive integer blockSize, got -1/,
  );
  const pam = new DANetPositionAttention({ name: "pam_r" });
  assert.throws(() => pam.apply(tf.zeros([1, 3, 3, 4])), /pam_r: expected reduction \(8\) at most channels \(4\)/);
});
