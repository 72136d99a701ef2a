// RA-CNN on cluttered MNIST: the three training phases lower their losses without leaking
// tensors, weights round-trip through safetensors, the crop IoU is right, and the shipped model
// loads, beats chance by far and matches the test errors its meta.json records.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { clutteredMnist, mnistDigits } from "../lib/data/digits.ts";
import { batches, disposeBatch } from "../lib/data/batches.ts";
import {
  boxCoverage,
  evaluateRacnn,
  loadRacnn,
  loadShippedRacnn,
  racnnModel,
  saveRacnn,
  squareIou,
  trainRacnn,
} from "../lib/train/racnn_train.ts";
import { loadShippedModel } from "../lib/train/shipped.ts";

await initBackend({ backend: "wasm", quiet: true });

Deno.test("racnn: squareIou of a square with a box, clipped to the image", () => {
  assert.equal(squareIou(10, 10, 5, { x0: 5, y0: 5, x1: 15, y1: 15 }, 60), 1);
  assert.equal(squareIou(10, 10, 5, { x0: 30, y0: 30, x1: 40, y1: 40 }, 60), 0);
  // square 0..10 x 0..10 clipped from -5..15; box 5..15 x 0..10: overlap 5x10 = 50, union 100 + 100 - 50
  assert.ok(Math.abs(squareIou(5, 5, 10, { x0: 5, y0: 0, x1: 15, y1: 10 }, 10) - 50 / 150) < 1e-12);
  // coverage: the share of the box inside the square (not clipped to the image)
  assert.equal(boxCoverage(10, 10, 5, { x0: 7, y0: 7, x1: 13, y1: 13 }), 1);
  assert.equal(boxCoverage(10, 10, 5, { x0: 10, y0: 5, x1: 20, y1: 15 }), 0.5);
  assert.equal(boxCoverage(10, 10, 5, { x0: 30, y0: 30, x1: 40, y1: 40 }), 0);
});

Deno.test("racnn: the three phases train (losses fall), no tensor leaks, weights round-trip", async () => {
  // plain 28x28 MNIST: a task a few dozen steps can learn
  const ds = mnistDigits(await loadMnist({ split: "train", limit: 2000 }));
  const config = {
    imageSize: 28,
    filters: [16, 32, 64],
    apnHidden: 16,
    zoomSize: 20,
    minHalfSide: 0.25,
    pool: "max" as const,
  };
  const m = racnnModel(config, 2);
  const n0 = tf.memory().numTensors;
  const logs = await trainRacnn(m, ds, {
    scale1Images: 1280,
    apnInitImages: 320,
    alternateImages: 128,
    batchSize: 32,
    learningRate: 5e-3,
    apnLearningRate: 5e-3,
    progress: false,
  });
  assert.equal(tf.memory().numTensors, n0, "trainRacnn leaked tensors");
  assert.deepEqual(logs.map((l) => l.phase), ["scale1", "apnInit", "alternate"]);
  assert.deepEqual(logs.map((l) => l.steps), [40, 10, 4]);
  assert.ok(logs[0].lastLoss < logs[0].firstLoss - 0.05, `scale-1 loss ${logs[0].firstLoss} -> ${logs[0].lastLoss}`);
  assert.ok(logs[1].lastLoss < logs[1].firstLoss, `APN init loss ${logs[1].firstLoss} -> ${logs[1].lastLoss}`);
  assert.ok(Number.isFinite(logs[2].lastLoss) && logs[2].rankLoss! >= 0);

  const dir = await Deno.makeTempDir();
  await saveRacnn(m, dir);
  const again = await loadRacnn(dir, m.config);
  const [b] = batches(ds, { batchSize: 8 });
  const o1 = m.forward(b.xs), o2 = again.forward(b.xs);
  for (const k of ["logits1", "logits2", "box"] as const) {
    assert.deepEqual(Array.from(o1[k].dataSync()), Array.from(o2[k].dataSync()), k);
  }
  tf.dispose([...Object.values(o1), ...Object.values(o2)]);
  await assert.rejects(
    () => loadRacnn(dir, { ...m.config, filters: [16, 32, 32] }),
    /loadRacnn: .*expected cnn1\.4 of shape \[3, 3, 32, 32\], got \[3, 3, 32, 64\]/,
  );
  disposeBatch(b);
  again.dispose();
  m.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("racnn: the shipped model loads, beats chance by far and matches its meta.json", async () => {
  const { model, meta } = await loadShippedRacnn();
  const test = clutteredMnist(await loadMnist({ split: "test" }), {
    size: 60,
    clutter: 4,
    patch: 8,
    seed: 12345,
    count: 300,
  });
  const n0 = tf.memory().numTensors;
  const e = evaluateRacnn(model, test, { batchSize: 150 });
  assert.equal(tf.memory().numTensors, n0, "evaluateRacnn leaked tensors");
  const m = meta.metrics!;
  // 300 of the recorded test images: within a binomial margin of the recorded errors
  for (const [k, v] of [["error1", e.error1], ["error2", e.error2], ["errorFused", e.errorFused]] as const) {
    assert.ok(v < 0.3, `${k} ${v}: chance is 0.9`);
    assert.ok(Math.abs(v - m[k]) < 0.06, `${k} ${v} vs recorded ${m[k]}`);
  }
  assert.ok(Math.abs(e.centreInBox - m.centreInBox) < 0.08, `centre in box ${e.centreInBox} vs ${m.centreInBox}`);
  assert.ok(Math.abs(e.iou - m.iou) < 0.05, `IoU ${e.iou} vs ${m.iou}`);
  assert.ok(e.coverage > 0.9, `share of the digit's box inside the crop ${e.coverage}`);
  await assert.rejects(() => loadShippedModel("racnn_cluttered"), /stored as safetensors/);
  model.dispose();
});
