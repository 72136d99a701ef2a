// Per-input gradients of tf.fused.conv2d (lib/runtime/fused_conv_grad.ts): equal to tfjs's eager gradient for
// every input (strides 1-2, same/valid/explicit padding, with and without bias), and the input's gradient is
// not computed when the input is not a function of the variables. Run: deno test -A tests/fused_conv_grad_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { initBackend } from "../lib/runtime/backend.ts";
import { setLazyFusedConvGradients } from "../lib/runtime/fused_conv_grad.ts";

await initBackend({ backend: "wasm", quiet: true });

type Pad = "same" | "valid" | [[number, number], [number, number], [number, number], [number, number]];
const cases: [number[], number[], number, Pad, boolean][] = [
  [[2, 9, 11, 5], [3, 3, 5, 7], 1, "same", false],
  [[2, 9, 11, 5], [3, 3, 5, 7], 2, "same", true],
  [[1, 13, 9, 3], [7, 7, 3, 6], 2, "valid", true],
  [[2, 8, 9, 4], [1, 1, 4, 5], 2, [[0, 0], [1, 0], [0, 2], [0, 0]], false],
];

function grads(x: tf.Variable, f: tf.Variable, b: tf.Variable | null, strides: number, pad: Pad, lazy: boolean) {
  setLazyFusedConvGradients(lazy);
  try {
    const vars = [x, f, ...(b ? [b] : [])];
    const { value, grads } = tf.variableGrads(() => {
      const y = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides, pad, bias: b ?? undefined });
      return tf.sum(tf.mul(y, tf.sin(y))) as tf.Scalar; // a non-uniform dy
    }, vars);
    const out = vars.map((v) => Array.from(grads[v.name].dataSync()));
    tf.dispose([value, grads]);
    return out;
  } finally {
    setLazyFusedConvGradients(true);
  }
}

for (const [xs, fs, strides, pad, withBias] of cases) {
  Deno.test(
    `fused conv2d gradients = tfjs's: x ${xs} filter ${fs} stride ${strides} pad ${JSON.stringify(pad)}${
      withBias ? " bias" : ""
    }`,
    () => {
      const x = tf.variable(tf.randomNormal(xs, 0, 1, "float32", 1));
      const f = tf.variable(tf.randomNormal(fs, 0, 0.3, "float32", 2));
      const b = withBias ? tf.variable(tf.randomNormal([fs[3]], 0, 1, "float32", 3)) : null;
      const before = tf.memory().numTensors;
      const lazy = grads(x, f, b, strides, pad, true);
      const eager = grads(x, f, b, strides, pad, false);
      assert.equal(tf.memory().numTensors, before);
      assert.equal(lazy.length, withBias ? 3 : 2);
      for (let i = 0; i < lazy.length; i++) {
        assert.ok(eager[i].some((v) => v !== 0), `input ${i}: tfjs's gradient is all zeros`);
        let worst = 0;
        for (let j = 0; j < eager[i].length; j++) worst = Math.max(worst, Math.abs(lazy[i][j] - eager[i][j]));
        assert.ok(worst < 1e-5, `input ${i}: max |diff| ${worst}`);
      }
      tf.dispose([x, f, ...(b ? [b] : [])]);
    },
  );
}

Deno.test("a tfjs-layers Conv2D on an image: no input gradient computed, the filter's and bias' unchanged", async () => {
  const conv = tfl.layers.conv2d({ filters: 6, kernelSize: 5, strides: 2, padding: "same", useBias: true });
  const image = tf.randomNormal([2, 12, 10, 3], 0, 1, "float32", 4);
  conv.apply(image);
  const vars = conv.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const run = async (lazy: boolean) => {
    setLazyFusedConvGradients(lazy);
    let result: number[][] = [];
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(conv.apply(image) as tf.Tensor)) as tf.Scalar,
        vars,
      );
      result = vars.map((v) => Array.from(grads[v.name].dataSync()));
      tf.dispose([value, grads]);
    });
    setLazyFusedConvGradients(true);
    return { result, kernels: info.kernels.map((k) => k.name) };
  };
  const lazy = await run(true);
  const eager = await run(false);
  assert.ok(eager.kernels.includes("Conv2DBackpropInput"), "tfjs computes the image's gradient");
  assert.ok(!lazy.kernels.includes("Conv2DBackpropInput"), "the image's gradient is skipped");
  for (let i = 0; i < vars.length; i++) {
    for (let j = 0; j < eager.result[i].length; j++) {
      assert.ok(Math.abs(lazy.result[i][j] - eager.result[i][j]) < 1e-4);
    }
  }
  tf.dispose(image);
  conv.dispose();
});
