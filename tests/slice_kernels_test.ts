// Slice and Identity on wasm (lib/runtime/kernels/slice.ts): equal to the cpu backend for every
// rank 1-6, cut and whole axes, size -1, odd shapes, int32 / bool / float32 with NaN and
// Infinity; Identity's shared storage survives disposing either tensor; no tensor leaks.
// Run: deno test -A tests/slice_kernels_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers the gradients
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

const cases: [number[], number[], number[]][] = [
  [[7], [2], [4]],
  [[7], [0], [-1]],
  [[5, 3], [1, 0], [3, 3]], // whole rows: one run
  [[5, 3], [1, 1], [3, 2]],
  [[9, 13, 5], [3, 0, 0], [1, 13, 5]], // a leading-axis block (the matmul input gradient's taps)
  [[9, 13, 5], [2, 4, 1], [5, 7, 3]],
  [[9, 13, 5], [0, 4, 0], [-1, 6, -1]],
  [[3, 7, 5, 6], [1, 2, 0, 0], [2, 3, 5, 6]],
  [[3, 7, 5, 6], [0, 1, 1, 2], [3, 5, 3, 3]],
  [[3, 7, 5, 6], [2, 0, 0, 0], [1, 7, 5, 6]],
  [[2, 3, 4, 5, 6], [1, 1, 0, 2, 0], [1, 2, 4, 3, 6]],
  [[2, 3, 2, 4, 5, 3], [0, 1, 1, 0, 1, 0], [2, 2, 1, 4, 3, 2]],
  [[4, 5], [1, 2], [0, 2]], // empty
];

for (const [shape, begin, size] of cases) {
  Deno.test(`slice on wasm = cpu: ${shape} begin ${begin} size ${size}`, async () => {
    for (const dtype of ["float32", "int32", "bool"] as const) {
      const values = rand(shape, 3);
      if (dtype === "float32" && values.length > 3) [values[0], values[1], values[2]] = [NaN, Infinity, -Infinity];
      const out: tf.Tensor[] = [];
      for (const backend of ["wasm", "cpu"]) {
        await tf.setBackend(backend);
        const start = tf.memory().numTensors;
        const x = dtype === "float32" ? tf.tensor(values, shape) : tf.tidy(() => {
          const t = tf.tensor(values, shape);
          return dtype === "bool" ? tf.greater(t, 0) : tf.cast(tf.mul(t, 1000), dtype);
        });
        const y = tf.slice(x, begin, size);
        out.push(tf.tensor(y.dataSync(), y.shape, dtype)); // a backend-independent copy
        tf.dispose([x, y]);
        assert.equal(tf.memory().numTensors, start + 1, "tensors leaked");
      }
      await tf.setBackend("wasm");
      assert.deepEqual(out[0].shape, out[1].shape);
      const a = Array.from(out[0].dataSync()), b = Array.from(out[1].dataSync());
      assert.ok(a.every((v, i) => Object.is(v, b[i])), `${dtype}: ${a.slice(0, 8)} vs ${b.slice(0, 8)}`);
      tf.dispose(out);
    }
  });
}

Deno.test("identity on wasm shares storage and survives disposing either tensor", () => {
  const start = tf.memory().numTensors;
  const x = tf.tensor(rand([3, 5], 1), [3, 5]);
  const values = Array.from(x.dataSync());
  const y = tf.clone(x);
  x.dispose();
  tf.dispose(tf.randomNormal([256, 1024])); // freed storage would be reused here
  assert.deepEqual(Array.from(y.dataSync()), values);
  const z = tf.clone(y);
  y.dispose();
  assert.deepEqual(Array.from(z.dataSync()), values);
  z.dispose();
  assert.equal(tf.memory().numTensors, start);
  // the gradient of an identity-based op (tf.grad runs Identity for its pass-through)
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.clone(t), t)))(tf.tensor([1, -2, 3]));
  assert.deepEqual(Array.from(g.dataSync()), [2, -4, 6]);
});
