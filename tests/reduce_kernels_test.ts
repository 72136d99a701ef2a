// Sum / Mean / Max on wasm as registered (Sum / Mean: the heap pass of lib/runtime/kernels/reduce_heap.ts
// where the axes allow): equal to the cpu backend for every axis pattern, keepDims, negative axes and large blocks.
// Run: deno test -A tests/reduce_kernels_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

const cases: [number[], number | number[] | null, boolean][] = [
  [[3, 4, 5], null, false],
  [[8, 9, 7, 16], [0, 1, 2], false],
  [[8, 9, 7, 16], [1, 2], true],
  [[8, 9, 7, 16], [1, 2], false],
  [[8, 9, 7, 16], [-3, -2], false],
  [[6, 20], 0, false],
  [[4, 5, 6], [0, 1], true],
  [[2, 3, 4, 5], [1], false],
  [[2, 3, 4, 5], [0, 2], false], // not contiguous: tfjs's kernel
  [[2, 3, 4, 5], [3], false], // last axis: tfjs's kernel
  [[2, 3, 4, 5], [0, 1, 2, 3], false],
  [[4, 64, 64, 8], [0, 1, 2], false], // R = 16384
  [[2, 4, 1, 16384], [1], false], // 16384 channels: tfjs's kernel (the pooling would corrupt the heap)
  [[3, 5, 64, 64], [1], false], // 4096 channels: the largest pooled
  [[2, 8, 128, 64], [1], false], // 8192 channels (Bahdanau's gradient has 16384): tfjs's kernel
];

for (const [shape, axis, keepDims] of cases) {
  Deno.test(`sum / mean / max on wasm = cpu: ${shape} axis ${JSON.stringify(axis)} keepDims ${keepDims}`, async () => {
    for (const op of [tf.sum, tf.mean, tf.max]) {
      const out: tf.Tensor[] = [];
      for (const backend of ["wasm", "cpu"]) {
        await tf.setBackend(backend);
        const x = tf.tensor(rand(shape, 7), shape);
        const y = op(x, axis ?? undefined, keepDims);
        out.push(tf.tensor(y.dataSync(), y.shape)); // a cpu/wasm-independent copy
        tf.dispose([x, y]);
        tf.dispose(tf.randomNormal([512, 1024])); // heap damage shows in malloc / free
      }
      await tf.setBackend("wasm");
      assert.deepEqual(out[0].shape, out[1].shape);
      const a = out[0].dataSync(), b = out[1].dataSync();
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
      assert.ok(worst <= 1e-5, `${op.name}: max relative difference ${worst}`);
      tf.dispose(out);
    }
  });
}
