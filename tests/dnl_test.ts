/** DNL (disentangled non-local): what the generated tests and the fixtures do not cover. */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { DisentangledNonLocal } from "../lib/modules/dnl.ts";
import { getAttentionEntry } from "../lib/registry.ts";
import { stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

function count(layer: { trainableWeights: { shape: (number | null)[] }[] }): number {
  return layer.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

Deno.test("dnl: parameter count per variant (the fixture's 2081 for C 32, P 16, released)", () => {
  const c = 32, p = 16;
  const cases: [Record<string, unknown>, number, string[]][] = [
    [{}, 1 + 2 * (c * p + p) + c * c, []],
    [{ unary: "paper" }, 1 + 2 * (c * p + p) + c * c + c + 1, ["conv_mask.weight", "conv_mask.bias"]],
    [{ useOut: true, outBn: true }, 1 + 2 * (c * p + p) + (c * p + p) + p * c + 2 * c, [
      "conv_value.bias",
      "conv_out.weight",
      "out_bn.running_var",
    ]],
  ];
  for (const [config, want, keys] of cases) {
    const layer = new DisentangledNonLocal(config);
    tf.dispose(layer.apply(tf.zeros([1, 4, 3, c])) as tf.Tensor);
    assert.equal(count(layer), want, JSON.stringify(config));
    const sd = stateDict(layer);
    for (const key of keys) assert.ok(key in sd, `${key} in ${JSON.stringify(config)}`);
    tf.dispose(sd);
    layer.dispose();
  }
  assert.equal(1 + 2 * (c * p + p) + c * c, 2081);
});

Deno.test("dnl: with the reference's zero gamma only the unary term acts; with unary none the block is the identity", () => {
  const x = tf.randomNormal([2, 5, 4, 8], 0, 1, "float32", 1);
  const none = new DisentangledNonLocal({ unary: "none" });
  const yNone = none.apply(x) as tf.Tensor;
  assert.equal(maxAbsDiff(yNone, x), 0);
  const released = new DisentangledNonLocal();
  const yRel = released.apply(x) as tf.Tensor;
  assert.ok(maxAbsDiff(yRel, x) > 0);
  // the unary output is the same at every position
  const delta = tf.sub(yRel, x);
  const spread = tf.tidy(() =>
    tf.max(tf.abs(tf.sub(delta, tf.slice(delta, [0, 0, 0, 0], [-1, 1, 1, -1])))).dataSync()[0]
  );
  assert.ok(spread < 1e-5, `unary term constant over positions (${spread})`);
  tf.dispose([x, yNone, yRel, delta]);
  none.dispose();
  released.dispose();
});

Deno.test("dnl: maps: affinity rows sum to 1, sharper at lower temperature; unary over (downsampled) key positions", () => {
  const before = tf.memory().numTensors;
  const x = tf.randomNormal([3, 9, 7, 16], 0, 1, "float32", 2);
  const peaks: number[] = [];
  for (const temperature of [1, 0.05]) {
    const layer = new DisentangledNonLocal({ temperature, downsample: true, zeroInit: false });
    tf.dispose(layer.apply(x) as tf.Tensor);
    const { output, maps } = layer.attend(x);
    assert.deepEqual(output.shape, [3, 9, 7, 16]);
    assert.deepEqual(maps.affinity.shape, [3, 63, 12]);
    assert.deepEqual(maps.unary.shape, [3, 4, 3, 1]);
    const rows = tf.sum(maps.affinity, 2);
    rows.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-4));
    const u = tf.sum(maps.unary, [1, 2, 3]);
    u.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
    peaks.push(tf.tidy(() => tf.mean(tf.max(maps.affinity, 2)).dataSync()[0]));
    tf.dispose([output, rows, u, ...Object.values(maps)]);
    layer.dispose();
  }
  assert.ok(peaks[1] > peaks[0], `lower temperature sharpens: ${peaks}`);
  const none = new DisentangledNonLocal({ unary: "none" });
  tf.dispose(none.apply(x) as tf.Tensor);
  const res = none.attend(x);
  assert.deepEqual(Object.keys(res.maps), ["affinity"]);
  tf.dispose([res.output, ...Object.values(res.maps)]);
  none.dispose();
  x.dispose();
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("dnl: whitening follows the reference's order (channel, then spatial) whatever the list order", () => {
  const x = tf.randomNormal([2, 5, 4, 8], 0, 1, "float32", 3);
  const a = new DisentangledNonLocal({ unary: "none", whitenType: ["channel", "spatial"], zeroInit: false });
  const b = new DisentangledNonLocal({ unary: "none", whitenType: ["spatial", "channel"], zeroInit: false });
  tf.dispose([a.apply(x) as tf.Tensor, b.apply(x) as tf.Tensor]);
  b.setWeights(a.getWeights());
  const ya = a.apply(x) as tf.Tensor;
  const yb = b.apply(x) as tf.Tensor;
  assert.equal(maxAbsDiff(ya, yb), 0);
  tf.dispose([x, ya, yb]);
  a.dispose();
  b.dispose();
});

Deno.test("dnl: configs that cannot work are refused with the layer's name", () => {
  assert.throws(
    () => new DisentangledNonLocal({ name: "d", temperature: 0 }),
    /d: expected a positive temperature, got 0/,
  );
  assert.throws(
    () => new DisentangledNonLocal({ name: "d", unary: "both" as "paper" }),
    /d: expected unary "released", "paper" or "none"/,
  );
  assert.throws(
    () => new DisentangledNonLocal({ name: "d", unary: "none", whitenType: ["bn" as "channel"] }),
    /d: expected whitenType, a list of "channel"\/"spatial"/,
  );
  assert.throws(
    () => new DisentangledNonLocal({ name: "d", whitenType: ["channel", "spatial"] }),
    /d: the released unary term needs whitenType \["channel"\]/,
  );
  assert.throws(() => new DisentangledNonLocal({ name: "d", whitenType: [] }), /released unary term needs/);
  const down = new DisentangledNonLocal({ name: "d2", downsample: true });
  tf.dispose(down.apply(tf.zeros([1, 4, 4, 8])) as tf.Tensor);
  assert.throws(
    () => down.apply(tf.zeros([1, 1, 4, 8])),
    /d2: expected spatial dims of at least 2 with downsample, got shape \[1,1,4,8\]/,
  );
  const toConfig = getAttentionEntry("dnl").fixtures!.dnl;
  assert.throws(
    () => toConfig({ inplanes: 8, planes: 4, with_unary: true, with_gc: true }),
    /with_unary and with_gc together/,
  );
  assert.equal(toConfig({ inplanes: 8, planes: 4, with_gc: true }).unary, "paper");
  assert.equal(toConfig({ inplanes: 8, planes: 4 }).unary, "none");
});
