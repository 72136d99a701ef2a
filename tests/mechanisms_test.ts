/**
 * Tests generated from the registry: every registered mechanism is built, run on its example
 * inputs (by default a non-square odd batch of 3), captured, trained a few steps, and fed bad
 * input. A new mechanism is tested by being registered. Saving and loading and the PyTorch
 * state_dict round trip are in reliability_roundtrip_test.ts, leaks in reliability_leaks_test.ts,
 * the full bad-input matrix in reliability_bad_input_test.ts.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { attentionEntries } from "../lib/registry.ts";
import type { AttentionEntry } from "../lib/modules/base.ts";
import { captureAttention } from "../lib/capture.ts";
import { fmtShape, setChecks } from "../lib/checks.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { withSeed } from "../lib/runtime/seed.ts";
import { maxAbsDiff } from "./support/tensors.ts";

/** Weights whose gradient is zero by construction (softmax shift invariance), by variable name. */
const ANALYTICALLY_ZERO = [/global_context[^/]*\/mask_bias/];

await initBackend({ quiet: true });

/** The default example: batch 3, a non-square odd map, 32 channels. */
const DEFAULT_SHAPES = [[3, 7, 5, 32]];

function shapesOf(entry: AttentionEntry): number[][] {
  return entry.example?.inputs ?? DEFAULT_SHAPES;
}

function create(entry: AttentionEntry, extra: Record<string, unknown> = {}) {
  return entry.create({ ...entry.example?.config, ...extra });
}

function randomInputs(entry: AttentionEntry, seed = 1): tf.Tensor[] {
  return shapesOf(entry).map((s, i) => tf.randomNormal(s, 0, 1, "float32", seed + 17 * i));
}

/** One tensor for one input, the array for several (what Layer.apply takes). */
function feed(xs: tf.Tensor[]): tf.Tensor | tf.Tensor[] {
  return xs.length === 1 ? xs[0] : xs;
}

function functionalModel(entry: AttentionEntry): tfl.LayersModel {
  const inputs = shapesOf(entry).map((s) => tfl.input({ shape: s.slice(1) }));
  const output = create(entry).apply(inputs.length === 1 ? inputs[0] : inputs) as tfl.SymbolicTensor;
  return tfl.model({ inputs, outputs: output });
}

for (const entry of attentionEntries()) {
  const name = entry.name;
  const shapes = shapesOf(entry);
  const [n] = shapes[0];

  Deno.test(`${name}: output shape, maps and no leaks`, () => {
    const xs = randomInputs(entry);
    const layer = create(entry);
    tf.dispose(layer.apply(feed(xs)) as tf.Tensor);
    const before = tf.memory().numTensors;
    const cap = captureAttention(() => layer.apply(feed(xs)) as tf.Tensor);
    assert.deepEqual(cap.result.shape, layer.computeOutputShape(shapes.length === 1 ? shapes[0] : shapes));
    const maps = cap.maps[layer.name];
    assert.ok(maps && Object.keys(maps).length > 0, "no attention maps captured");
    for (const [mapName, m] of Object.entries(maps)) {
      assert.ok(m.dataSync().every(Number.isFinite), `${mapName} finite`);
    }
    if (maps.spatial) assert.deepEqual(maps.spatial.shape.slice(0, -1), shapes[0].slice(0, -1), "spatial map");
    if (maps.channel) assert.deepEqual(maps.channel.shape, [n, 1, 1, shapes[0][3]], "channel map");
    cap.dispose();
    cap.result.dispose();
    tf.dispose(layer.apply(feed(xs)) as tf.Tensor);
    assert.equal(tf.memory().numTensors, before, "tensors leaked");
    layer.dispose();
    tf.dispose(xs);
  });

  Deno.test(`${name}: the same output whether or not the maps are captured`, () => {
    // layers may take a blocked path that never builds the map when nobody captures it
    const xs = randomInputs(entry);
    const layer = create(entry);
    const plain = layer.apply(feed(xs)) as tf.Tensor;
    const cap = captureAttention(() => layer.apply(feed(xs)) as tf.Tensor);
    const scale = tf.tidy(() => tf.max(tf.abs(cap.result)).dataSync()[0]);
    assert.ok(maxAbsDiff(plain, cap.result) <= 1e-5 * Math.max(1, scale), "captured and plain outputs differ");
    cap.dispose();
    tf.dispose([plain, cap.result, xs]);
    layer.dispose();
  });

  // seeded weights and inputs: an unseeded draw of a steep example (RA-CNN's APN, |g| ~ 500) failed 1 run in 3
  Deno.test(`${name}: trains (loss falls, every weight gets a gradient)`, () =>
    withSeed(1, () => {
      const model = functionalModel(entry);
      if (model.trainableWeights.length === 0) {
        // weight-free ops (saliency) have nothing to train: say so rather than pass silently
        console.log(`${name}: no trainable weights`);
        model.dispose();
        return;
      }
      const xs = randomInputs(entry, 2);
      const target = tf.tidy(() =>
        tf.mul(tf.randomNormal((model.predict(feed(xs)) as tf.Tensor).shape, 0, 1, "float32", 3), 0.5)
      );
      const lossIn = (training: boolean) => () =>
        tf.losses.meanSquaredError(target, model.apply(feed(xs), { training }) as tf.Tensor) as tf.Scalar;
      const loss = lossIn(true);
      const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
      // a weight must get a gradient in training or in inference: in training the bias of a layer followed
      // by a batch-statistics BatchNorm (BAM's, as in PyTorch) has an exactly zero gradient
      const modes = [tf.variableGrads(loss, vars), tf.variableGrads(lossIn(false), vars)];
      for (const v of vars) {
        const gs = modes.map((m) => m.grads[v.name]);
        assert.ok(gs.every((g) => g), `no gradient for ${v.name}`);
        // a bias added before a softmax over the positions it shifts equally (GC's mask conv) has an
        // exactly zero gradient; it used to pass on rounding noise, and the sums now cancel exactly
        if (ANALYTICALLY_ZERO.some((re) => re.test(v.name))) continue;
        const norm = Math.max(...gs.map((g) => tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0])));
        assert.ok(norm > 0 && Number.isFinite(norm), `zero or non-finite gradient for ${v.name}: ${norm}`);
      }
      tf.dispose(modes.flatMap((m) => [m.grads, m.value]));
      const opt = tf.train.adam(0.01);
      const losses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const l = opt.minimize(loss, true, vars)!;
        losses.push(l.dataSync()[0]);
        l.dispose();
      }
      assert.ok(losses[losses.length - 1] < losses[0], `loss did not fall: ${losses.join(", ")}`);
      opt.dispose();
      tf.dispose([xs, target]);
      model.dispose();
    }));

  Deno.test(`${name}: bad input gets an Error naming the layer`, () => {
    const layer = create(entry);
    const xs = randomInputs(entry);
    tf.dispose(layer.apply(feed(xs)) as tf.Tensor);
    const before = tf.memory().numTensors;
    const s = shapes[0];
    const rank = s.length;
    const c = s[rank - 1];
    const expectError = (first: tf.Tensor, pattern: RegExp) => {
      assert.throws(() => layer.apply(feed([first, ...xs.slice(1)])), (e: Error) => {
        assert.ok(e.message.startsWith(`${layer.name}: `), `message should name the layer: ${e.message}`);
        assert.match(e.message, pattern);
        return true;
      });
      first.dispose();
    };
    const esc = (t: string) => t.replace(/[[\]]/g, "\\$&");
    const noBatch = s.slice(1);
    expectError(tf.zeros(noBatch), new RegExp(`expected a rank-${rank} .* got shape ${esc(fmtShape(noBatch))}`));
    const fewer = [...s.slice(0, -1), c === 16 ? 8 : 16];
    expectError(tf.zeros(fewer), new RegExp(`expected ${c} channels .* got shape ${esc(fmtShape(fewer))}`));
    const empty = [0, ...s.slice(1)];
    expectError(tf.zeros(empty), new RegExp(`expected non-empty dimensions, got shape ${esc(fmtShape(empty))}`));
    expectError(tf.zeros(s, "int32"), /expected a float32 tensor, got int32/);
    const previous = setChecks({ numerics: true });
    try {
      const bad = tf.tidy(() =>
        // channel 3, or the last one for inputs with fewer channels (RGB images)
        tf.where(
          tf.equal(tf.reshape(tf.range(0, c), [...s.slice(0, -1).map(() => 1), c]), Math.min(3, c - 1)),
          NaN,
          xs[0],
        )
      );
      expectError(bad, /expected finite input, got \d+ NaN/);
    } finally {
      setChecks(previous);
    }
    assert.equal(tf.memory().numTensors, before, "tensors leaked on errors");
    layer.dispose();
    if ("reduction" in layer.config) {
      const wide = create(entry, { reduction: 2 * c });
      assert.throws(
        () => tf.tidy(() => wide.apply(feed(xs)) as tf.Tensor),
        new RegExp(`expected reduction \\(${2 * c}\\) at most channels \\(${c}\\)`),
      );
    }
    tf.dispose(xs);
  });
}
