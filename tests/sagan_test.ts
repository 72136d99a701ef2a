/**
 * SAGAN self-attention: parameter counts of the variants, equality with DANet's PAM (same maths),
 * the paper's output projection and the TensorFlow release's pooling on the blocked path, errors.
 */
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { type SAGANConfig, SAGANSelfAttention } from "../lib/modules/sagan.ts";
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

function built(config: Partial<SAGANConfig> & { name?: string }, shape: number[]): SAGANSelfAttention {
  const layer = new SAGANSelfAttention(config);
  tf.dispose(layer.apply(tf.zeros(shape)) as tf.Tensor);
  return layer;
}

function randomise(layer: tfl.layers.Layer & { torchParams(): unknown }, seed: number) {
  const sd = stateDict(layer);
  const fresh = Object.fromEntries(
    Object.entries(sd).map(([k, t], i) => [k, tf.randomNormal(t.shape, 0, 0.4, "float32", seed + i)]),
  );
  loadStateDict(layer, fresh);
  tf.dispose([sd, fresh]);
}

Deno.test("sagan: parameter counts (heykeetae, the paper's h and v, the TF release's C/2)", () => {
  const c = 32;
  const conv = (i: number, o: number) => i * o + o;
  const cases: [Partial<SAGANConfig>, number][] = [
    [{}, 2 * conv(c, 4) + conv(c, c) + 1],
    [{ valueReduction: 8 }, 2 * conv(c, 4) + conv(c, 4) + conv(4, c) + 1],
    [{ valueReduction: 2, subSample: true }, 2 * conv(c, 4) + conv(c, 16) + conv(16, c) + 1],
  ];
  assert.equal(cases[0][1], 1321); // the public fixture's param_count
  for (const [config, want] of cases) {
    const layer = built(config, [1, 4, 4, c]);
    assert.equal(trainableCount(layer), want, JSON.stringify(config));
    layer.dispose();
  }
});

Deno.test("sagan: computes what DANet's PAM computes with the same weights", () => {
  const x = tf.randomNormal([3, 5, 9, 16], 0, 1, "float32", 1);
  const sagan = built({ reduction: 4 }, x.shape);
  const pam = new DANetPositionAttention({ reduction: 4 });
  tf.dispose(pam.apply(x) as tf.Tensor);
  randomise(sagan, 3);
  const sd = stateDict(sagan);
  loadStateDict(pam, sd);
  const a = captureAttention(() => sagan.apply(x) as tf.Tensor);
  const b = captureAttention(() => pam.apply(x) as tf.Tensor);
  assert.equal(maxAbsDiff(a.result, b.result), 0);
  assert.equal(maxAbsDiff(a.maps[sagan.name].affinity, b.maps[pam.name].affinity), 0);
  a.dispose();
  b.dispose();
  tf.dispose([a.result, b.result, sd, x]);
  sagan.dispose();
  pam.dispose();
});

for (
  const config of [
    { valueReduction: 8, blockSize: 5 },
    { valueReduction: 2, subSample: true, blockSize: 4 },
    { subSample: true, blockSize: 64 },
  ] as Partial<SAGANConfig>[]
) {
  Deno.test(`sagan ${JSON.stringify(config)}: blocked == materialised (values, gradients), no leaks`, () => {
    const shape = [3, 9, 7, 32];
    const layer = built(config, shape);
    randomise(layer, 7);
    const x = tf.randomNormal(shape, 0, 1, "float32", 2);
    const before = tf.memory().numTensors;
    const blocked = layer.apply(x) as tf.Tensor;
    const cap = captureAttention(() => layer.apply(x) as tf.Tensor);
    assert.ok(maxAbsDiff(blocked, cap.result) < 1e-5);
    const keys = config.subSample ? 4 * 3 : 63;
    assert.deepEqual(cap.maps[layer.name].affinity.shape, [3, 63, keys]);
    tf.dispose([blocked, cap.result]);
    cap.dispose();
    assert.equal(tf.memory().numTensors, before);
    const vars = layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const loss = () => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar;
    const gb = tf.variableGrads(loss, vars);
    const gm = captureAttention(() => tf.variableGrads(loss, vars));
    const scale = gradScale(gm.result.grads);
    for (const v of vars) {
      assert.ok(maxAbsDiff(gb.grads[v.name], gm.result.grads[v.name]) < 1e-5 * scale, v.name);
    }
    gm.dispose();
    tf.dispose([gb.grads, gb.value, gm.result.grads, gm.result.value]);
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
    layer.dispose();
  });
}

Deno.test("sagan: configs and inputs that cannot work get Errors naming the layer", () => {
  assert.throws(
    () => new SAGANSelfAttention({ name: "sa_v", valueReduction: 0.5 }),
    /sa_v: expected valueReduction >= 1, got 0.5/,
  );
  assert.throws(
    () => new SAGANSelfAttention({ name: "sa_g", gammaInit: Infinity }),
    /sa_g: expected a finite gammaInit/,
  );
  const wide = new SAGANSelfAttention({ name: "sa_w", valueReduction: 64 });
  assert.throws(() => wide.apply(tf.zeros([1, 3, 3, 32])), /sa_w: expected reduction \(64\) at most channels \(32\)/);
  const pooled = built({ name: "sa_p", subSample: true }, [1, 4, 4, 16]);
  assert.throws(
    () => pooled.apply(tf.zeros([1, 5, 1, 16])),
    /sa_p: expected H and W of at least 2 for subSample .* got shape \[1,5,1,16\]/,
  );
  pooled.dispose();
});
