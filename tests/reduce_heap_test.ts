// Sum / Mean on wasm as one heap pass (lib/runtime/kernels/reduce_heap.ts): bit-equal to
// tfjs-backend-wasm's own kernels, within float rounding of the cpu backend, for pooled and
// other axis patterns, keepDims, negative axes; NaN and Infinity propagate; no tensor leaks.
// Run: deno test -A tests/reduce_heap_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import "@tensorflow/tfjs-backend-wasm";
import { seededValues as rand } from "./support/tensors.ts";

// tfjs-backend-wasm's own kernels, before initBackend replaces them
const sumConfig = tf.getKernel("Sum", "wasm")!;
const meanConfig = tf.getKernel("Mean", "wasm")!;
await initBackend({ backend: "wasm", quiet: true });
assert.notEqual(tf.getKernel("Sum", "wasm"), sumConfig, "Sum was not replaced");
cpuBackend();

const cases: [number[], number | number[] | null, boolean][] = [
  [[8, 9, 7, 16], [0, 1, 2], false], // BatchNorm statistics
  [[8, 9, 7, 16], [1, 2], true], // global average pooling
  [[8, 9, 7, 16], [-3, -2], false],
  [[6, 20], 0, false], // a bias gradient
  [[5, 3, 4, 2], [0, 1, 2], true],
  [[3, 5, 11], [0, 1], false],
  [[2, 3, 4, 5], [1], false],
  [[7, 1, 3], [0], false],
  [[2, 3, 4, 5], [0, 2], false], // not contiguous: tfjs's kernel
  [[2, 3, 4, 5], [3], false], // last axis: tfjs's kernel
  [[3, 4, 5], null, false],
  [[4, 64, 64, 8], [0, 1, 2], false], // R = 16384
];

/** The values of `op(x)` on the current backend, as a plain array and shape. */
function reduce(
  op: "sum" | "mean",
  values: Float32Array,
  shape: number[],
  axis: number | number[] | null,
  keep: boolean,
) {
  const x = tf.tensor(values, shape);
  const y = tf[op](x, axis ?? undefined, keep);
  const got = { values: Array.from(y.dataSync()), shape: y.shape };
  tf.dispose([x, y]);
  return got;
}

for (const [shape, axis, keepDims] of cases) {
  for (const bad of [false, true]) {
    Deno.test(`heap sum / mean on wasm: ${shape} axis ${JSON.stringify(axis)} keepDims ${keepDims}${bad ? " NaN/Inf" : ""}`, async () => {
      const values = rand(shape, 5);
      if (bad) [values[1], values[values.length - 2], values[7]] = [NaN, Infinity, -Infinity];
      for (const op of ["sum", "mean"] as const) {
        await tf.setBackend("wasm");
        const start = tf.memory().numTensors;
        const ours = reduce(op, values, shape, axis, keepDims);
        assert.equal(tf.memory().numTensors, start, "tensors leaked");
        // tfjs-backend-wasm's own kernel, registered for the comparison
        const kernel = op === "sum" ? "Sum" : "Mean";
        const registered = tf.getKernel(kernel, "wasm")!;
        tf.unregisterKernel(kernel, "wasm");
        tf.registerKernel(op === "sum" ? sumConfig : meanConfig);
        let native;
        try {
          native = reduce(op, values, shape, axis, keepDims);
        } finally {
          tf.unregisterKernel(kernel, "wasm");
          tf.registerKernel(registered);
        }
        assert.deepEqual(ours.shape, native.shape);
        for (let i = 0; i < ours.values.length; i++) {
          assert.ok(
            Object.is(ours.values[i], native.values[i]),
            `${op}[${i}]: ${ours.values[i]} vs wasm's ${native.values[i]}`,
          );
        }
        await tf.setBackend("cpu");
        const cpu = reduce(op, values, shape, axis, keepDims);
        await tf.setBackend("wasm");
        for (let i = 0; i < ours.values.length; i++) {
          const a = ours.values[i], b = cpu.values[i];
          if (Number.isNaN(b) || !Number.isFinite(b)) assert.ok(Object.is(a, b), `${op}[${i}]: ${a} vs cpu's ${b}`);
          else {assert.ok(
              Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)) * Math.sqrt(values.length),
              `${op}[${i}]: ${a} vs cpu's ${b}`,
            );}
        }
      }
    });
  }
}
