// Transpose on wasm through the merged lower-rank view (lib/runtime/kernels/transpose.ts): equal to the cpu
// backend for ranks 1-6, size-1 axes and every kind of permutation; the merging itself on known cases.
// Run: deno test -A tests/transpose_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { mergedTranspose } from "../lib/runtime/kernels/transpose.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

Deno.test("mergedTranspose: axes that move together merge, size-1 axes drop", () => {
  // [N, Ho, Wo, C, M] -> [Ho, Wo, C, N, M]: the depthwise filter gradient's transpose
  assert.deepEqual(mergedTranspose([8, 32, 32, 64, 2], [1, 2, 3, 0, 4]), { shape: [8, 65536, 2], perm: [1, 0, 2] });
  assert.deepEqual(mergedTranspose([2, 3, 4], [0, 1, 2]), { shape: [24], perm: [0] });
  assert.deepEqual(mergedTranspose([2, 1, 3], [2, 1, 0]), { shape: [2, 3], perm: [1, 0] });
  assert.deepEqual(mergedTranspose([5, 6], [1, 0]), { shape: [5, 6], perm: [1, 0] });
  assert.deepEqual(mergedTranspose([1, 1], [1, 0]), { shape: [], perm: [] });
});

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])
  );
}

const shapes = [[7], [3, 5], [2, 1, 4], [2, 3, 4, 5], [3, 1, 4, 2, 5], [2, 3, 1, 2, 3, 2], [4, 1, 1, 3]];
for (const shape of shapes) {
  Deno.test(`transpose on wasm = cpu for every permutation of ${shape}`, async () => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: size }, (_, i) => i * 0.5 - 3);
    const perms = permutations(shape.length);
    const want: Float32Array[] = [];
    await tf.setBackend("cpu");
    for (const p of perms) {
      want.push(tf.tidy(() => tf.transpose(tf.tensor(values, shape), p).dataSync() as Float32Array));
    }
    await tf.setBackend("wasm");
    const x = tf.tensor(values, shape);
    const before = tf.memory().numTensors;
    perms.forEach((p, k) => {
      const y = tf.transpose(x, p);
      assert.deepEqual(y.shape, p.map((a) => shape[a]));
      assert.deepEqual(Array.from(y.dataSync()), Array.from(want[k]), `perm ${p}`);
      y.dispose();
    });
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
  });
}
