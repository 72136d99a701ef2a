/**
 * Finite-difference checks of the gradients of the kernels training runs through, on wasm (with
 * the kernels attnkit registers or replaces there: Conv2DBackpropInput/Filter as forward convs,
 * the depthwise backprops, BatchMatMul, ResizeBilinearGrad, the FusedBatchNorm and Max/Min
 * gradients, the cpu fall-backs) and on cpu: odd, non-square shapes, batch 3, channels that are not
 * multiples of 4, stride 2, 'same' padding, dilation. Each case is f(x...) = sum(op(x...) * w) with a
 * fixed random w; `gradCheck` compares g . d with a central difference along random directions,
 * along each input alone, and along the gradient itself.
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers tfjs-core's gradients
import assert from "node:assert/strict";
import { initBackend } from "../lib/runtime/backend.ts";
import { adaptiveAvgPool2d, adaptiveMaxPool2d } from "../lib/ops/adaptive_pool.ts";
import { conv2dTorch } from "../lib/ops/conv2d_torch.ts";
import { resizeNearestTorch } from "../lib/ops/resize_nearest.ts";
import { avgPool2dTorch, maxPool2dTorch } from "../lib/ops/window_pool.ts";
import { gradCheck } from "./support/grad_check.ts";

await initBackend({ quiet: true });
const BACKENDS = ["wasm", "cpu"].filter((b) => tf.findBackend(b) != null || tf.engine().registryFactory[b] != null);

/** sum(y * w), w fixed (seeded) for y's shape. */
function weighted(y: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, "float32", 99)));
}

/** Seeded normal input. */
const rn = (shape: number[], seed: number, std = 1) => tf.randomNormal(shape, 0, std, "float32", seed);

/** A gradient case: inputs, and the scalar function of them. */
interface Case {
  inputs: () => tf.Tensor[];
  f: (...xs: tf.Tensor[]) => tf.Scalar;
  /** Allowed error (relative to |g|). Default 2e-3. */
  tol?: number;
}

const conv = (
  xs: number[],
  fs: number[],
  strides: number,
  pad: "same" | "valid",
  dilation = 1,
): Case => ({
  inputs: () => [rn(xs, 1), rn(fs, 2, 0.5)],
  f: (x, w) => weighted(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, strides, pad, "NHWC", dilation)),
});

const depthwise = (xs: number[], fs: number[], strides: number, pad: "same" | "valid", dilation = 1): Case => ({
  inputs: () => [rn(xs, 3), rn(fs, 4, 0.5)],
  f: (x, w) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, strides, pad, "NHWC", dilation)),
});

const CASES: Record<string, Case> = {
  "conv2d 3x3 stride 1 same, 5->6 channels, 7x9": conv([3, 7, 9, 5], [3, 3, 5, 6], 1, "same"),
  "conv2d 3x3 stride 2 same, odd 7x9": conv([3, 7, 9, 5], [3, 3, 5, 6], 2, "same"),
  "conv2d 3x3 stride 2 valid, 8x9": conv([3, 8, 9, 5], [3, 3, 5, 6], 2, "valid"),
  "conv2d 7x7 stride 2 same (a ResNet stem), 11x13x3": conv([3, 11, 13, 3], [7, 7, 3, 6], 2, "same"),
  "conv2d 1x1 stride 2 (a projection shortcut), 7x9": conv([3, 7, 9, 5], [1, 1, 5, 7], 2, "valid"),
  "conv2d 2x4 kernel stride 2 same, 6x7": conv([3, 6, 7, 5], [2, 4, 5, 3], 2, "same"),
  // (tf.conv2d and tf.depthwiseConv2d have no gradient for dilation > 1 in tfjs 4.22: they throw;
  // attnkit's dilated convolutions go through conv2dTorch's phase decomposition)
  "conv2dTorch dilation 2 padding 2, 7x9": {
    inputs: () => [rn([3, 7, 9, 5], 50), rn([3, 3, 5, 6], 51, 0.5)],
    f: (x, w) => weighted(conv2dTorch(x as tf.Tensor4D, w as tf.Tensor4D, undefined, { padding: 2, dilation: 2 })),
  },
  "conv2dTorch dilation 3 stride 2 padding 1 groups 3, 11x10": {
    inputs: () => [rn([3, 11, 10, 6], 52), rn([3, 3, 2, 3], 53, 0.5)],
    f: (x, w) =>
      weighted(
        conv2dTorch(x as tf.Tensor4D, w as tf.Tensor4D, undefined, { stride: 2, padding: 1, dilation: 3, groups: 3 }),
      ),
  },
  "conv2dTorch padding 1 stride 2 groups 2, 7x9": {
    inputs: () => [rn([3, 7, 9, 6], 5), rn([3, 3, 3, 4], 6, 0.5)],
    f: (x, w) =>
      weighted(conv2dTorch(x as tf.Tensor4D, w as tf.Tensor4D, undefined, { stride: 2, padding: 1, groups: 2 })),
  },
  "depthwise 3x3 stride 1 same, 5 channels": depthwise([3, 7, 9, 5], [3, 3, 5, 1], 1, "same"),
  "depthwise 3x3 stride 2 same, multiplier 2": depthwise([3, 7, 9, 5], [3, 3, 5, 2], 2, "same"),
  "depthwise 3x3 stride 2 valid, 8x9": depthwise([3, 8, 9, 5], [3, 3, 5, 1], 2, "valid"),
  "batchNorm with batch statistics (training), 3x5x7x6": {
    inputs: () => [rn([3, 5, 7, 6], 7), tf.add(rn([6], 8, 0.3), 1), rn([6], 9, 0.3)],
    f: (x, gamma, beta) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return weighted(tf.batchNorm(x, mean, variance, beta, gamma, 1e-5));
    },
  },
  "batchNorm with fixed statistics (inference), 3x5x7x6": {
    inputs: () => [rn([3, 5, 7, 6], 10), rn([6], 11), tf.add(tf.abs(rn([6], 12)), 0.5), rn([6], 13), rn([6], 14)],
    f: (x, mean, variance, gamma, beta) => weighted(tf.batchNorm(x, mean, variance, beta, gamma, 1e-3)),
  },
  "max over H,W keepDims (CBAM's pool), 3x5x7x6": {
    inputs: () => [rn([3, 5, 7, 6], 15)],
    f: (x) => weighted(tf.max(x, [1, 2], true)),
  },
  "min over channels, 3x5x7x6": { inputs: () => [rn([3, 5, 7, 6], 16)], f: (x) => weighted(tf.min(x, 3)) },
  "max over everything": { inputs: () => [rn([3, 5, 7], 17)], f: (x) => tf.mul(tf.max(x), 2.5) as tf.Scalar },
  "maxPool 3x3 stride 2 same, 7x9": {
    inputs: () => [rn([3, 7, 9, 5], 18)],
    f: (x) => weighted(tf.maxPool(x as tf.Tensor4D, 3, 2, "same")),
  },
  "avgPool 3x3 stride 2 same, 7x9": {
    inputs: () => [rn([3, 7, 9, 5], 19)],
    f: (x) => weighted(tf.avgPool(x as tf.Tensor4D, 3, 2, "same")),
  },
  "maxPool2dTorch 3x3 stride 2 padding 1 (ResNet's), 7x9": {
    inputs: () => [rn([3, 7, 9, 5], 20)],
    f: (x) => weighted(maxPool2dTorch(x as tf.Tensor4D, 3, 2, 1)),
  },
  "avgPool2dTorch 3x3 stride 2 padding 1, 7x9": {
    inputs: () => [rn([3, 7, 9, 5], 21)],
    f: (x) => weighted(avgPool2dTorch(x as tf.Tensor4D, 3, 2, 1)),
  },
  "adaptive avg pool 7x9 -> 3x2": {
    inputs: () => [rn([3, 7, 9, 5], 22)],
    f: (x) => weighted(adaptiveAvgPool2d(x as tf.Tensor4D, 3, 2)),
  },
  "adaptive max pool 7x9 -> 3x2": {
    inputs: () => [rn([3, 7, 9, 5], 23)],
    f: (x) => weighted(adaptiveMaxPool2d(x as tf.Tensor4D, 3, 2)),
  },
  "matMul batched 3x5x7 . 3x7x4": {
    inputs: () => [rn([3, 5, 7], 24), rn([3, 7, 4], 25)],
    f: (a, b) => weighted(tf.matMul(a, b)),
  },
  "matMul batched transposeA transposeB": {
    inputs: () => [rn([3, 7, 5], 26), rn([3, 4, 7], 27)],
    f: (a, b) => weighted(tf.matMul(a, b, true, true)),
  },
  "matMul batched single row 3x1x7 . 3x7x5": {
    inputs: () => [rn([3, 1, 7], 28), rn([3, 7, 5], 29)],
    f: (a, b) => weighted(tf.matMul(a, b)),
  },
  "matMul batched single column 3x5x7 . 3x7x1": {
    inputs: () => [rn([3, 5, 7], 30), rn([3, 7, 1], 31)],
    f: (a, b) => weighted(tf.matMul(a, b)),
  },
  "resizeBilinear 5x7 -> 9x12": {
    inputs: () => [rn([3, 5, 7, 5], 34)],
    f: (x) => weighted(tf.image.resizeBilinear(x as tf.Tensor4D, [9, 12])),
  },
  "resizeBilinear 5x7 -> 9x12 align corners": {
    inputs: () => [rn([3, 5, 7, 5], 35)],
    f: (x) => weighted(tf.image.resizeBilinear(x as tf.Tensor4D, [9, 12], true)),
  },
  "resizeBilinear 5x7 -> 9x12 half-pixel centres": {
    inputs: () => [rn([3, 5, 7, 5], 36)],
    f: (x) => weighted(tf.image.resizeBilinear(x as tf.Tensor4D, [9, 12], false, true)),
  },
  "resizeBilinear 9x12 -> 4x5 half-pixel centres (down)": {
    inputs: () => [rn([3, 9, 12, 5], 37)],
    f: (x) => weighted(tf.image.resizeBilinear(x as tf.Tensor4D, [4, 5], false, true)),
  },
  "resizeNearestTorch 5x7 -> 10x14 and 5x7 -> 8x9": {
    inputs: () => [rn([3, 5, 7, 5], 38)],
    f: (x) =>
      tf.add(
        weighted(resizeNearestTorch(x as tf.Tensor4D, 10, 14)),
        weighted(resizeNearestTorch(x as tf.Tensor4D, 8, 9)),
      ) as tf.Scalar,
  },
  "sum and mean over leading axes, 3x5x7x6": {
    inputs: () => [rn([3, 5, 7, 6], 39)],
    f: (x) => tf.add(weighted(tf.sum(x, [0, 1, 2])), weighted(tf.mean(x, [1, 2]))) as tf.Scalar,
  },
  "softmax, sigmoid, div, rsqrt": {
    inputs: () => [rn([3, 5, 7], 40), tf.add(tf.abs(rn([3, 5, 7], 41)), 0.5)],
    f: (a, b) =>
      tf.addN([weighted(tf.softmax(a)), weighted(tf.div(tf.sigmoid(a), b)), weighted(tf.rsqrt(b))]) as tf.Scalar,
  },
};

for (const backend of BACKENDS) {
  for (const [name, c] of Object.entries(CASES)) {
    Deno.test(`gradient = finite difference on ${backend}: ${name}`, async () => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const xs = tf.tidy(() => c.inputs());
      const checks = gradCheck(c.f, xs);
      tf.dispose(xs);
      assert.equal(tf.memory().numTensors, before, "tensors left behind");
      const worst = checks[0];
      assert.ok(
        worst.error < (c.tol ?? 2e-3),
        `${name} on ${backend}: along ${worst.direction} the gradient says ${worst.analytic.toPrecision(6)}, ` +
          `a central difference (step ${worst.eps}) ${worst.numeric.toPrecision(6)}: error ${
            worst.error.toExponential(2)
          }`,
      );
    });
  }
}

/** `run` on wasm (it must leave no tensor behind), then on cpu: `[wasm's result, cpu's]`. */
async function onWasmThenCpu<T>(run: () => T): Promise<[T, T]> {
  await tf.setBackend("wasm");
  const before = tf.memory().numTensors;
  const wasm = run();
  assert.equal(tf.memory().numTensors, before, "tensors left behind");
  await tf.setBackend("cpu");
  return [wasm, run()];
}

/**
 * The first index where `wasm` and `cpu` differ by more than float rounding (1e-6 relative to cpu's
 * value), or -1: the max-pool gradients add overlapping windows' shares in another order than cpu's.
 */
function firstMismatch(wasm: number[], cpu: number[]): number {
  return wasm.findIndex((v, j) => !(Math.abs(v - cpu[j]) <= 1e-6 * Math.max(1, Math.abs(cpu[j]))));
}

Deno.test("max pooling over windows of negative values and zeros: wasm = cpu (forward, argmax, gradient)", async () => {
  // tfjs-backend-wasm's MaxPoolGrad / MaxPool3D / MaxPool3DGrad / MaxPoolWithArgmax started each window at
  // 2^-126 (the smallest positive float): a window with no value above it lost its gradient (and MaxPool3D
  // returned 2^-126). Random signs give both kinds of window; a relu gives all-zero ones.
  const run = () =>
    tf.tidy(() => {
      const x = tf.randomNormal([2, 7, 9, 3], -0.3, 1, "float32", 42);
      const x5 = tf.transpose(tf.reshape(tf.neg(tf.abs(x)), [2, 7, 9, 3, 1]), [0, 4, 1, 2, 3]) as tf.Tensor5D;
      const w = tf.randomNormal([2, 4, 5, 3], 0, 1, "float32", 43);
      const w3 = tf.randomNormal([2, 1, 3, 4, 3], 0, 1, "float32", 44);
      const g2 = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 3, 2, "same"), w)))(x);
      const gRelu = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(tf.relu(t) as tf.Tensor4D, 3, 2, "same"), w)))(
        x,
      );
      const g3 = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(tf.maxPool3d(t as tf.Tensor5D, [1, 2, 2], [1, 2, 2], "valid"), w3))
      )(
        x5,
      );
      // odd sides with 2x2 'valid' windows (the last row and column belong to none), overlapping 3x3 stride-1 windows
      const gValid = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(tf.maxPool(tf.relu(t) as tf.Tensor4D, 2, 2, "valid"), tf.slice(w, [0, 0, 0, 0], [2, 3, 4, 3])))
      )(x);
      const gOverlap = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 3, 1, "same"), tf.slice(tf.tile(w, [1, 2, 2, 1]), 0, [2, 7, 9, 3])))
      )(x);
      const y3 = tf.maxPool3d(x5, [1, 2, 2], [1, 2, 2], "valid");
      const am = tf.maxPoolWithArgmax(tf.neg(tf.abs(x)) as tf.Tensor4D, 2, 2, "valid");
      return [g2, gRelu, g3, y3, am.result, gValid, gOverlap, am.indexes].map((t) => Array.from(t.dataSync()));
    });
  const [wasm, cpu] = await onWasmThenCpu(run);
  const names = [
    "maxPool gradient",
    "maxPool of a relu gradient",
    "maxPool3d gradient",
    "maxPool3d",
    "argmax values",
    "2x2 valid maxPool of a relu gradient (odd sides)",
    "3x3 stride-1 maxPool gradient",
  ];
  names.forEach((name, i) => {
    const at = firstMismatch(wasm[i], cpu[i]);
    assert.equal(at, -1, `${name}: wasm differs from cpu at ${at}: ${wasm[i][at]} vs ${cpu[i][at]}`);
  });
  assert.deepEqual(wasm[7], cpu[7], `argmax indices ${wasm[7].slice(0, 8)} vs ${cpu[7].slice(0, 8)}`);
  // every window routes its dy somewhere: the gradient sums to sum(w)
  assert.ok(wasm[0].some((v) => v !== 0));
});

Deno.test("maxPool gradient on wasm = cpu over pool geometries, ties and padding", async () => {
  // wasm's MaxPoolGrad is attnkit's pass over the heap (max_pool_grad.ts): the first maximum of each
  // window in row-major order must get its gradient, as cpu's kernel gives it, for every geometry
  const cases: [number | [number, number], number | [number, number], "same" | "valid" | number][] = [
    [3, 2, "same"],
    [3, 2, "valid"],
    [2, 2, "valid"],
    [3, 1, "same"],
    [2, 1, "valid"],
    [3, 3, "same"],
    [[2, 3], [1, 2], "same"],
    [1, 2, "valid"],
    [3, 2, 1],
  ];
  const run = () =>
    tf.tidy(() =>
      cases.map(([k, s, pad]) => {
        // rounded values: many ties; a relu: all-zero windows; negatives elsewhere
        const x = tf.round(tf.mul(tf.randomNormal([2, 7, 9, 3], -0.3, 1, "float32", 7), 2));
        const y0 = tf.maxPool(x as tf.Tensor4D, k, s, pad);
        const w = tf.randomNormal(y0.shape, 0, 1, "float32", 8);
        const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, k, s, pad), w));
        const g = tf.grad(f)(x);
        const gRelu = tf.grad((t: tf.Tensor) => f(tf.relu(t)))(x);
        return [Array.from(g.dataSync()), Array.from(gRelu.dataSync())];
      })
    );
  const [wasm, cpu] = await onWasmThenCpu(run);
  cases.forEach((c, i) => {
    for (const j of [0, 1]) {
      const at = firstMismatch(wasm[i][j], cpu[i][j]);
      assert.equal(
        at,
        -1,
        `maxPool ${JSON.stringify(c)}${j ? " of a relu" : ""}: wasm ${wasm[i][j][at]}, cpu ${cpu[i][j][at]} at ${at}`,
      );
    }
  });
});

for (const backend of BACKENDS) {
  Deno.test(`max / min over ties on ${backend}: a step along the gradient changes them by what g . g says`, async () => {
    // ties are common: a global max pool of an upsampled map (4 copies of each value), a min over
    // duplicated channels. tfjs gives every tied entry the whole dy (k times the true change).
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const [base, up, dup] = tf.tidy(() => {
      const base = tf.randomNormal([3, 4, 5, 3], 0, 1, "float32", 60);
      return [base, resizeNearestTorch(base as tf.Tensor4D, 8, 10), tf.concat([base, base, tf.add(base, 1)], 3)];
    });
    const cases: [string, tf.Tensor, (t: tf.Tensor) => tf.Scalar][] = [
      ["global max of a 2x nearest upsampling", up, (t) => weighted(tf.max(t, [1, 2], true))],
      ["min over duplicated channels", dup, (t) => weighted(tf.min(t, 3))],
      ["max over everything", up, (t) => tf.mul(tf.max(t), 1.5) as tf.Scalar],
    ];
    for (const [name, x, f] of cases) {
      const [check] = gradCheck(f, [x], { randomDirections: 0 });
      assert.equal(check.direction, "gradient");
      assert.ok(
        check.error < 2e-3,
        `${name} on ${backend}: the gradient says ${check.analytic.toPrecision(6)} along itself, a central ` +
          `difference ${check.numeric.toPrecision(6)}`,
      );
    }
    tf.dispose([base, up, dup]);
    assert.equal(tf.memory().numTensors, before, "tensors left behind");
  });
}
