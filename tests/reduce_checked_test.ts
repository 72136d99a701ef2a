// Sum / Mean on wasm by pooling in place with the finiteness check (lib/runtime/kernels/reduce_checked.ts):
// NaN and infinities come out exactly as on the cpu backend (XNNPACK's pooling alone turns NaN into -Infinity),
// the in-place path runs for finite inputs, and nothing leaks. Equality with the cpu backend on finite inputs over
// every axis pattern: tests/reduce_kernels_test.ts. Run: deno test -A tests/reduce_checked_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { registerCheckedReductions } from "../lib/runtime/kernels/reduce_checked.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

const specials: [string, number[]][] = [
  ["NaN", [NaN]],
  ["+Infinity", [Infinity]],
  ["-Infinity", [-Infinity]],
  ["Infinity and -Infinity", [Infinity, -Infinity]],
  ["NaN and Infinity", [NaN, Infinity]],
  // (a mean that overflows in float32 is Infinity with tfjs's own wasm kernel too, finite on cpu: sum only)
  ["overflow of finite values", [3e38, 3e38, 3e38]],
];
const shapes: [number[], number | number[]][] = [[[2, 6, 5, 8], [0, 1, 2]], [[3, 64, 16], 1], [[4, 7, 3], [1]]];

for (const [what, values] of specials) {
  for (const [shape, axis] of shapes) {
    Deno.test(`sum / mean on wasm with ${what} in one column: as the cpu backend (${shape}, axis ${axis})`, async () => {
      const data = Float32Array.from({ length: tf.util.sizeFromShape(shape) }, (
        _,
        i,
      ) => Math.sin(i));
      const inner = shape[shape.length - 1];
      values.forEach((v, k) => (data[(k * 3 + 1) * inner + 2] = v)); // column 2 (and a few rows of it)
      for (const op of what.startsWith("overflow") ? [tf.sum] : [tf.sum, tf.mean]) {
        const got: Float32Array[] = [];
        for (const backend of ["wasm", "cpu"]) {
          await tf.setBackend(backend);
          const before = tf.memory().numTensors;
          const x = tf.tensor(data, shape);
          const y = op(x, axis);
          got.push(y.dataSync() as Float32Array);
          tf.dispose([x, y]);
          assert.equal(tf.memory().numTensors, before);
        }
        await tf.setBackend("wasm");
        assert.equal(got[0].length, got[1].length);
        const special = got[1].findIndex((v) => !Number.isFinite(v));
        assert.ok(special >= 0, "the cpu result has a non-finite value");
        for (let i = 0; i < got[0].length; i++) {
          if (Number.isFinite(got[1][i])) {
            assert.ok(Math.abs(got[0][i] - got[1][i]) <= 1e-4 * Math.max(1, Math.abs(got[1][i])));
          } else assert.ok(Object.is(got[0][i], got[1][i]), `${op.name}[${i}]: wasm ${got[0][i]}, cpu ${got[1][i]}`);
        }
      }
    });
  }
}

Deno.test("sum over a middle axis runs the pooled path (AvgPool), registered once", async () => {
  assert.deepEqual(registerCheckedReductions(), []);
  const x = tf.randomNormal([8, 1024, 64]);
  const info = await tf.profile(() => tf.sum(x, 1));
  tf.dispose(info.result as tf.Tensor);
  assert.ok(info.kernels.some((k) => k.name === "AvgPool"), info.kernels.map((k) => k.name).join(","));
  x.dispose();
});
