/**
 * FcaNet beyond the generated tests: the frequency tables, the DCT filter (orthonormal basis, the
 * paper's unnormalised variant), SE as the DC-only special case, the buffer's handling, every
 * frequency selection, and config errors.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { FCA_FREQ_SEL_METHODS, fcaDctFilter, fcaFrequencies, MultiSpectralAttention } from "../lib/modules/fca.ts";
import { squeezeExcite } from "../lib/modules/se.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

Deno.test("fca: the 18 frequency selections of the released code", () => {
  assert.equal(FCA_FREQ_SEL_METHODS.length, 18);
  for (const m of FCA_FREQ_SEL_METHODS) {
    const { u, v } = fcaFrequencies(m);
    assert.equal(u.length, Number(m.slice(3)));
    assert.equal(v.length, u.length);
    assert.ok([...u, ...v].every((f) => f >= 0 && f < 7), m);
    // no frequency listed twice
    assert.equal(new Set(u.map((ui, i) => `${ui},${v[i]}`)).size, u.length, m);
  }
  assert.deepEqual(fcaFrequencies("top4"), { u: [0, 0, 6, 0], v: [0, 1, 0, 5] });
  assert.deepEqual(fcaFrequencies("low2"), { u: [0, 0], v: [0, 1] });
  assert.deepEqual(fcaFrequencies("bot1"), { u: [6], v: [6] });
  assert.throws(() => fcaFrequencies("top3" as "top4"), /expected one of top1, top2/);
});

Deno.test("fca: the DCT filters of distinct frequencies are orthonormal; 'none' drops the constants", () => {
  const [dh, dw] = [7, 9];
  const filter = fcaDctFilter(32, dh, dw, "top32"); // one channel per frequency
  const flat = tf.reshape(filter, [32, dh * dw]);
  const gram = tf.matMul(flat, flat, false, true);
  assert.ok(maxAbsDiff(gram, tf.eye(32)) < 1e-5, "B B^T = I");
  // the paper's basis: cos * cos, i.e. the ortho one without 1/sqrt(N) (times sqrt(2) for f > 0) per axis
  const plain = fcaDctFilter(2, 14, 7, "low2", "none"); // frequencies (0,0) and (0,1), the height scaled by 2
  const d = plain.dataSync();
  assert.equal(d[0], 1); // DC: cos(0) cos(0)
  const expected = Math.cos((Math.PI * 1 * (3 + 0.5)) / 7); // channel 1, h = 0, w = 3: v = 1 along the width
  assert.ok(Math.abs(d[14 * 7 + 3] - expected) < 1e-6);
  const ortho = fcaDctFilter(2, 14, 7, "low2", "ortho").dataSync();
  assert.ok(Math.abs(ortho[14 * 7 + 3] - (expected * Math.SQRT2) / Math.sqrt(14 * 7)) < 1e-6);
  tf.dispose([filter, flat, gram, plain]);
  assert.throws(() => fcaDctFilter(24, 7, 7, "top16"), /channels \(24\) to be a multiple of the 16 frequencies/);
});

Deno.test("fca: DC only (top1) is SE with the average pool scaled by sqrt(HW)", () => {
  const x = tf.randomNormal([3, 7, 7, 16], 0, 1, "float32", 3) as tf.Tensor4D;
  const fca = new MultiSpectralAttention({ freqSelMethod: "top1", reduction: 4 });
  tf.dispose(fca.apply(x) as tf.Tensor);
  const sd = stateDict(fca);
  const got = fca.attend(x);
  const w1 = tf.transpose(sd["fc.0.weight"]);
  const w2 = tf.transpose(sd["fc.2.weight"]);
  const se = squeezeExcite(x, { w1: tf.mul(w1, 7), w2 });
  assert.ok(maxAbsDiff(got.output, se.output) < 1e-4);
  assert.ok(maxAbsDiff(got.maps.channel, se.maps.channel) < 1e-5);
  tf.dispose([got.output, got.maps, se.output, se.maps, w1, w2, sd, x]);
  fca.dispose();
});

Deno.test("fca: the DCT filter is a non-trainable buffer named dct_layer.weight; params 2 C^2 / r", () => {
  const x = tf.randomNormal([3, 9, 11, 32], 0, 1, "float32", 4);
  const fca = new MultiSpectralAttention({ reduction: 4, freqSelMethod: "low8" });
  tf.dispose(fca.apply(x) as tf.Tensor);
  const trainable = fca.trainableWeights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
  assert.equal(trainable, (2 * 32 * 32) / 4);
  assert.deepEqual(fca.nonTrainableWeights.map((w) => w.shape), [[32, 7, 7]]);
  const sd = stateDict(fca);
  assert.deepEqual(Object.keys(sd), ["dct_layer.weight", "fc.0.weight", "fc.2.weight"]);
  const built = fcaDctFilter(32, 7, 7, "low8");
  assert.equal(maxAbsDiff(sd["dct_layer.weight"], built), 0);
  // the layer computes with the buffer it holds: a loaded buffer changes the output
  const before = fca.apply(x) as tf.Tensor;
  const scaled = { ...sd, "dct_layer.weight": tf.mul(sd["dct_layer.weight"], 2) };
  loadStateDict(fca, scaled);
  const after = fca.apply(x) as tf.Tensor;
  assert.ok(maxAbsDiff(before, after) > 1e-4);
  tf.dispose([before, after, built, scaled["dct_layer.weight"], sd, x]);
  fca.dispose();
});

Deno.test("fca: every frequency selection runs on an input larger and one smaller than the DCT size, no leaks", () => {
  const big = tf.randomNormal([3, 9, 5, 32], 0, 1, "float32", 5);
  const small = tf.randomNormal([3, 3, 5, 32], 0, 1, "float32", 6);
  for (const m of FCA_FREQ_SEL_METHODS) {
    const fca = new MultiSpectralAttention({ freqSelMethod: m, reduction: 8 });
    tf.dispose(fca.apply(big) as tf.Tensor);
    const before = tf.memory().numTensors;
    for (const x of [big, small]) {
      const r = fca.attend(x);
      assert.deepEqual(r.output.shape, x.shape, m);
      assert.deepEqual(r.maps.channel.shape, [3, 1, 1, 32], m);
      assert.ok(r.output.dataSync().every(Number.isFinite), m);
      tf.dispose([r.output, r.maps]);
    }
    assert.equal(tf.memory().numTensors, before, `${m}: tensors leaked`);
    fca.dispose();
  }
  tf.dispose([big, small]);
});

Deno.test("fca: configs that cannot work get an Error naming the layer", () => {
  assert.throws(
    () => new MultiSpectralAttention({ name: "f1", freqSelMethod: "mid4" as "low4" }),
    /^Error: f1: expected freqSelMethod one of/,
  );
  assert.throws(
    () => new MultiSpectralAttention({ name: "f2", dctH: 0 }),
    /f2: expected a positive integer dctH, got 0/,
  );
  assert.throws(() => new MultiSpectralAttention({ name: "f3", dctNorm: "l2" as "none" }), /f3: expected dctNorm/);
  const x = tf.zeros([1, 7, 7, 24]);
  assert.throws(
    () => new MultiSpectralAttention({ name: "f4" }).apply(x),
    /f4: expected channels \(24\) to be a multiple of the 16 frequencies of top16/,
  );
  assert.throws(
    () => new MultiSpectralAttention({ name: "f5", freqSelMethod: "top8", reduction: 32 }).apply(x),
    /f5: expected reduction \(32\) at most channels \(24\)/,
  );
  x.dispose();
});
