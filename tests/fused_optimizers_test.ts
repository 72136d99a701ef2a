// The fused optimizers (lib/train/fused_optimizers.ts): bit-equal to tfjs's momentum /
// adam on wasm (the SIMD pass) and on cpu (tfjs's ops), with shared storage (a reshape), NaN and
// Infinity in the gradient, a null gradient, and no tensor leaks.
// Run: deno test -A tests/fused_optimizers_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import * as fused from "../lib/train/fused_optimizers.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

// tfjs's update ops run Add on every variable; the SIMD pass runs none
let kernelCalls = 0;
for (const backend of ["wasm", "cpu"]) {
  const add = tf.getKernel("Add", backend)!;
  tf.unregisterKernel("Add", backend);
  tf.registerKernel({ ...add, kernelFunc: (args) => (kernelCalls++, add.kernelFunc(args)) });
}

const shapes = [[3, 3, 5, 7], [7], [13, 5], [1]];

type Make = () => tf.Optimizer;
const kinds: [string, Make, Make][] = [
  ["momentum", () => tf.train.momentum(0.01, 0.9), () => fused.momentum(0.01, 0.9)],
  ["nesterov", () => tf.train.momentum(0.03, 0.7, true), () => fused.momentum(0.03, 0.7, true)],
  ["adam", () => tf.train.adam(0.01), () => fused.adam(0.01)],
  ["adam beta", () => tf.train.adam(0.003, 0.8, 0.99, 1e-4), () => fused.adam(0.003, 0.8, 0.99, 1e-4)],
];

/** Weights and slots after `steps` updates with seeded gradients (optionally NaN / Inf in them). */
async function run(make: Make, steps: number, opts: { shared?: boolean; bad?: boolean; skip?: boolean } = {}) {
  const vars = shapes.map((s, i) =>
    tf.tidy(() => tf.variable(tf.tensor(rand(s, 10 + i), s), true, `w${i}_${crypto.randomUUID()}`))
  );
  const held = opts.shared ? vars.map((v) => tf.reshape(v, [v.size])) : []; // same storage
  const before = held.map((t) => Array.from(t.dataSync()));
  const opt = make();
  kernelCalls = 0;
  for (let step = 0; step < steps; step++) {
    const grads = vars.map((v, i) => {
      const g = rand(v.shape, 100 + step * 10 + i);
      if (opts.bad && i === 0) {
        g[1] = NaN;
        g[4] = Infinity;
      }
      return { name: v.name, tensor: tf.tensor(g, v.shape) };
    });
    if (opts.skip) grads[1].tensor.dispose(), grads[1] = { name: vars[1].name, tensor: null as unknown as tf.Tensor };
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor).filter((t) => t != null));
  }
  const weights = vars.map((v) => Array.from(v.dataSync()));
  // the SIMD pass ran (it writes new tensors; tfjs's ops would have run the kernels counted here)
  const fused = kernelCalls === 0;
  const saved = await opt.getWeights(); // [iterations (a new scalar), slots...]
  const slots = saved.map((w) => Array.from(w.tensor.dataSync()));
  saved[0].tensor.dispose();
  // a reshape made before the updates keeps its values
  held.forEach((t, i) =>
    assert.deepEqual(Array.from(t.dataSync()), before[i], "a tensor sharing a variable's storage changed")
  );
  tf.dispose([...vars, ...held]);
  opt.dispose();
  return { weights, slots, fused };
}

function same(a: number[][], b: number[][], what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    for (let k = 0; k < a[i].length; k++) {
      assert.ok(Object.is(a[i][k], b[i][k]), `${what}[${i}][${k}]: ${a[i][k]} vs ${b[i][k]}`);
    }
  }
}

for (const [name, reference, ours] of kinds) {
  for (const backend of ["wasm", "cpu"]) {
    for (const opts of [{}, { shared: true }, { bad: true }, { skip: true }]) {
      Deno.test(`fused ${name} = tfjs's on ${backend} ${JSON.stringify(opts)}`, async () => {
        await tf.setBackend(backend);
        // tfjs's MomentumOptimizer.dispose keeps its learning-rate scalar: count leaks against tfjs's
        const start = tf.memory().numTensors;
        const a = await run(reference, 5, opts);
        const middle = tf.memory().numTensors;
        const b = await run(ours, 5, opts);
        assert.equal(tf.memory().numTensors - middle, middle - start, "tensors leaked");
        assert.ok(middle - start <= 1, `tfjs's optimizer left ${middle - start} tensors`);
        same(b.weights, a.weights, "weights");
        same(b.slots, a.slots, "slots");
        assert.equal(b.fused, backend === "wasm" && name !== "nesterov", "the SIMD pass ran where it can");
        await tf.setBackend("wasm");
      });
    }
  }
}
