/** GC (Global Context block): what the generated tests and the fixtures do not cover. */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { GlobalContext } from "../lib/modules/gc.ts";
import { getAttentionEntry } from "../lib/registry.ts";
import { stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

function count(layer: { trainableWeights: { shape: (number | null)[] }[] }): number {
  return layer.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

Deno.test("gc: parameter count follows the paper's formula (mask C+1, each transform 2CP + 3P + C)", () => {
  const x = tf.zeros([1, 5, 3, 64]);
  for (
    const [pooling, fusionTypes] of [["att", ["channelAdd"]], ["avg", ["channelMul"]], ["att", [
      "channelAdd",
      "channelMul",
    ]]] as const
  ) {
    const layer = new GlobalContext({ reduction: 4, pooling, fusionTypes: [...fusionTypes] });
    tf.dispose(layer.apply(x) as tf.Tensor);
    const c = 64, p = 16;
    const want = (pooling === "att" ? c + 1 : 0) + fusionTypes.length * (2 * c * p + 3 * p + c);
    assert.equal(count(layer), want, `${pooling} ${fusionTypes}`);
    layer.dispose();
  }
  // the public fixture's count (C 64, planes 16, att + add)
  assert.equal(65 + 2 * 64 * 16 + 3 * 16 + 64, 2225);
  x.dispose();
});

Deno.test("gc: the reference's zero init makes channel_add the identity and channel_mul a halving", () => {
  const x = tf.randomNormal([2, 7, 5, 16], 0, 1, "float32", 1);
  const add = new GlobalContext({ reduction: 4 });
  const mul = new GlobalContext({ reduction: 4, fusionTypes: ["channelMul"] });
  const ya = add.apply(x) as tf.Tensor;
  const ym = mul.apply(x) as tf.Tensor;
  assert.equal(maxAbsDiff(ya, x), 0);
  const half = tf.mul(x, 0.5);
  assert.ok(maxAbsDiff(ym, half) < 1e-7);
  tf.dispose([x, ya, ym, half]);
  add.dispose();
  mul.dispose();
});

Deno.test("gc: the spatial map is a softmax over positions (uniform for avg); the channel gate is in (0,1)", () => {
  const before = tf.memory().numTensors;
  const x = tf.randomNormal([3, 9, 5, 16], 0, 1, "float32", 2);
  for (const pooling of ["att", "avg"] as const) {
    const layer = new GlobalContext({
      reduction: 4,
      pooling,
      fusionTypes: ["channelMul", "channelAdd"],
      zeroInit: false,
    });
    tf.dispose(layer.apply(x) as tf.Tensor);
    const { output, maps } = layer.attend(x);
    assert.deepEqual(output.shape, [3, 9, 5, 16]);
    assert.deepEqual(maps.spatial.shape, [3, 9, 5, 1]);
    assert.deepEqual(maps.channel.shape, [3, 1, 1, 16]);
    const sums = tf.sum(maps.spatial, [1, 2, 3]);
    sums.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
    if (pooling === "avg") maps.spatial.dataSync().forEach((v) => assert.ok(Math.abs(v - 1 / 45) < 1e-7));
    maps.channel.dataSync().forEach((v) => assert.ok(v > 0 && v < 1));
    tf.dispose([output, sums, ...Object.values(maps)]);
    layer.dispose();
  }
  x.dispose();
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("gc: state_dict keys are the reference's for each option", () => {
  const x = tf.zeros([1, 3, 3, 16]);
  const layer = new GlobalContext({ reduction: 4, pooling: "avg", fusionTypes: ["channelMul"] });
  tf.dispose(layer.apply(x) as tf.Tensor);
  const sd = stateDict(layer);
  assert.deepEqual(Object.keys(sd).sort(), [
    "channel_mul_conv.0.bias",
    "channel_mul_conv.0.weight",
    "channel_mul_conv.1.bias",
    "channel_mul_conv.1.weight",
    "channel_mul_conv.3.bias",
    "channel_mul_conv.3.weight",
  ]);
  assert.deepEqual(sd["channel_mul_conv.1.weight"].shape, [4, 1, 1], "LayerNorm([planes,1,1]) shape");
  tf.dispose([x, sd]);
  layer.dispose();
});

Deno.test("gc: configs that cannot work are refused with the layer's name", () => {
  assert.throws(
    () => new GlobalContext({ name: "g", pooling: "max" as "avg" }),
    /^Error: g: expected pooling "att" or "avg", got "max"/,
  );
  assert.throws(() => new GlobalContext({ name: "g", fusionTypes: [] }), /g: expected fusionTypes, a non-empty list/);
  assert.throws(
    () => new GlobalContext({ name: "g", fusionTypes: ["channel_add" as "channelAdd"] }),
    /expected fusionTypes.*got \["channel_add"\]/,
  );
  assert.throws(() => new GlobalContext({ name: "g", fusionTypes: ["channelAdd", "channelAdd"] }), /distinct/);
  // the reference's snake_case fusion names are translated by the fixture mapping
  const cfg = getAttentionEntry("gc").fixtures!.gc({
    inplanes: 32,
    planes: 8,
    pooling_type: "att",
    fusion_types: ["channel_add", "channel_mul"],
  });
  assert.deepEqual(cfg.fusionTypes, ["channelAdd", "channelMul"]);
  assert.equal(cfg.reduction, 4);
});
