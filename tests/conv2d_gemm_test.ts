// Conv2D / FusedConv2D with few positions on wasm as W^T cols^T (lib/runtime/kernels/conv2d_gemm.ts),
// the filter gradient as cols^T dy, and the heap transpose2d they use: the route runs where it
// should, equals the cpu backend (odd, non-square shapes, batch > 1, same / valid / explicit
// padding, strides 1, 2 and [2, 1]), propagates NaN, leaves gradients unchanged, leaks nothing.
// Run: deno test -A tests/conv2d_gemm_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers the gradients
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { wasmGemmConv2DKernel } from "../lib/runtime/kernels/conv2d_gemm.ts";
import { transpose2d } from "../lib/runtime/kernels/transpose.ts";
import { seededValues as rand } from "./support/tensors.ts";

await initBackend({ backend: "wasm", quiet: true });
cpuBackend();

type Pad = "same" | "valid" | [[number, number], [number, number], [number, number], [number, number]];
type Strides = number | [number, number];
const cases: [number[], number[], Pad, Strides][] = [
  [[2, 2, 1, 24], [3, 2, 24, 40], "same", 1], // 4 positions, 40 outputs
  [[3, 3, 2, 16], [2, 2, 16, 48], "valid", 1], // 6 positions
  [[2, 2, 3, 8], [3, 3, 8, 64], [[0, 0], [1, 0], [2, 1], [0, 0]], 1], // 8 positions
  [[8, 2, 2, 64], [3, 3, 64, 256], "same", 1], // ResNet's last stage, narrowed
  [[2, 3, 4, 8], [3, 3, 8, 128], "same", 2], // stride 2, odd input
  [[2, 5, 4, 8], [3, 2, 8, 96], "valid", 2],
  [[2, 4, 2, 8], [3, 3, 8, 128], "same", [2, 1]],
  [[8, 4, 4, 32], [3, 3, 32, 256], "same", 2], // ResNet's stride-2 3x3 into the last stage, narrowed
];

/** The fused conv on the current backend, as plain values. */
function conv(
  x: Float32Array,
  xs: number[],
  w: Float32Array,
  ws: number[],
  pad: Pad,
  strides: Strides,
  fused: boolean,
) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, xs as [number, number, number, number]),
      wt = tf.tensor4d(w, ws as [number, number, number, number]);
    const y = fused ? tf.fused.conv2d({ x: xt, filter: wt, strides, pad }) : tf.conv2d(xt, wt, strides, pad);
    return { values: Array.from(y.dataSync()), shape: y.shape };
  });
}

for (const [xs, ws, pad, strides] of cases) {
  Deno.test(`gemm conv on wasm = cpu: x ${xs} w ${ws} pad ${JSON.stringify(pad)} strides ${strides}`, async () => {
    const x = rand(xs, 1), w = rand(ws, 2);
    x[3] = NaN;
    for (const fused of [true, false]) {
      await tf.setBackend("cpu");
      const want = conv(x, xs, w, ws, pad, strides, fused);
      await tf.setBackend("wasm");
      const start = tf.memory().numTensors;
      const got = conv(x, xs, w, ws, pad, strides, fused);
      assert.equal(tf.memory().numTensors, start, "tensors leaked");
      assert.deepEqual(got.shape, want.shape);
      let nan = 0;
      for (let i = 0; i < got.values.length; i++) {
        const a = got.values[i], b = want.values[i];
        if (Number.isNaN(b)) {
          assert.ok(Number.isNaN(a), `[${i}]: ${a}, cpu NaN`);
          nan++;
        } else assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `[${i}]: ${a} vs cpu ${b}`);
      }
      assert.ok(nan > 0, "the NaN input reached no output");
    }
  });
}

Deno.test("gemm conv: the route runs for few positions per output channel, the native kernel otherwise", () => {
  let nativeCalls = 0;
  const native = tf.getKernel("FusedConv2D", "wasm")!;
  const counted = wasmGemmConv2DKernel({ ...native, kernelFunc: (a) => (nativeCalls++, native.kernelFunc(a)) });
  const run = (xs: number[], ws: number[], strides = 1) => {
    const x = tf.tensor(rand(xs, 3), xs), w = tf.tensor(rand(ws, 4), ws);
    const info = counted.kernelFunc({
      inputs: { x, filter: w },
      backend: tf.backend(),
      attrs: { strides, pad: "same", dataFormat: "NHWC", dilations: 1, activation: "linear" },
    }) as tf.TensorInfo;
    tf.dispose([x, w]);
    tf.backend().disposeData(info.dataId);
  };
  run([8, 2, 2, 64], [3, 3, 64, 256]);
  assert.equal(nativeCalls, 0, "32 positions, 256 outputs: the product");
  run([8, 8, 8, 16], [3, 3, 16, 32]);
  assert.equal(nativeCalls, 1, "512 positions, 32 outputs: native");
  run([8, 4, 4, 64], [3, 3, 64, 256], 2);
  assert.equal(nativeCalls, 1, "stride 2, 32 positions: the product");
  run([8, 2, 2, 64], [1, 1, 64, 256]);
  assert.equal(nativeCalls, 2, "1x1: native");
});

Deno.test("gemm conv: gradients through the fused conv equal cpu's", async () => {
  const xs = [4, 2, 3, 16], ws = [3, 3, 16, 128];
  const grads: number[][][] = [];
  for (const backend of ["wasm", "cpu"]) {
    await tf.setBackend(backend);
    const x = tf.tensor(rand(xs, 5), xs), w = tf.tensor(rand(ws, 6), ws);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(tf.fused.conv2d({ x: a as tf.Tensor4D, filter: b as tf.Tensor4D, strides: 1, pad: "same" })))
    )([x, w]);
    grads.push(g.map((t) => Array.from(t.dataSync())));
    tf.dispose([x, w, ...g]);
  }
  await tf.setBackend("wasm");
  for (let k = 0; k < 2; k++) {
    for (let i = 0; i < grads[0][k].length; i++) {
      const a = grads[0][k][i], b = grads[1][k][i];
      assert.ok(Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(b)), `grad ${k}[${i}]: ${a} vs cpu ${b}`);
    }
  }
});

Deno.test("transpose2d on wasm equals tf.transpose (block edges, NaN)", () => {
  for (const shape of [[1, 1], [17, 5], [33, 48], [5, 40]] as [number, number][]) {
    const values = rand(shape, 9);
    values[0] = NaN;
    const x = tf.tensor2d(values, shape);
    const start = tf.memory().numTensors;
    const a = transpose2d(x), b = tf.transpose(x);
    assert.deepEqual(a.shape, b.shape);
    const av = Array.from(a.dataSync()), bv = Array.from(b.dataSync());
    assert.ok(av.every((v, i) => Object.is(v, bv[i])), `${shape}`);
    tf.dispose([a, b]);
    assert.equal(tf.memory().numTensors, start);
    x.dispose();
  }
});

for (const [xs, ws, pad, strides] of cases) {
  Deno.test(`gemm filter gradient on wasm = cpu: x ${xs} w ${ws} pad ${JSON.stringify(pad)} strides ${strides}`, async () => {
    const x = rand(xs, 7);
    x[5] = NaN;
    const out: number[][] = [];
    for (const backend of ["wasm", "cpu"]) {
      await tf.setBackend(backend);
      const start = tf.memory().numTensors;
      const dw = tf.tidy(() => {
        const xt = tf.tensor4d(x, xs as [number, number, number, number]);
        const probe = tf.conv2d(xt, tf.zeros(ws as [number, number, number, number]), strides, pad);
        const dy = tf.tensor(rand(probe.shape, 8), probe.shape);
        return tf.engine().runKernel(
          "Conv2DBackpropFilter",
          { x: xt, dy },
          { strides, pad, dataFormat: "NHWC", filterShape: ws } as unknown as tf.NamedAttrMap,
        ) as tf.Tensor;
      });
      out.push(Array.from(dw.dataSync()));
      dw.dispose();
      assert.equal(tf.memory().numTensors, start, "tensors leaked");
    }
    await tf.setBackend("wasm");
    let nan = 0;
    for (let i = 0; i < out[0].length; i++) {
      const a = out[0][i], b = out[1][i];
      if (Number.isNaN(b)) {
        assert.ok(Number.isNaN(a), `[${i}]: ${a}, cpu NaN`);
        nan++;
      } else assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `[${i}]: ${a} vs cpu ${b}`);
    }
    assert.ok(nan > 0, "the NaN input reached no output");
  });
}
