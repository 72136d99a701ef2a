/** LTPA (Learn to Pay Attention): what the generated tests and the fixtures do not cover. */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { LearnToPayAttention, learnToPayAttention } from "../lib/modules/ltpa.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff, permutePositions, shuffled } from "./support/tensors.ts";

await initBackend({ quiet: true });

Deno.test("ltpa: the op matches a loop over the paper's equations (pc and dp, softmax and sigmoid)", () => {
  const before = tf.memory().numTensors;
  const [n, h, w, cl, cg] = [2, 3, 5, 4, 6];
  const l = tf.randomNormal([n, h, w, cl], 0, 1, "float32", 1);
  const g = tf.randomNormal([n, cg], 0, 1, "float32", 2);
  const proj = tf.randomNormal([cl, cg], 0, 0.5, "float32", 3);
  const u = tf.randomNormal([cg, 1], 0, 0.5, "float32", 4);
  const L = l.arraySync() as number[][][][];
  const G = g.arraySync() as number[][];
  const P = proj.arraySync() as number[][];
  const U = (u.arraySync() as number[][]).map((r) => r[0]);
  for (const compat of ["pc", "dp"] as const) {
    for (const normalizeAttn of [true, false]) {
      const r = learnToPayAttention(l as tf.Tensor4D, g, { projector: proj, u: compat === "pc" ? u : undefined }, {
        normalizeAttn,
      });
      const out = r.output.arraySync() as number[][];
      const spatial = r.maps.spatial.arraySync() as number[][][][];
      for (let b = 0; b < n; b++) {
        const lp: number[][] = [];
        const c: number[] = [];
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) {
            const v = [...Array(cg).keys()].map((o) => L[b][i][j].reduce((s, x, q) => s + x * P[q][o], 0));
            lp.push(v);
            c.push(
              compat === "pc"
                ? v.reduce((s, x, o) => s + U[o] * (x + G[b][o]), 0)
                : v.reduce((s, x, o) => s + x * G[b][o], 0),
            );
          }
        }
        const mx = Math.max(...c);
        const z = c.reduce((s, x) => s + Math.exp(x - mx), 0);
        const a = c.map((x) => (normalizeAttn ? Math.exp(x - mx) / z : 1 / (1 + Math.exp(-x))));
        for (let o = 0; o < cg; o++) {
          const sum = lp.reduce((s, v, k) => s + a[k] * v[o], 0);
          const want = normalizeAttn ? sum : sum / (h * w);
          assert.ok(Math.abs(out[b][o] - want) < 1e-4, `${compat} ${normalizeAttn} out[${b}][${o}]`);
        }
        a.forEach((v, k) => assert.ok(Math.abs(spatial[b][Math.floor(k / w)][k % w][0] - v) < 1e-5));
      }
      tf.dispose([r.output, ...Object.values(r.maps)]);
    }
  }
  tf.dispose([l, g, proj, u]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("ltpa: the global vector as [N,1,1,C] or [N,C] gives the same output", () => {
  const l = tf.randomNormal([3, 7, 5, 8], 0, 1, "float32", 5);
  const g4 = tf.randomNormal([3, 1, 1, 16], 0, 1, "float32", 6);
  const g2 = tf.reshape(g4, [3, 16]);
  const a = new LearnToPayAttention();
  const b = new LearnToPayAttention();
  const ya = a.apply([l, g4]) as tf.Tensor;
  tf.dispose(b.apply([l, g2]) as tf.Tensor);
  loadStateDict(b, stateDict(a));
  const yb = b.apply([l, g2]) as tf.Tensor;
  assert.deepEqual(ya.shape, [3, 16]);
  assert.deepEqual(a.computeOutputShape([[3, 7, 5, 8], [3, 1, 1, 16]]), [3, 16]);
  assert.deepEqual(b.computeOutputShape([[3, 7, 5, 8], [3, 16]]), [3, 16]);
  assert.equal(maxAbsDiff(ya, yb), 0);
  tf.dispose([l, g4, g2, ya, yb]);
  a.dispose();
  b.dispose();
});

Deno.test("ltpa: a projector exactly when the channels differ (or when asked); its state_dict keys", () => {
  const cases: [number, boolean | null, string[]][] = [
    [8, null, ["attn1.op.weight", "projector.op.weight"]],
    [16, null, ["attn1.op.weight"]],
    [16, true, ["attn1.op.weight", "projector.op.weight"]],
  ];
  const g = tf.zeros([2, 1, 1, 16]);
  for (const [cl, projector, keys] of cases) {
    const layer = new LearnToPayAttention({ projector });
    const l = tf.zeros([2, 5, 3, cl]);
    tf.dispose(layer.apply([l, g]) as tf.Tensor);
    const sd = stateDict(layer);
    assert.deepEqual(Object.keys(sd).sort(), keys, `Cl ${cl} projector ${projector}`);
    const params = layer.trainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
    assert.equal(params, 16 + (keys.length === 2 ? cl * 16 : 0));
    tf.dispose([l, ...Object.values(sd)]);
    layer.dispose();
  }
  // no projector but different channels: a clear error
  const bad = new LearnToPayAttention({ projector: false });
  const l = tf.zeros([2, 5, 3, 8]);
  assert.throws(() => bad.apply([l, g]), /expected local features with the global vector's 16 channels/);
  // dot-product compatibility has no compatibility weight
  const dp = new LearnToPayAttention({ compatibility: "dp" });
  tf.dispose(dp.apply([l, g]) as tf.Tensor);
  assert.deepEqual(Object.keys(stateDict(dp)), ["projector.op.weight"]);
  tf.dispose([l, g]);
  dp.dispose();
});

Deno.test("ltpa: three layers (indices 1, 2, 3) load a model1.py-style state_dict under one root", () => {
  // AttnVGG_before's attention head: projector + attn1 on l1 (256 ch), attn2 on l2, attn3 on l3 (512 ch); scaled down
  const l1 = tfl.input({ shape: [9, 7, 4] });
  const l2 = tfl.input({ shape: [5, 3, 8] });
  const l3 = tfl.input({ shape: [3, 3, 8] });
  const g = tfl.input({ shape: [1, 1, 8] });
  const outs = [l1, l2, l3].map((l, i) =>
    new LearnToPayAttention({ attentionIndex: i + 1, name: `ltpa${i + 1}` }).apply([l, g]) as tfl.SymbolicTensor
  );
  const model = tfl.model({
    inputs: [l1, l2, l3, g],
    outputs: tfl.layers.concatenate().apply(outs) as tfl.SymbolicTensor,
  });
  const names = { ltpa1: "", ltpa2: "", ltpa3: "" };
  const sd = {
    "projector.op.weight": tf.randomNormal([8, 4, 1, 1], 0, 1, "float32", 7),
    "attn1.op.weight": tf.randomNormal([1, 8, 1, 1], 0, 1, "float32", 8),
    "attn2.op.weight": tf.randomNormal([1, 8, 1, 1], 0, 1, "float32", 9),
    "attn3.op.weight": tf.randomNormal([1, 8, 1, 1], 0, 1, "float32", 10),
  };
  const report = loadStateDict(model, sd, { names });
  assert.deepEqual(report.loaded.sort(), Object.keys(sd).sort());
  const again = stateDict(model, { names });
  for (const [k, v] of Object.entries(sd)) assert.equal(maxAbsDiff(v, again[k]), 0, k);
  const xs = [[2, 9, 7, 4], [2, 5, 3, 8], [2, 3, 3, 8], [2, 1, 1, 8]].map((s, i) =>
    tf.randomNormal(s, 0, 1, "float32", i)
  );
  const y = model.predict(xs) as tf.Tensor;
  assert.deepEqual(y.shape, [2, 24]);
  tf.dispose([...Object.values(sd), ...Object.values(again), ...xs, y]);
  model.dispose();
});

Deno.test("ltpa: position-agnostic: permuting the positions permutes the maps and keeps the descriptor", () => {
  const before = tf.memory().numTensors;
  const l = tf.randomNormal([3, 7, 5, 8], 0, 1, "float32", 11);
  const g = tf.randomNormal([3, 1, 1, 12], 0, 1, "float32", 12);
  const perm = shuffled(35, 3);
  for (const normalizeAttn of [true, false]) {
    const layer = new LearnToPayAttention({ normalizeAttn });
    tf.dispose(layer.apply([l, g]) as tf.Tensor);
    const a = layer.attend([l, g]);
    const lp = permutePositions(l, perm);
    const b = layer.attend([lp, g]);
    assert.ok(maxAbsDiff(a.output, b.output) < 1e-5, "descriptor invariant");
    for (const m of ["spatial", "compat"]) {
      const want = permutePositions(a.maps[m], perm);
      assert.ok(maxAbsDiff(want, b.maps[m]) < 1e-6, `${m} permutes`);
      want.dispose();
    }
    if (normalizeAttn) {
      const sums = tf.sum(a.maps.spatial, [1, 2, 3]);
      sums.dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
      sums.dispose();
    }
    tf.dispose([lp, a.output, b.output, ...Object.values(a.maps), ...Object.values(b.maps)]);
    layer.dispose();
  }
  tf.dispose([l, g]);
  assert.equal(tf.memory().numTensors, before, "tensors leaked");
});

Deno.test("ltpa: errors name the layer: the second input, its width, bad options", () => {
  const layer = new LearnToPayAttention({ name: "ltpa_err" });
  const l = tf.zeros([2, 5, 3, 8]);
  const g = tf.zeros([2, 1, 1, 16]);
  tf.dispose(layer.apply([l, g]) as tf.Tensor);
  const before = tf.memory().numTensors;
  assert.throws(() => layer.apply(l), /^Error: ltpa_err: expected two inputs \[local, global\], got 1/);
  const wide = tf.zeros([2, 1, 1, 12]);
  const spatialG = tf.zeros([2, 2, 2, 16]);
  const otherBatch = tf.zeros([3, 16]);
  for (const bad of [wide, spatialG, otherBatch]) {
    assert.throws(() => layer.apply([l, bad]), /ltpa_err: expected the global vector \(second input\) as float32/);
  }
  assert.equal(tf.memory().numTensors - 3, before, "tensors leaked on errors");
  assert.throws(
    () => new LearnToPayAttention({ compatibility: "cosine" as "pc" }),
    /expected compatibility "pc" or "dp"/,
  );
  assert.throws(() => new LearnToPayAttention({ attentionIndex: -1 }), /expected attentionIndex/);
  const fresh = new LearnToPayAttention();
  assert.throws(
    () => fresh.apply([l, tf.zeros([2, 3, 16])]),
    /expected the global vector \(second input\) as \[N,1,1,C\]/,
  );
  tf.dispose([l, g, wide, spatialG, otherBatch]);
  layer.dispose();
});
