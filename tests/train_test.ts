// The training loop on a tiny synthetic task: the loss falls, callbacks fire, early stopping
// triggers and restores the best weights, a checkpoint resumes to exactly the weights of an
// uninterrupted run, no tensors leak. And the attention CNN builder.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { initBackend } from "../lib/runtime/backend.ts";
import { hashSeed, permutation, Rng, withSeededRandom } from "../lib/data/rng.ts";
import { cosineSchedule, readCheckpointState, train, type TrainBatch, type TrainData } from "../lib/train/train.ts";
import { attentionCnn, attentionPlug } from "../lib/train/cnn.ts";
import { attentionEntries } from "../lib/registry.ts";
import { captureAttention } from "../lib/capture.ts";
import { fileIO } from "../lib/interop/file_io.ts";

await initBackend({ backend: "wasm", quiet: true });

/** 8x8 images with one bright quadrant (the class, 0..3) and noise. */
function quadrants(n: number, seed: number) {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(4);
    y[i] = c;
    for (let p = 0; p < 64; p++) {
      const r = p >> 3, col = p & 7;
      const q = (r < 4 ? 0 : 2) + (col < 4 ? 0 : 1);
      x[i * 64 + p] = (q === c ? 0.8 : 0) + 0.3 * rng.next();
    }
  }
  return { x, y, n };
}

function data(set: ReturnType<typeof quadrants>, batchSize: number, seed: number): TrainData {
  const make = (idx: ArrayLike<number>): TrainBatch => {
    const xs = new Float32Array(idx.length * 64);
    const labels = new Int32Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      xs.set(set.x.subarray(idx[k] * 64, idx[k] * 64 + 64), k * 64);
      labels[k] = set.y[idx[k]];
    }
    return {
      xs: tf.tensor4d(xs, [idx.length, 8, 8, 1]),
      ys: tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, "int32"), 4), "float32")),
    };
  };
  return {
    *train(epoch) {
      const order = permutation(set.n, hashSeed(seed, epoch));
      for (let b = 0; b + batchSize <= set.n; b += batchSize) yield make(order.subarray(b, b + batchSize));
    },
    trainBatches: Math.floor(set.n / batchSize),
  };
}

function tinyModel(seed: number, dropout = 0): tfl.LayersModel {
  return withSeededRandom(seed, () => {
    const layers: tfl.layers.Layer[] = [
      tfl.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, padding: "same", activation: "relu" }),
      tfl.layers.flatten(),
    ];
    if (dropout) layers.push(tfl.layers.dropout({ rate: dropout }));
    layers.push(tfl.layers.dense({ units: 4 }));
    return tfl.sequential({ layers });
  });
}

function weightsOf(model: tfl.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

const set = quadrants(256, 1);
const valSet = quadrants(64, 2);

Deno.test("train: the loss falls, callbacks fire, nothing leaks", async () => {
  const model = tinyModel(1);
  const before = tf.memory().numTensors;
  const batchLogs: number[] = [];
  const epochLogs: number[] = [];
  const d = data(set, 32, 1);
  const val = data(valSet, 32, 9);
  const result = await train(model, { ...d, validation: () => val.train(0) }, {
    epochs: 4,
    learningRate: 1e-2,
    progress: false,
    onBatchEnd: (l) => void batchLogs.push(l.loss),
    onEpochEnd: (l) => void epochLogs.push(l.epoch),
  });
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
  assert.equal(batchLogs.length, 4 * 8);
  assert.deepEqual(epochLogs, [0, 1, 2, 3]);
  const h = result.history;
  assert.equal(h.length, 4);
  assert.ok(h[3].loss < 0.5 * h[0].loss, `loss ${h[0].loss} -> ${h[3].loss}`);
  assert.ok(h[3].acc > 0.9 && h[3].valAcc! > 0.9, `acc ${h[3].acc}, val ${h[3].valAcc}`);
  assert.equal(result.stoppedEarly, false);
  model.dispose();
});

Deno.test("train: early stopping stops after `patience` epochs without improvement", async () => {
  const model = tinyModel(2);
  const result = await train(model, data(set, 32, 1), {
    epochs: 20,
    learningRate: 0, // nothing improves (but the order of the sums: minDelta)
    earlyStopping: { monitor: "loss", patience: 2, minDelta: 1e-6 },
    progress: false,
  });
  assert.equal(result.stoppedEarly, true);
  assert.equal(result.history.length, 3);
  assert.equal(result.bestEpoch, 0);
  await assert.rejects(
    () => train(model, data(set, 32, 1), { epochs: 1, earlyStopping: { monitor: "valAcc" }, progress: false }),
    /monitors valAcc but there is no validation data/,
  );
  model.dispose();
});

Deno.test("train: early stopping restores the best epoch's weights", async () => {
  const model = tinyModel(3);
  const d = data(set, 32, 1);
  let calls = 0;
  const snapshots: number[][][] = [];
  const val = data(valSet, 64, 9);
  const result = await train(model, {
    ...d,
    // epoch 0 sees the true labels, later epochs shuffled ones: epoch 0 stays the best
    validation: () => {
      const shuffle = calls++ > 0;
      return [...val.train(0)].map((b) => {
        if (!shuffle) return b;
        const ys = tf.tidy(() => tf.reverse(b.ys, 1));
        b.ys.dispose();
        return { xs: b.xs, ys };
      });
    },
  }, {
    epochs: 10,
    learningRate: 1e-2,
    earlyStopping: { monitor: "valLoss", patience: 2 },
    progress: false,
    onEpochEnd: () => void snapshots.push(weightsOf(model)),
  });
  assert.equal(result.bestEpoch, 0);
  assert.equal(result.history.length, 3);
  assert.deepEqual(weightsOf(model), snapshots[0]);
  assert.notDeepEqual(snapshots[2], snapshots[0]);
  model.dispose();
});

Deno.test("train: checkpoint + resume gives the same weights as an uninterrupted run (dropout, Adam)", async () => {
  const root = await Deno.makeTempDir();
  try {
    const lr = cosineSchedule(1e-2, 4, { warmup: 0.5 });
    const opts = { learningRate: lr, seed: 7, progress: false as const };
    const full = tinyModel(5, 0.3);
    const a = await train(full, data(set, 32, 1), { ...opts, epochs: 4, checkpointDir: `${root}/a` });
    assert.equal(a.resumedFrom, 0);

    const first = tinyModel(5, 0.3);
    await train(first, data(set, 32, 1), { ...opts, epochs: 2, checkpointDir: `${root}/b` });
    const state = await readCheckpointState(`${root}/b/last`);
    assert.equal(state?.epochsDone, 2);
    assert.equal(state?.steps, 16);
    first.dispose();

    const resumed = tinyModel(99, 0.3); // other initial weights: the checkpoint replaces them
    const r = await train(resumed, data(set, 32, 1), { ...opts, epochs: 4, checkpointDir: `${root}/b`, resume: true });
    assert.equal(r.resumedFrom, 2);
    assert.equal(r.history.length, 4);
    assert.deepEqual(weightsOf(resumed), weightsOf(full), "resumed weights differ from the uninterrupted run");
    assert.deepEqual(r.history.map((h) => h.loss), a.history.map((h) => h.loss));

    // the checkpoint is a loadable model
    const loaded = await tfl.loadLayersModel(fileIO(`${root}/b/last`));
    assert.deepEqual(weightsOf(loaded), weightsOf(full));
    // resuming a finished run trains nothing more
    const again = await train(loaded, data(set, 32, 1), {
      ...opts,
      epochs: 4,
      checkpointDir: `${root}/b`,
      resume: true,
    });
    assert.equal(again.resumedFrom, 4);
    assert.deepEqual(weightsOf(loaded), weightsOf(full));
    full.dispose();
    resumed.dispose();
    loaded.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: same seed, same run; maxSteps stops early; SGD schedule", async () => {
  const run = async (seed: number) => {
    const m = tinyModel(4, 0.5);
    await train(m, data(set, 32, 1), { epochs: 1, seed, learningRate: 5e-3, progress: false, maxSteps: 5 });
    const w = weightsOf(m);
    m.dispose();
    return w;
  };
  const w1 = await run(1);
  assert.deepEqual(await run(1), w1);
  assert.notDeepEqual(await run(2), w1, "another seed drops other units");
  const m = tinyModel(4);
  const r = await train(m, data(set, 32, 1), {
    epochs: 3,
    optimizer: "sgd",
    learningRate: cosineSchedule(0.1, 3),
    progress: false,
  });
  assert.ok(r.history[2].loss < r.history[0].loss);
  assert.ok(r.history[2].lr < r.history[0].lr);
  m.dispose();
});

Deno.test("train: the terminal progress bar runs", async () => {
  const m = tinyModel(4);
  await train(m, data(set, 64, 1), { epochs: 1, progress: true });
  m.dispose();
});

Deno.test("attentionCnn: plain and every single-input mechanism, maps per stage, seeded, saves", async () => {
  // 16 and 32 channels: FcaNet's default top16 needs channels that are a multiple of 16
  const stages = [{ filters: 16, kernelSize: 3, strides: 2 }, { filters: 32, pool: false }];
  const names = ["plain", ...attentionEntries().filter((e) => attentionPlug(e.name) === "stage").map((e) => e.name)];
  const x = tf.randomUniform([2, 24, 20, 1], 0, 1, "float32", 1);
  for (const name of names) {
    const attention = name === "plain" ? null : name;
    const cfg = { inputShape: [24, 20, 1] as [number, number, number], stages, attention, seed: 3 };
    // each mechanism's example config (sized for small feature maps: SK's groups, RGA's ratios), with the
    // spatial size left to the input (RGA's inSpatial) and RGA's ratios small enough for 16 channels
    const example = attentionEntries().find((e) => e.name === name)?.example?.config ?? {};
    const attentionConfig = {
      reduction: 4,
      ...example,
      ...("inSpatial" in example ? { inSpatial: null } : {}),
      ...(name === "rga" ? { chaRatio: 2, spaRatio: 2, downRatio: 2 } : {}),
    };
    const model = attentionCnn({ ...cfg, attentionConfig });
    const cap = captureAttention(() => model.predict(x) as tf.Tensor);
    assert.deepEqual(cap.result.shape, [2, 10], name);
    if (attention) {
      assert.deepEqual(Object.keys(cap.maps).sort(), ["s1_att", "s2_att"], name);
      if (cap.maps.s1_att.spatial) assert.deepEqual(cap.maps.s1_att.spatial.shape, [2, 12, 10, 1]);
    }
    const same = attentionCnn({ ...cfg, attentionConfig });
    assert.deepEqual(weightsOf(same), weightsOf(model), `${name}: same seed, same weights`);
    const dir = await Deno.makeTempDir();
    await model.save(fileIO(dir));
    const loaded = await tfl.loadLayersModel(fileIO(dir));
    const y = loaded.predict(x) as tf.Tensor;
    // against an uncaptured predict: a capture may take the materialised path (DNL), equal only within 1e-5
    const plainY = model.predict(x) as tf.Tensor;
    assert.deepEqual([...y.dataSync()], [...plainY.dataSync()], `${name}: loads with the same predictions`);
    plainY.dispose();
    await Deno.remove(dir, { recursive: true });
    cap.dispose();
    tf.dispose([cap.result, y]);
    model.dispose();
    same.dispose();
    loaded.dispose();
  }
  const other = attentionCnn({ inputShape: [24, 20, 1], stages, seed: 4 });
  const plain = attentionCnn({ inputShape: [24, 20, 1], stages, seed: 3 });
  assert.notDeepEqual(weightsOf(other), weightsOf(plain));
  assert.equal(attentionPlug("no_such_thing"), "not registered");
  assert.throws(() => attentionCnn({ attention: "no_such_thing" }), /'no_such_thing' is not registered/);
  assert.throws(() => attentionCnn({ attention: "se", attentionStages: [5] }), /stages are 1..4/);
  tf.dispose([x]);
  other.dispose();
  plain.dispose();
});
