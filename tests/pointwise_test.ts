import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { linear } from "../lib/ops/common.ts";
import { maxPool2x2 } from "../lib/ops/window_pool.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

Deno.test("linear (every 1x1 conv) equals a 1x1 conv2d (and the same kernel with a Conv3d shape on [N,T,H,W,C])", () => {
  const x = tf.randomNormal([2, 5, 7, 6], 0, 1, "float32", 1) as tf.Tensor4D;
  const k = tf.randomNormal([1, 1, 6, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const b = tf.randomNormal([3], 0, 1, "float32", 3);
  const x5 = tf.expandDims(x, 1);
  const k5 = tf.expandDims(k, 0);
  const before = tf.memory().numTensors;
  const y = linear(x, k, b);
  const y5 = linear(x5, k5, b);
  assert.equal(tf.memory().numTensors, before + 2, "intermediates leaked");
  assert.deepEqual(y5.shape, [2, 1, 5, 7, 3]);
  tf.tidy(() => {
    const want = tf.add(tf.conv2d(x, k, 1, "valid"), b);
    assert.ok(maxAbsDiff(y, want) < 1e-5);
    assert.ok(maxAbsDiff(tf.squeeze(y5, [1]), want) < 1e-5);
  });
  tf.dispose([x, k, b, x5, k5, y, y5]);
});

Deno.test("maxPool2x2 floors odd sizes (MaxPool2d(2)) and keeps time (MaxPool3d((1,2,2)))", () => {
  const x = tf.tensor4d(Array.from({ length: 15 }, (_, i) => i), [1, 3, 5, 1]);
  const y = maxPool2x2(x);
  assert.deepEqual(y.shape, [1, 1, 2, 1]);
  assert.deepEqual([...y.dataSync()], [6, 8]);
  // [N,T,H,W,C] against a loop (not tf.maxPool3d: the wasm backend's MaxPool3D gets (1,2,2) windows wrong)
  const v = tf.randomNormal([2, 3, 7, 5, 4], 0, 1, "float32", 4);
  const pooled = maxPool2x2(v);
  assert.deepEqual(pooled.shape, [2, 3, 3, 2, 4]);
  const d = v.arraySync() as number[][][][][];
  const got = pooled.arraySync() as number[][][][][];
  for (let n = 0; n < 2; n++) {
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          for (let c = 0; c < 4; c++) {
            const at = (a: number, b: number) => d[n][t][2 * i + a][2 * j + b][c];
            assert.equal(got[n][t][i][j][c], Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1)));
          }
        }
      }
    }
  }
  assert.throws(() => maxPool2x2(tf.zeros([2, 3, 4])), /maxPool2x2: expected \[N,H,W,C\] or \[N,T,H,W,C\], got rank 3/);
  tf.dispose([x, y, v, pooled]);
});
