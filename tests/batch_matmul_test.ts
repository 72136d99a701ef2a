// The wasm BatchMatMul replacement (lib/runtime/kernels/batch_matmul.ts): batched, broadcast and
// transposed products through XNNPACK 1x1 convolutions equal the cpu backend's within 1e-5
// (relative to the products' magnitude), leak nothing, and keep their gradients.
// Run: deno test -A tests/batch_matmul_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers the gradients
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

/** Run `f` on both backends with the same inputs; returns [wasm, cpu] outputs. */
async function both(shapes: number[][], f: (...xs: tf.Tensor[]) => tf.Tensor): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const backend of ["wasm", "cpu"]) {
    await tf.setBackend(backend);
    const xs = shapes.map((s, i) => tf.tensor(rand(s, i + 1), s));
    const y = f(...xs);
    out.push(y.dataSync() as Float32Array);
    tf.dispose([...xs, y]);
  }
  await tf.setBackend("wasm");
  return out;
}

function assertClose(got: Float32Array, want: Float32Array, what: string) {
  assert.equal(got.length, want.length, what);
  let scale = 1;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst <= 1e-5 * scale, `${what}: max |diff| ${worst} > 1e-5 x ${scale}`);
}

const cases: [string, number[], number[], boolean, boolean][] = [
  ["batched", [8, 96, 48], [8, 48, 80], false, false],
  ["batched, transposeB (scores q k^T)", [4, 128, 32], [4, 128, 32], false, true],
  ["batched, transposeA", [3, 64, 100], [3, 64, 70], true, false],
  ["both transposed", [2, 90, 40], [2, 60, 90], true, true],
  ["shared b (x @ W with batch dims)", [6, 50, 64], [1, 64, 96], false, false],
  ["shared a", [1, 70, 64], [5, 64, 90], false, false],
  ["rank 4 batch dims", [2, 3, 64, 48], [2, 3, 48, 64], false, false],
  ["many small products (tfjs's kernel)", [256, 8, 8], [256, 8, 8], false, false],
  ["one row (GC's context pooling)", [8, 1, 300], [8, 300, 64], false, false],
  ["one row, a transposed", [8, 300, 1], [8, 300, 64], true, false],
  ["one row, b transposed", [8, 1, 300], [8, 64, 300], false, true],
  ["one row, shared b", [8, 1, 300], [1, 300, 64], false, false],
  ["one column", [8, 70, 300], [8, 300, 1], false, false],
  ["one column, a transposed", [8, 300, 70], [8, 300, 1], true, false],
  ["one column, b transposed", [8, 70, 300], [8, 1, 300], false, true],
  ["one column, shared a", [1, 70, 300], [8, 300, 1], false, false],
];
for (const [name, sa, sb, ta, tb] of cases) {
  Deno.test(`BatchMatMul on wasm equals cpu: ${name}`, async () => {
    const [w, c] = await both([sa, sb], (a, b) => tf.matMul(a, b, ta, tb));
    assertClose(w, c, name);
  });
}

Deno.test("BatchMatMul on wasm: gradients equal cpu's; no tensors or buffers leak", async () => {
  const f = (a: tf.Tensor, b: tf.Tensor) => {
    const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, false, true))));
    const [da, db] = g([a, b]);
    return tf.concat([tf.reshape(da, [-1]), tf.reshape(db, [-1])]);
  };
  const [w, c] = await both([[4, 64, 32], [4, 80, 32]], f);
  assertClose(w, c, "gradients");
  const a = tf.tensor(rand([4, 64, 32], 1), [4, 64, 32]), b = tf.tensor(rand([4, 32, 80], 2), [4, 32, 80]);
  tf.dispose(tf.matMul(a, b));
  const tensors = tf.memory().numTensors, buffers = tf.engine().backend.numDataIds();
  for (let i = 0; i < 3; i++) tf.dispose(tf.matMul(a, b, false, false));
  tf.dispose(tf.matMul(b, a, true, true));
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(tf.engine().backend.numDataIds(), buffers);
  tf.dispose([a, b]);
});
