// The shipped models in data/models/ load, predict logits for 60x60 cluttered MNIST with about
// the test error their meta.json records, expose their attention maps, and stay a few MB.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { listShippedModels, loadShippedModel, shippedModelsDir } from "../lib/train/shipped.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { clutteredMnist } from "../lib/data/digits.ts";
import { batches, disposeBatch } from "../lib/data/batches.ts";
import { captureAttention } from "../lib/capture.ts";
import { shippedAttention, shippedAttentionFigure, shippedModelRow } from "../lib/train/shipped_views.ts";

await initBackend({ backend: "wasm", quiet: true });
// the cluttered-MNIST models of the experiment (other shipped models have tests of their own)
const shipped = (await listShippedModels()).filter((m) => m.name.startsWith("cluttered_"));

Deno.test("shipped models: a few MB in total, each with the command that reproduces it", async () => {
  let bytes = 0;
  for (const m of shipped) {
    for (const f of ["model.json", "weights.bin", "meta.json"]) {
      bytes += (await Deno.stat(`${shippedModelsDir()}${m.name}/${f}`)).size;
    }
    assert.equal(m.name, `cluttered_${m.attention ?? "plain"}`);
    assert.match(m.command, new RegExp(`^deno task experiment:cluttered --models ${m.attention ?? "plain"} `));
    assert.ok(m.testError >= 0 && m.testError <= 1);
  }
  assert.ok(bytes < 8 * 1024 * 1024, `${bytes} bytes`);
  await assert.rejects(() => loadShippedModel("no_such_model"), /no shipped model 'no_such_model'/);
});

Deno.test("shipped models: load, predict about their recorded test error, give their maps", async () => {
  const mnist = await loadMnist({ split: "test" });
  const test = clutteredMnist(mnist, { size: 60, clutter: 4, patch: 8, seed: 12345, count: 300 });
  const [batch] = batches(test, { batchSize: 300 });
  for (const m of shipped) {
    const before = tf.memory().numTensors;
    const { model, meta } = await loadShippedModel(m.name);
    const cap = captureAttention(() => model.predict(batch.xs, { batchSize: 300 }) as tf.Tensor);
    assert.deepEqual(cap.result.shape, [300, 10]);
    const pred = tf.tidy(() => tf.argMax(cap.result, -1).dataSync());
    let wrong = 0;
    for (let i = 0; i < 300; i++) if (pred[i] !== batch.labels[i]) wrong++;
    const err = wrong / 300;
    // 300 of the same test images: within a generous binomial margin of the recorded error
    assert.ok(Math.abs(err - meta.testError) < 0.06, `${m.name}: error ${err} vs recorded ${meta.testError}`);
    // the attention layers are named after their stage (s1_att ... s4_att; which stages: the command's --att-stages)
    const depth = /--stages (\S+)/.exec(meta.command)?.[1].split(",").length ?? 0;
    const stages = (/--att-stages ([\d,]+)/.exec(meta.command)?.[1].split(",") ?? []).map(Number)
      // LTPA's global vector comes from the last stage, which gets no attention layer of its own
      .filter((k) => meta.attention !== "ltpa" || k < depth);
    if (meta.attention) {
      assert.deepEqual(Object.keys(cap.maps).sort(), stages.map((k) => `s${k}_att`), `${m.name}: maps captured`);
    }
    for (const layer of Object.keys(meta.localisation).filter((k) => k !== "ink")) {
      assert.ok(cap.maps[layer]?.spatial, `${m.name}: ${layer} has no spatial map`);
    }
    cap.dispose();
    cap.result.dispose();
    model.dispose();
    assert.equal(tf.memory().numTensors, before, `${m.name}: tensors left`);
  }
  disposeBatch(batch);
});

Deno.test("shippedAttention: test images, boxes, predictions and maps of a shipped model, no leaks", async () => {
  const mnist = await loadMnist({ split: "test" });
  const spatialModel = shipped.find((m) => Object.keys(m.localisation).some((k) => k !== "ink"));
  assert.ok(spatialModel, "a shipped model with spatial attention");
  const before = tf.memory().numTensors;
  const view = await shippedAttention(spatialModel.name, { count: 5, start: 3, mnist });
  assert.deepEqual(view.images.shape, [5, 60, 60, 1]);
  const same = clutteredMnist(mnist, { size: 60, clutter: 4, patch: 8, seed: 12345, count: 8 });
  for (let i = 0; i < 5; i++) {
    const s = same.sample(3 + i);
    assert.equal(view.labels[i], s.labels[0], "the test set's images, from `start`");
    assert.deepEqual(view.boxes[i], s.boxes[0]);
  }
  assert.ok(view.predictions.filter((p, i) => p === view.labels[i]).length >= 3, "mostly right");
  const layers = Object.keys(view.spatial);
  assert.deepEqual([...layers].sort(), Object.keys(spatialModel.localisation).filter((k) => k !== "ink").sort());
  for (const t of Object.values(view.spatial)) assert.equal(t.shape[0], 5);
  const fig = shippedAttentionFigure(view);
  assert.equal(fig.data.filter((t) => t.type === "heatmap").length, 5);
  assert.equal((fig.layout.shapes as unknown[]).length, 5, "one box per panel");
  const cells = (k: string) => view.spatial[k].shape[1] * view.spatial[k].shape[2];
  const deepest = layers.filter((k) => cells(k) === Math.min(...layers.map(cells))).at(-1)!;
  assert.match(String((fig.layout.title as { text: string }).text), new RegExp(`: ${deepest} `), "the deepest map");
  assert.throws(() => shippedAttentionFigure(view, { layer: "nope" }), /no spatial map 'nope'/);
  view.dispose();
  assert.equal(tf.memory().numTensors, before);
  const channelOnly = shipped.find((m) => m.attention && Object.keys(m.localisation).every((k) => k === "ink"));
  if (channelOnly) {
    const v = await shippedAttention(channelOnly.name, { count: 2, mnist });
    assert.ok(Object.keys(v.channel).length > 0, `${channelOnly.name} has channel weights`);
    assert.throws(() => shippedAttentionFigure(v), /has no spatial attention map/);
    v.dispose();
  }
  await assert.rejects(() => shippedAttention(spatialModel.name, { count: 0 }), /expected count >= 1/);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("shippedModelRow: the pointing of the deepest map (fewest cells), whatever the keys' order", () => {
  const meta = {
    name: "m",
    attention: "ltpa",
    testError: 0.05,
    params: 10,
    epochs: 2,
    localisation: {
      s3_att: { pointing: 0.9, massInBox: 0.5, mapSize: [15, 15] },
      s2_att: { pointing: 0.8, massInBox: 0.4, mapSize: [30, 30] },
    },
  } as unknown as Parameters<typeof shippedModelRow>[0];
  assert.equal(shippedModelRow(meta)["pointing % (deepest map)"], 90);
  assert.equal(shippedModelRow({ ...meta, localisation: {} })["pointing % (deepest map)"], "-");
});
