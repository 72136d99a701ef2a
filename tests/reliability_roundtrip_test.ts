/**
 * Round trips, generated from the registry: every mechanism (and every backbone, when this build
 * has `listModels()`) in a functional model saves to disk and loads back with identical weights,
 * config and predictions; and exports a PyTorch-named state_dict that, written to safetensors and
 * read back, loads into a freshly initialised layer giving every weight (running statistics too)
 * and the predictions back exactly. Strict loading names what is wrong.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { attentionEntries } from "../lib/registry.ts";
import { fileIO } from "../lib/interop/file_io.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { readSafetensors, writeSafetensors } from "../lib/interop/safetensors.ts";
import { toTensor } from "../lib/interop/raw_tensor.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { backbones, create, feed, modelInputShapes, randomInputs, shapesOf, Tally } from "./_reliability.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

const tally = new Tally("round-trip");

/** Every weight of two layers or models, by position: identical shapes and values. */
function assertSameWeights(a: tfl.layers.Layer | tfl.LayersModel, b: tfl.layers.Layer | tfl.LayersModel): void {
  const wa = a.getWeights(), wb = b.getWeights();
  assert.equal(wb.length, wa.length, "weight count");
  wa.forEach((t, i) => {
    assert.deepEqual(wb[i].shape, t.shape, `weight ${i} shape`);
    assert.equal(maxAbsDiff(t, wb[i]), 0, `weight ${i} (${a.weights[i].name}) differs`);
  });
}

/** Saves `model` to a temporary directory, loads it, and compares weights and predictions. */
async function saveLoad(model: tfl.LayersModel, xs: tf.Tensor[]): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await model.save(fileIO(dir));
    const loaded = await tfl.loadLayersModel(fileIO(dir));
    try {
      assertSameWeights(model, loaded);
      const a = model.predict(feed(xs)) as tf.Tensor;
      const b = loaded.predict(feed(xs)) as tf.Tensor;
      assert.deepEqual(b.shape, a.shape);
      assert.equal(maxAbsDiff(a, b), 0, "predictions differ after loading");
      tf.dispose([a, b]);
      model.layers.forEach((l, i) => {
        assert.equal(loaded.layers[i].getClassName(), l.getClassName());
        assert.deepEqual(loaded.layers[i].getConfig(), { ...l.getConfig(), name: loaded.layers[i].name });
      });
    } finally {
      loaded.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** state_dict -> safetensors bytes -> tensors -> a fresh target: weights and outputs come back exactly. */
function stateDictRoundTrip(
  a: tfl.layers.Layer | tfl.LayersModel,
  b: tfl.layers.Layer | tfl.LayersModel,
  run: (m: tfl.layers.Layer | tfl.LayersModel) => tf.Tensor,
): void {
  const sd = stateDict(a);
  const keys = Object.keys(sd);
  const file = readSafetensors(writeSafetensors(sd, { format: "pt" }));
  assert.deepEqual([...file.tensors.keys()].sort(), [...keys].sort(), "keys through safetensors");
  const back = Object.fromEntries([...file.tensors].map(([k, raw]) => [k, toTensor(raw)]));
  try {
    const report = loadStateDict(b, back);
    assert.deepEqual([report.missing, report.unexpected, report.mismatched], [[], [], []]);
    assertSameWeights(a, b);
    const again = stateDict(b);
    for (const k of keys) assert.equal(maxAbsDiff(sd[k], again[k]), 0, k);
    tf.dispose(again);
    const ya = run(a), yb = run(b);
    assert.equal(maxAbsDiff(ya, yb), 0, "outputs differ after loading the state_dict");
    tf.dispose([ya, yb]);
    if (keys.length > 0) {
      // strict loading names every problem
      const broken: Record<string, tf.Tensor> = { ...sd, "bogus.weight": tf.zeros([1]) };
      const first = keys.find((k) => sd[k].size > 1) ?? keys[0];
      broken[first] = tf.zeros([sd[first].size + 1]);
      const other = keys.find((k) => k !== first && !k.endsWith("num_batches_tracked"));
      if (other) delete broken[other];
      assert.throws(
        () => loadStateDict(b, broken),
        (e: Error) =>
          /unexpected keys: bogus\.weight/.test(e.message) && /wrong shapes: /.test(e.message) &&
          (!other || /missing keys: /.test(e.message)),
      );
      tf.dispose([broken["bogus.weight"], broken[first]]);
    }
  } finally {
    tf.dispose([sd, back]);
  }
}

for (const entry of attentionEntries()) {
  const shapes = shapesOf(entry);

  tally.test(`${entry.name}: saves and loads with identical weights, config and predictions`, async () => {
    const inputs = shapes.map((s) => tfl.input({ shape: s.slice(1) }));
    const model = tfl.model({ inputs, outputs: create(entry).apply(feed(inputs)) as tfl.SymbolicTensor });
    const xs = randomInputs(shapes);
    try {
      await saveLoad(model, xs);
    } finally {
      model.dispose();
      tf.dispose(xs);
    }
  });

  tally.test(`${entry.name}: PyTorch state_dict through safetensors into a fresh layer is exact`, () => {
    const xs = randomInputs(shapes);
    const a = create(entry), b = create(entry);
    // build both, and give a's BatchNorms running statistics that differ from the initial ones
    tf.dispose([a.apply(feed(xs), { training: true }) as tf.Tensor, b.apply(feed(xs)) as tf.Tensor]);
    try {
      stateDictRoundTrip(a, b, (m) => m.apply(feed(xs)) as tf.Tensor);
    } finally {
      a.dispose();
      b.dispose();
      tf.dispose(xs);
    }
  });
}

const models = backbones();
if (models) {
  for (const name of models.names) {
    tally.test(`backbone ${name}: saves and loads; state_dict round trip`, async () => {
      const a = models.create(name), b = models.create(name);
      const xs = randomInputs(modelInputShapes(a));
      try {
        await saveLoad(a, xs);
        stateDictRoundTrip(a, b, (m) => (m as tfl.LayersModel).predict(feed(xs)) as tf.Tensor);
      } finally {
        a.dispose();
        b.dispose();
        tf.dispose(xs);
      }
    });
  }
} else {
  tally.skip("backbones (this build has no listModels()/createModel())");
}

tally.summary();
