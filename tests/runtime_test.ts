// Tests for lib/runtime: backend choice and the training kernels on wasm/cpu.
// Run: deno test -A tests/runtime_test.ts
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { initBackend } from "../lib/runtime/backend.ts";
import { cpuBackend } from "../lib/runtime/kernels/cpu_fallback.ts";
import { originalCpuKernel, registerTrainingKernels } from "../lib/runtime/kernels/register.ts";
import { seededValues as rand } from "./support/tensors.ts";

type Shape4 = [number, number, number, number];
type Pad = "same" | "valid" | number | [
  [number, number],
  [number, number],
  [number, number],
  [number, number],
];

// Loads wasm and registers every kernel; later tests flip with tf.setBackend.
await initBackend({ backend: "wasm", quiet: true });
cpuBackend(); // no "install tfjs-node" banner

// ---------------------------------------------------------------- helpers --

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "length mismatch");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
) {
  const d = maxAbsDiff(got, want);
  assert.ok(d <= tol, `${what}: max |diff| ${d} > ${tol}`);
}

/** tfjs conv geometry, written out independently of tfjs (1-D). */
function geometry(inSize: number, k: number, s: number, pad: Pad, axis: 1 | 2) {
  if (pad === "same") {
    const out = Math.ceil(inSize / s);
    const total = Math.max((out - 1) * s + k - inSize, 0);
    return { out, before: Math.floor(total / 2) };
  }
  if (pad === "valid") {
    return { out: Math.ceil((inSize - k + 1) / s), before: 0 };
  }
  if (typeof pad === "number") {
    return { out: Math.floor((inSize - k + 2 * pad) / s + 1), before: pad };
  }
  const [b, a] = pad[axis];
  return { out: Math.floor((inSize + b + a - k) / s + 1), before: b };
}

/** Naive NHWC filter gradient: dW[kh,kw,ci,co] (depthwise: co = c*M+m). */
function naiveFilterGrad(
  x: Float32Array,
  xs: Shape4,
  dy: Float32Array,
  fs: Shape4,
  s: number,
  pad: Pad,
  depthwise: boolean,
): Float32Array {
  const [n, h, w, cin] = xs;
  const [kh, kw] = fs;
  const gh = geometry(h, kh, s, pad, 1), gw = geometry(w, kw, s, pad, 2);
  const cout = depthwise ? cin * fs[3] : fs[3];
  const out = new Float32Array(size(fs));
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      for (let bi = 0; bi < n; bi++) {
        for (let i = 0; i < gh.out; i++) {
          const r = i * s + a - gh.before;
          if (r < 0 || r >= h) continue;
          for (let j = 0; j < gw.out; j++) {
            const c = j * s + b - gw.before;
            if (c < 0 || c >= w) continue;
            const xo = ((bi * h + r) * w + c) * cin;
            const dyo = ((bi * gh.out + i) * gw.out + j) * cout;
            for (let co = 0; co < cout; co++) {
              const ci = depthwise ? Math.floor(co / fs[3]) : 0;
              if (depthwise) {
                out[((a * kw + b) * cin + ci) * fs[3] + (co % fs[3])] += x[xo + ci] * dy[dyo + co];
              } else {
                for (let k = 0; k < cin; k++) {
                  out[((a * kw + b) * cin + k) * cout + co] += x[xo + k] *
                    dy[dyo + co];
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

/** Naive NHWC depthwise input gradient. */
function naiveDepthwiseInputGrad(
  xs: Shape4,
  dy: Float32Array,
  f: Float32Array,
  fs: Shape4,
  s: number,
  pad: Pad,
): Float32Array {
  const [n, h, w, c] = xs;
  const [kh, kw, , m] = fs;
  const gh = geometry(h, kh, s, pad, 1), gw = geometry(w, kw, s, pad, 2);
  const dx = new Float32Array(size(xs));
  for (let bi = 0; bi < n; bi++) {
    for (let i = 0; i < gh.out; i++) {
      for (let j = 0; j < gw.out; j++) {
        for (let a = 0; a < kh; a++) {
          const r = i * s + a - gh.before;
          if (r < 0 || r >= h) continue;
          for (let b = 0; b < kw; b++) {
            const col = j * s + b - gw.before;
            if (col < 0 || col >= w) continue;
            for (let ci = 0; ci < c; ci++) {
              for (let mi = 0; mi < m; mi++) {
                dx[((bi * h + r) * w + col) * c + ci] += dy[((bi * gh.out + i) * gw.out + j) * c * m + ci * m + mi] *
                  f[((a * kw + b) * c + ci) * m + mi];
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

/** Output shape of the forward conv, via tfjs itself (cheap, any backend). */
function dyShape(xs: Shape4, fs: Shape4, s: number, pad: Pad, dw: boolean) {
  const info = tf.backend_util.computeConv2DInfo(
    xs,
    fs,
    s,
    1,
    pad,
    undefined,
    dw,
  );
  return info.outShape as Shape4;
}

/** Run a kernel on the current backend and return its values (disposed). */
function runKernel(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): Float32Array {
  const out = tf.engine().runKernel(
    name,
    inputs as tf.NamedTensorMap,
    attrs as tf.NamedAttrMap,
  ) as tf.Tensor;
  const v = out.dataSync() as Float32Array;
  out.dispose();
  return v;
}

/** Run a kernel config directly on the cpu backend (for replaced kernels). */
function runCpuConfig(
  config: tf.KernelConfig,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): Float32Array {
  const cpu = cpuBackend();
  const out = config.kernelFunc({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend: cpu,
    attrs: attrs as tf.NamedAttrMap,
  }) as tf.TensorInfo;
  const v = cpu.readSync(out.dataId) as Float32Array;
  cpu.disposeData(out.dataId);
  return v;
}

const CONV_CASES: { xs: Shape4; fs: Shape4; s: number; pad: Pad }[] = [
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 4], s: 1, pad: "same" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 4], s: 2, pad: "same" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 4], s: 1, pad: "valid" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 4], s: 2, pad: "valid" },
  { xs: [2, 8, 10, 3], fs: [1, 1, 3, 4], s: 2, pad: "same" },
  { xs: [2, 9, 7, 3], fs: [1, 1, 3, 5], s: 2, pad: "valid" },
  { xs: [1, 15, 12, 3], fs: [7, 7, 3, 5], s: 2, pad: "same" },
  { xs: [2, 16, 16, 2], fs: [7, 7, 2, 3], s: 2, pad: "same" },
  // numeric pad: square filter (tfjs sizes both dims with filterHeight then)
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 4], s: 3, pad: 1 },
  {
    xs: [2, 7, 9, 3],
    fs: [2, 4, 3, 4],
    s: 2,
    pad: [[0, 0], [1, 0], [2, 1], [0, 0]],
  },
  {
    xs: [2, 7, 9, 3],
    fs: [3, 3, 3, 4],
    s: 2,
    pad: [[0, 0], [2, 1], [0, 3], [0, 0]],
  },
];

const DW_CASES: { xs: Shape4; fs: Shape4; s: number; pad: Pad }[] = [
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 1], s: 1, pad: "same" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 2], s: 2, pad: "same" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 1], s: 2, pad: "valid" },
  { xs: [1, 8, 8, 4], fs: [5, 5, 4, 1], s: 2, pad: "same" },
  { xs: [2, 8, 10, 3], fs: [1, 1, 3, 2], s: 2, pad: "same" },
  { xs: [2, 7, 9, 3], fs: [3, 3, 3, 2], s: 3, pad: 1 },
  { xs: [2, 7, 9, 3], fs: [2, 4, 3, 2], s: 2, pad: "same" },
];

const label = (c: { xs: Shape4; fs: Shape4; s: number; pad: Pad }) =>
  `x${JSON.stringify(c.xs)} f${JSON.stringify(c.fs)} s${c.s} ${JSON.stringify(c.pad)}`;

// ------------------------------------------------------ backprop kernels --

Deno.test("Conv2DBackpropFilter: wasm and fast cpu equal the naive formula and the original cpu kernel", async () => {
  const original = originalCpuKernel("Conv2DBackpropFilter");
  assert.ok(original, "cpu Conv2DBackpropFilter was not replaced");
  for (const c of CONV_CASES) {
    const ys = dyShape(c.xs, c.fs, c.s, c.pad, false);
    const xv = rand(size(c.xs), 1), dyv = rand(size(ys), 2);
    const want = naiveFilterGrad(xv, c.xs, dyv, c.fs, c.s, c.pad, false);
    const attrs = {
      strides: c.s,
      pad: c.pad,
      dataFormat: "NHWC",
      filterShape: c.fs,
    };
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(xv, c.xs), dy = tf.tensor4d(dyv, ys);
      const got = runKernel("Conv2DBackpropFilter", { x, dy }, attrs);
      assertClose(got, want, 1e-4, `${backend} ${label(c)}`);
      if (backend === "cpu") {
        const orig = runCpuConfig(original, { x, dy }, attrs);
        assertClose(orig, want, 1e-4, `original cpu ${label(c)}`);
      }
      tf.dispose([x, dy]);
    }
  }
});

Deno.test("conv2d filter gradient through tf.grads matches on wasm and cpu", async () => {
  const xs: Shape4 = [2, 7, 9, 3], fs: Shape4 = [3, 3, 3, 4];
  const ys = dyShape(xs, fs, 2, "same", false);
  const xv = rand(size(xs), 3), fv = rand(size(fs), 4), dyv = rand(size(ys), 5);
  const want = naiveFilterGrad(xv, xs, dyv, fs, 2, "same", false);
  for (const backend of ["cpu", "wasm"]) {
    await tf.setBackend(backend);
    const [x, f, dy] = [
      tf.tensor4d(xv, xs),
      tf.tensor4d(fv, fs),
      tf.tensor4d(dyv, ys),
    ];
    const [, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(
        tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same"), dy),
      )
    )([x, f]);
    assertClose(df.dataSync(), want, 1e-4, `${backend} tf.grads`);
    tf.dispose([x, f, dy, df]);
  }
});

Deno.test("depthwise gradients on wasm (and cpu) equal the naive formulas", async () => {
  for (const c of DW_CASES) {
    const ys = dyShape(c.xs, c.fs, c.s, c.pad, true);
    const xv = rand(size(c.xs), 6), fv = rand(size(c.fs), 7);
    const dyv = rand(size(ys), 8);
    const wantF = naiveFilterGrad(xv, c.xs, dyv, c.fs, c.s, c.pad, true);
    const wantI = naiveDepthwiseInputGrad(c.xs, dyv, fv, c.fs, c.s, c.pad);
    const common = { strides: c.s, pad: c.pad, dilations: 1 };
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(xv, c.xs), dy = tf.tensor4d(dyv, ys);
      const filter = tf.tensor4d(fv, c.fs);
      const gotF = runKernel("DepthwiseConv2dNativeBackpropFilter", { x, dy }, {
        ...common,
        filterShape: c.fs,
      });
      const gotI = runKernel("DepthwiseConv2dNativeBackpropInput", {
        dy,
        filter,
      }, { ...common, inputShape: c.xs });
      assertClose(gotF, wantF, 1e-4, `${backend} filter ${label(c)}`);
      assertClose(gotI, wantI, 1e-4, `${backend} input ${label(c)}`);
      tf.dispose([x, dy, filter]);
    }
  }
});

Deno.test("depthwise gradients through tf.grads: wasm equals cpu", async () => {
  const xs: Shape4 = [2, 9, 8, 4], fs: Shape4 = [3, 3, 4, 2];
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ["cpu", "wasm"]) {
    await tf.setBackend(backend);
    const x = tf.tensor4d(rand(size(xs), 9), xs);
    const f = tf.tensor4d(rand(size(fs), 10), fs);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(
        tf.square(
          tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same"),
        ),
      )
    )([x, f]);
    results[backend] = g.map((t) => t.dataSync() as Float32Array);
    tf.dispose([x, f, ...g]);
  }
  assertClose(results.wasm[0], results.cpu[0], 1e-4, "dx");
  assertClose(results.wasm[1], results.cpu[1], 1e-4, "dW");
});

Deno.test("conv2d input gradient on wasm (one forward conv) equals cpu: strides, same/valid/explicit padding", async () => {
  const cases: { xs: Shape4; fs: Shape4; s: number | [number, number]; pad: "same" | "valid" | number[][] }[] = [
    { xs: [2, 9, 8, 3], fs: [3, 3, 3, 5], s: 1, pad: "same" },
    { xs: [2, 9, 8, 3], fs: [3, 3, 3, 5], s: 2, pad: "same" },
    { xs: [1, 10, 7, 4], fs: [3, 2, 4, 6], s: [2, 1], pad: "valid" },
    { xs: [2, 11, 9, 2], fs: [7, 7, 2, 4], s: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
    { xs: [1, 8, 8, 3], fs: [1, 1, 3, 4], s: 2, pad: "valid" },
    { xs: [2, 5, 7, 6], fs: [1, 1, 6, 4], s: 1, pad: "same" }, // one matrix product
    { xs: [1, 3, 2, 4], fs: [3, 3, 4, 5], s: 1, pad: "same" }, // under 64 positions: wasm's own loop
    { xs: [2, 8, 9, 3], fs: [3, 3, 3, 4], s: 1, pad: [[0, 0], [1, 1], [2, 2], [0, 0]] },
  ];
  for (const c of cases) {
    const results: Record<string, Float32Array> = {};
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(rand(size(c.xs), 11), c.xs);
      const f = tf.tensor4d(rand(size(c.fs), 12), c.fs);
      const [dx] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad as "same")))
      )([x, f]);
      results[backend] = dx.dataSync() as Float32Array;
      tf.dispose([x, f, dx]);
    }
    assertClose(results.wasm, results.cpu, 1e-4, `dx ${JSON.stringify(c)}`);
  }
});

Deno.test("cpu fall-back kernel on wasm (UnsortedSegmentSum, used by gather's gradient)", async () => {
  const run = () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
    const ids = tf.tensor1d([0, 2, 0, 1], "int32");
    const out = tf.unsortedSegmentSum(x, ids, 3);
    const v = Array.from(out.dataSync());
    tf.dispose([x, ids, out]);
    return v;
  };
  await tf.setBackend("wasm");
  assert.deepEqual(run(), [6, 8, 7, 8, 3, 4]);
  await tf.setBackend("cpu");
  assert.deepEqual(run(), [6, 8, 7, 8, 3, 4]);
});

Deno.test("training kernels leak no tensors and no backend buffers", async () => {
  const xs: Shape4 = [2, 7, 9, 3],
    fs: Shape4 = [3, 3, 3, 4],
    dfs: Shape4 = [3, 3, 3, 2];
  const cys = dyShape(xs, fs, 2, "same", false),
    dys = dyShape(xs, dfs, 2, "same", true);
  const wasIsTest = tf.env().getBool("IS_TEST");
  tf.env().set("IS_TEST", true); // engine also checks each kernel for leaks
  try {
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(rand(size(xs), 1), xs);
      const cdy = tf.tensor4d(rand(size(cys), 2), cys);
      const ddy = tf.tensor4d(rand(size(dys), 3), dys);
      const filter = tf.tensor4d(rand(size(dfs), 4), dfs);
      const ids = tf.tensor1d([0, 1, 0], "int32");
      const seg = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const calls: [
        string,
        Record<string, tf.Tensor>,
        Record<string, unknown>,
      ][] = [
        ["Conv2DBackpropFilter", { x, dy: cdy }, {
          strides: 2,
          pad: "same",
          dataFormat: "NHWC",
          filterShape: fs,
        }],
        ["DepthwiseConv2dNativeBackpropFilter", { x, dy: ddy }, {
          strides: 2,
          pad: "same",
          dilations: 1,
          filterShape: dfs,
        }],
        ["DepthwiseConv2dNativeBackpropInput", { dy: ddy, filter }, {
          strides: 2,
          pad: "same",
          dilations: 1,
          inputShape: xs,
        }],
        ["UnsortedSegmentSum", { x: seg, segmentIds: ids }, { numSegments: 2 }],
      ];
      for (const [name, inputs, attrs] of calls) {
        runKernel(name, inputs, attrs); // warm-up (lazy cpu backend etc.)
        const tensors = tf.memory().numTensors;
        const buffers = tf.engine().backend.numDataIds();
        const cpuBuffers = cpuBackend().numDataIds();
        runKernel(name, inputs, attrs);
        assert.equal(
          tf.memory().numTensors,
          tensors,
          `${backend} ${name} tensors`,
        );
        assert.equal(
          tf.engine().backend.numDataIds(),
          buffers,
          `${backend} ${name} buffers`,
        );
        assert.equal(
          cpuBackend().numDataIds(),
          cpuBuffers,
          `${backend} ${name} cpu buffers`,
        );
        // inputs are still alive and readable
        for (const t of Object.values(inputs)) {
          assert.ok(t.dataSync().length > 0);
        }
      }
      // the whole gradient path (conv + depthwise + gather) leaves nothing
      const before = tf.memory().numTensors;
      const f = tf.tensor4d(rand(size(fs), 5), fs);
      const dwf = tf.tensor4d(rand(3 * 3 * 4, 6), [3, 3, 4, 1]);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
        const y = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same");
        const z = tf.depthwiseConv2d(y, c as tf.Tensor4D, 1, "same");
        return tf.sum(tf.gather(z, ids, 3));
      })([x, f, dwf]);
      tf.dispose([...grads, f, dwf]);
      assert.equal(tf.memory().numTensors, before, `${backend} tf.grads tensors`);
      tf.dispose([x, cdy, ddy, filter, ids, seg]);
    }
  } finally {
    tf.env().set("IS_TEST", wasIsTest);
  }
});

Deno.test("registerTrainingKernels is idempotent", () => {
  const again = registerTrainingKernels();
  for (const [kind, names] of Object.entries(again)) assert.deepEqual(names, [], `${kind} registered again`);
});

// ------------------------------------------------------------ model.fit --

/** conv2d -> BN -> relu -> depthwise -> GAP -> dense softmax. */
function buildNet(): tfl.LayersModel {
  const model = tfl.sequential();
  model.add(tfl.layers.conv2d({
    inputShape: [9, 8, 3],
    filters: 6,
    kernelSize: 3,
    strides: 2,
    padding: "same",
    useBias: false,
  }));
  model.add(tfl.layers.batchNormalization());
  model.add(tfl.layers.activation({ activation: "relu" }));
  model.add(tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: "same" }));
  model.add(tfl.layers.globalAveragePooling2d({}));
  model.add(tfl.layers.dense({ units: 3, activation: "softmax" }));
  return model;
}

async function fitOn(backend: string, init: Float32Array[], steps: number) {
  await tf.setBackend(backend);
  const model = buildNet();
  model.setWeights(
    init.map((v, i) => tf.tensor(v, model.getWeights()[i].shape)),
  );
  model.compile({
    optimizer: tf.train.sgd(0.2),
    loss: "categoricalCrossentropy",
  });
  const n = 4 * steps;
  const x = tf.tensor4d(rand(n * 9 * 8 * 3, 11), [n, 9, 8, 3]);
  const y = tf.oneHot(
    tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), "int32"),
    3,
  );
  const t0 = performance.now();
  await model.fit(x, y, {
    batchSize: 4,
    epochs: 1,
    shuffle: false,
    verbose: 0,
  });
  const ms = performance.now() - t0;
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  tf.dispose([x, y]);
  model.dispose();
  return { weights, ms };
}

Deno.test("model.fit (conv + BatchNorm + depthwise) gives the same weights on wasm and cpu", async () => {
  await tf.setBackend("cpu");
  const proto = buildNet();
  const init = proto.getWeights().map((w, i) =>
    // explicit, shared initial weights (BN: gamma 1, beta 0, mean 0, var 1)
    w.shape.length === 1 && proto.weights[i].name.includes("moving_variance")
      ? new Float32Array(w.size).fill(1)
      : rand(w.size, 100 + i).map((v) => v * 0.5)
  );
  proto.dispose();
  const steps = 3;
  const cpu = await fitOn("cpu", init, steps);
  const wasm = await fitOn("wasm", init, steps);
  console.log(
    `  fit ${steps} steps: cpu ${cpu.ms.toFixed(0)} ms, wasm ${wasm.ms.toFixed(0)} ms`,
  );
  assert.equal(cpu.weights.length, wasm.weights.length);
  let moved = 0, worst = 0;
  cpu.weights.forEach((w, i) => {
    assertClose(wasm.weights[i], w, 1e-5, `weight ${i}`);
    moved = Math.max(moved, maxAbsDiff(w, init[i]));
    worst = Math.max(worst, maxAbsDiff(w, wasm.weights[i]));
  });
  console.log(
    `  max |cpu - wasm| ${worst.toExponential(1)}, max update ${moved.toFixed(3)}`,
  );
  assert.ok(moved > 1e-3, "training did not change the weights");
});

// -------------------------------------------------------------- backends --

/** Run `initBackend()` in a fresh process, ATTNKIT_BACKEND set or removed. */
async function initInSubprocess(envValue: string | undefined) {
  const url = new URL("../lib/runtime/backend.ts", import.meta.url).href;
  const code = `import { initBackend } from ${JSON.stringify(url)};
    console.log(JSON.stringify(await initBackend()));`;
  const env = Deno.env.toObject();
  delete env.ATTNKIT_BACKEND;
  if (envValue !== undefined) env.ATTNKIT_BACKEND = envValue;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", config, code],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

for (const name of ["cpu", "wasm"]) {
  Deno.test(`initBackend picks ATTNKIT_BACKEND=${name}`, async () => {
    const r = await initInSubprocess(name);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, name);
    assert.match(
      r.stderr,
      new RegExp(`attnkit: backend ${name} \\(ATTNKIT_BACKEND=${name}`),
    );
  });
}

Deno.test("initBackend without ATTNKIT_BACKEND picks automatically and says why", async () => {
  const r = await initInSubprocess(undefined);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.ok(["tensorflow", "webgpu", "wasm", "cpu"].includes(info.name));
  assert.match(info.reason, /^ATTNKIT_BACKEND unset/);
  assert.ok(
    r.stderr.includes(`attnkit: backend ${info.name} (${info.reason})`),
  );
  console.log(`  auto: ${info.name} (${info.reason})`);
});

Deno.test("initBackend throws for an unknown ATTNKIT_BACKEND, naming it", async () => {
  const r = await initInSubprocess("tpu9000");
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown backend "tpu9000"/);
});

Deno.test("initBackend memoises and switches on an explicit different backend", async () => {
  const a = await initBackend({ backend: "cpu", quiet: true });
  assert.equal(a.name, "cpu");
  assert.equal(tf.getBackend(), "cpu");
  assert.equal(await initBackend({ quiet: true }), a, "same info object");
  const b = await initBackend({ backend: "wasm", quiet: true });
  assert.equal(b.name, "wasm");
  assert.equal(tf.getBackend(), "wasm");
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => initBackend({ backend: "nope" as any, quiet: true }),
    /unknown backend "nope"/,
  );
  await assert.rejects(
    () => initBackend({ backend: "tensorflow", quiet: true }),
    /backend "tensorflow".*failed to initialise: tfjs-node not installed/,
  );
  assert.equal(tf.getBackend(), "wasm", "a failed switch keeps the backend");
  assert.equal(await initBackend({ quiet: true }), b, "... and the memoised info");
});

// ---------------------------------------------------------------- webgpu --

// Mesa's Vulkan (lavapipe) WSI prints "XDG_RUNTIME_DIR is invalid" without it.
if (Deno.build.os === "linux" && !Deno.env.get("XDG_RUNTIME_DIR")) {
  const dir = Deno.makeTempDirSync({ prefix: "attnkit-xdg-" }); // mode 0700
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir));
}
const gpu = (navigator as unknown as {
  gpu?: { requestAdapter(): Promise<unknown | null> };
}).gpu;
const hasAdapter = gpu != null && (await gpu.requestAdapter()) != null;
if (!hasAdapter) {
  console.log("runtime_test: no WebGPU adapter, the webgpu test is NOT run");
}

Deno.test({
  name: "webgpu (when an adapter exists): conv2d and its gradient equal cpu",
  ignore: !hasAdapter,
  fn: async () => {
    const xs: Shape4 = [2, 9, 7, 3], fs: Shape4 = [3, 3, 3, 4];
    const xv = rand(size(xs), 21), fv = rand(size(fs), 22);
    const run = async () => {
      const x = tf.tensor4d(xv, xs), f = tf.tensor4d(fv, fs);
      const y = tf.conv2d(x, f, 2, "same");
      const [, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(
          tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same")),
        )
      )([x, f]);
      const out = [await y.data(), await df.data()];
      tf.dispose([x, f, y, df]);
      return out;
    };
    const info = await initBackend({ backend: "webgpu", quiet: true });
    assert.equal(info.name, "webgpu");
    const [gy, gdf] = await run();
    await tf.setBackend("cpu");
    const [cy, cdf] = await run();
    await initBackend({ backend: "wasm", quiet: true });
    assertClose(gy, cy, 1e-4, "webgpu conv2d");
    assertClose(gdf, cdf, 1e-3, "webgpu conv2d filter grad");
  },
});
