// Conv2DBackpropInput on wasm as one forward conv (lib/runtime/kernels/conv2d_backprop_input.ts):
// equal to the cpu backend's kernel for strides 1-3, same/valid/explicit/numeric padding, odd and
// even sizes; conv2dTranspose too. Run: deno test -A tests/conv_backprop_input_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import {
  conv2dBackpropInputViaConv,
  conv2dBackpropInputViaMatMul,
} from "../lib/runtime/kernels/conv2d_backprop_input.ts";
import { reverseLeadingAxis } from "../lib/runtime/kernels/reverse.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

type Pad = "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];
const cases: [number[], number[], number | [number, number], Pad][] = [
  [[2, 9, 11, 5], [3, 3, 5, 7], 1, "same"],
  [[2, 9, 11, 5], [3, 3, 5, 7], 2, "same"],
  [[2, 10, 8, 5], [3, 3, 5, 7], 2, "same"],
  [[1, 13, 9, 4], [7, 7, 4, 6], 2, "same"],
  [[2, 9, 11, 3], [3, 3, 3, 4], 2, "valid"],
  [[2, 12, 12, 6], [1, 1, 6, 8], 2, "valid"],
  [[2, 9, 11, 6], [1, 1, 6, 8], 2, "same"], // a ResNet downsample on odd sizes
  [[2, 8, 9, 4], [1, 1, 4, 5], [2, 3], [[0, 0], [1, 0], [0, 2], [0, 0]]],
  [[1, 11, 10, 3], [5, 3, 3, 2], [3, 2], "valid"],
  [[2, 8, 9, 4], [3, 3, 4, 5], 1, 1],
  [[1, 9, 9, 2], [4, 4, 2, 3], 3, [[0, 0], [2, 1], [0, 3], [0, 0]]],
  [[2, 7, 5, 2], [7, 7, 2, 1], 1, "same"], // CBAM's spatial conv
];

for (const [xs, fs, strides, pad] of cases) {
  Deno.test(`Conv2DBackpropInput wasm = cpu: x ${xs} filter ${fs} stride ${strides} pad ${JSON.stringify(pad)}`, async () => {
    const out: Float32Array[] = [];
    for (const backend of ["wasm", "cpu"]) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(rand(xs, 1), xs as [number, number, number, number]);
      const f = tf.tensor4d(rand(fs, 2), fs as [number, number, number, number]);
      const y = tf.conv2d(x, f, strides, pad);
      const dy = tf.tensor4d(rand(y.shape, 3), y.shape);
      const dx = tf.conv2dTranspose(dy, f, xs as [number, number, number, number], strides, pad);
      assert.deepEqual(dx.shape, xs);
      out.push(dx.dataSync() as Float32Array);
      tf.dispose([x, f, y, dy, dx]);
    }
    await tf.setBackend("wasm");
    let worst = 0;
    for (let i = 0; i < out[0].length; i++) worst = Math.max(worst, Math.abs(out[0][i] - out[1][i]));
    assert.ok(worst < 1e-5, `max |diff| ${worst}`);
  });
}

// Both paths directly (the kernel picks one by the output positions), against the cpu backend's kernel, with no
// tensors left behind; the ResNet-18 last-stage shape (8x2x2x512, 3x3 512->512) included.
const direct: [number[], number[], number | [number, number], Pad][] = [
  ...cases.filter(([, fs, , pad]) => typeof pad !== "number" && !(fs[0] === 1 && fs[1] === 1)),
  [[8, 2, 2, 64], [3, 3, 64, 48], 1, "same"],
  [[2, 4, 4, 16], [3, 3, 16, 32], 2, "same"],
];
for (const [xs, fs, strides, pad] of direct) {
  Deno.test(
    `conv2dBackpropInputViaMatMul / ViaConv = cpu: x ${xs} filter ${fs} stride ${strides} pad ${JSON.stringify(pad)}`,
    async () => {
      await tf.setBackend("cpu");
      const shape = xs as [number, number, number, number];
      const fc = tf.tensor4d(rand(fs, 2), fs as [number, number, number, number]);
      const yShape = tf.conv2d(tf.zeros(shape) as tf.Tensor4D, fc, strides, pad).shape;
      const dyc = tf.tensor4d(rand(yShape, 3), yShape);
      const want = tf.conv2dTranspose(dyc, fc, shape, strides, pad).dataSync();
      tf.dispose([fc, dyc]);
      await tf.setBackend("wasm");
      const f = tf.tensor4d(rand(fs, 2), fs as [number, number, number, number]);
      const dy = tf.tensor4d(rand(yShape, 3), yShape);
      const before = tf.memory().numTensors;
      for (const path of [conv2dBackpropInputViaMatMul, conv2dBackpropInputViaConv]) {
        const dx = path === conv2dBackpropInputViaMatMul
          ? conv2dBackpropInputViaMatMul(shape, dy, f, strides, pad as "same")
          : conv2dBackpropInputViaConv(shape, dy, f, strides, pad as "same");
        assert.deepEqual(dx.shape, xs);
        const got = dx.dataSync();
        dx.dispose();
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        assert.ok(worst < 1e-4, `${path.name}: max |diff| ${worst}`);
      }
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([f, dy]);
    },
  );
}

Deno.test("reverseLeadingAxis on wasm: slices in reverse order, no leak, other dtypes through tf.reverse", () => {
  const x = tf.tensor3d(rand([5, 3, 4], 7), [5, 3, 4]);
  const before = tf.memory().numTensors;
  const r = reverseLeadingAxis(x);
  assert.equal(tf.memory().numTensors, before + 1);
  const want = tf.reverse(x, 0);
  assert.deepEqual(Array.from(r.dataSync()), Array.from(want.dataSync()));
  assert.notDeepEqual(Array.from(r.dataSync()), Array.from(x.dataSync()));
  const i = tf.tensor2d([1, 2, 3, 4], [2, 2], "int32");
  const ri = reverseLeadingAxis(i);
  assert.deepEqual(Array.from(ri.dataSync()), [3, 4, 1, 2]);
  tf.dispose([x, r, want, i, ri]);
  assert.equal(tf.memory().numTensors, before - 1);
});
