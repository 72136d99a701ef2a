/**
 * Non-local block: parameter counts, the memory-bounded path against the materialised one (values
 * and gradients, every pairwise function, 2-D and 3-D), the zero initialisation, the 3-D block on one
 * frame against the 2-D block, BatchNorm statistics, config errors, leaks, memory scaling.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { NonLocalBlock, type NonLocalConfig, type NonLocalPairwise } from "../lib/modules/nonlocal.ts";
import { captureAttention } from "../lib/capture.ts";
import { fileIO } from "../lib/interop/file_io.ts";
import { loadStateDict, stateDict } from "../lib/interop/torch.ts";
import { peakBytes } from "../lib/ops/memory.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

const PAIRWISE: NonLocalPairwise[] = ["embedded_gaussian", "gaussian", "dot_product", "concatenation"];

function trainableCount(layer: tfl.layers.Layer): number {
  return layer.trainableWeights.reduce((n, w) => n + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
}

function built(config: Partial<NonLocalConfig>, shape: number[]): NonLocalBlock {
  const layer = new NonLocalBlock(config);
  tf.tidy(() => {
    layer.apply(tf.zeros(shape));
  });
  return layer;
}

Deno.test("nonlocal: parameter counts follow the block's formula", () => {
  const c = 32;
  const ci = 16;
  const conv = (i: number, o: number) => i * o + o;
  // g, theta, phi: C -> C'; W: C' -> C; BN: scale and shift
  const embedded = 3 * conv(c, ci) + conv(ci, c) + 2 * c;
  assert.equal(embedded, 2192); // the public fixture's param_count
  const cases: [Partial<NonLocalConfig>, number][] = [
    [{}, embedded],
    [{ pairwise: "dot_product" }, embedded],
    [{ pairwise: "gaussian" }, conv(c, ci) + conv(ci, c) + 2 * c],
    [{ pairwise: "concatenation" }, embedded + 2 * ci],
    [{ bnLayer: false }, embedded - 2 * c],
    [{ interChannels: 5 }, 3 * conv(c, 5) + conv(5, c) + 2 * c],
    [{ subSample: false }, embedded],
  ];
  for (const [config, want] of cases) {
    const layer = built(config, [1, 4, 4, c]);
    assert.equal(trainableCount(layer), want, JSON.stringify(config));
    layer.dispose();
  }
  const three = built({ dims: 3 }, [1, 2, 4, 4, c]);
  assert.equal(trainableCount(three), embedded);
  three.dispose();
  const tiny = built({}, [1, 4, 4, 1]); // C' = max(1, floor(1/2))
  assert.equal(tiny.interChannelsFor(1), 1);
  tiny.dispose();
});

/** Randomises every weight (BN scale included, so the block is not the identity). */
function randomise(layer: NonLocalBlock, seed: number): void {
  const sd = stateDict(layer);
  const fresh: Record<string, tf.Tensor> = {};
  let i = 0;
  for (const [k, t] of Object.entries(sd)) {
    fresh[k] = k.endsWith("running_var")
      ? tf.add(tf.randomUniform(t.shape, 0, 1, "float32", seed + i++), 0.5)
      : tf.randomNormal(t.shape, 0, 0.3, "float32", seed + i++);
  }
  loadStateDict(layer, fresh);
  tf.dispose([sd, fresh]);
}

const VARIANTS: { config: Partial<NonLocalConfig>; shape: number[] }[] = [
  ...PAIRWISE.map((pairwise) => ({ config: { pairwise, blockSize: 7 }, shape: [3, 9, 7, 8] })),
  ...PAIRWISE.map((pairwise) => ({ config: { pairwise, subSample: false, blockSize: 16 }, shape: [2, 5, 11, 6] })),
  { config: { pairwise: "embedded_gaussian", dims: 3, blockSize: 10 }, shape: [2, 3, 5, 7, 6] },
  { config: { pairwise: "concatenation", dims: 3, bnLayer: false, blockSize: 9 }, shape: [2, 2, 5, 4, 6] },
];

for (const { config, shape } of VARIANTS) {
  Deno.test(`nonlocal ${JSON.stringify(config)} on ${shape}: blocked path == materialised (values, gradients)`, () => {
    const layer = built(config, shape);
    randomise(layer, 11);
    const x = tf.randomNormal(shape, 0, 1, "float32", 5);
    const before = tf.memory().numTensors;
    const blocked = layer.apply(x) as tf.Tensor; // no capture: memory-bounded path
    const cap = captureAttention(() => layer.apply(x) as tf.Tensor); // materialised, with the map
    assert.ok(maxAbsDiff(blocked, cap.result) < 1e-5, `max abs diff ${maxAbsDiff(blocked, cap.result)}`);
    const map = cap.maps[layer.name].affinity;
    const spatial = shape.slice(1, -1);
    const keys = config.subSample === false
      ? spatial
      : spatial.map((d, i) => (i === spatial.length - 1 || i === spatial.length - 2 ? Math.floor(d / 2) : d));
    const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
    assert.deepEqual(map.shape, [shape[0], prod(spatial), prod(keys)]);
    if (config.pairwise === "embedded_gaussian" || config.pairwise === "gaussian") {
      const rowSums = tf.tidy(() => tf.sum(map, -1));
      assert.ok(rowSums.dataSync().every((s) => Math.abs(s - 1) < 1e-5), "softmax rows sum to 1");
      rowSums.dispose();
    }
    tf.dispose([blocked, cap.result]);
    cap.dispose();
    assert.equal(tf.memory().numTensors, before, "tensors leaked");

    // training-mode gradients: the blocked path (no capture) against the materialised one (capture)
    const target = tf.randomNormal(shape, 0, 1, "float32", 6);
    const vars = layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const loss = () => tf.losses.meanSquaredError(target, layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
    const before2 = tf.memory().numTensors;
    const gb = tf.variableGrads(loss, vars);
    const c2 = captureAttention(() => tf.variableGrads(loss, vars));
    for (const v of vars) {
      const scale = Math.max(1, tf.tidy(() => tf.max(tf.abs(c2.result.grads[v.name])).dataSync()[0]));
      const err = maxAbsDiff(gb.grads[v.name], c2.result.grads[v.name]);
      assert.ok(err < 1e-5 * scale, `${v.name}: gradient diff ${err}`);
    }
    c2.dispose();
    tf.dispose([gb.grads, gb.value, c2.result.grads, c2.result.value]);
    assert.equal(tf.memory().numTensors, before2, "tensors leaked in training");
    tf.dispose([x, target]);
    layer.dispose();
  });
}

Deno.test("nonlocal: zeroInit makes a new block the identity (with and without BN); zeroInit false does not", () => {
  const x = tf.randomNormal([2, 6, 5, 8], 0, 1, "float32", 1);
  for (const bnLayer of [true, false]) {
    const layer = built({ bnLayer }, x.shape);
    const y = layer.apply(x) as tf.Tensor;
    assert.equal(maxAbsDiff(y, x), 0);
    y.dispose();
    layer.dispose();
  }
  const moving = built({ zeroInit: false }, x.shape);
  const y = moving.apply(x) as tf.Tensor;
  assert.ok(maxAbsDiff(y, x) > 1e-3);
  tf.dispose([x, y]);
  moving.dispose();
});

Deno.test("nonlocal: the 3-D block on one frame equals the 2-D block with the same weights", () => {
  for (const pairwise of PAIRWISE) {
    const two = built({ pairwise, zeroInit: false }, [2, 7, 5, 6]);
    randomise(two, 3);
    const three = built({ pairwise, dims: 3, zeroInit: false }, [2, 1, 7, 5, 6]);
    // PyTorch Conv3d weights [O,I,1,1,1] are the Conv2d weights [O,I,1,1] with one more axis
    const sd2 = stateDict(two);
    const sd3: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(sd2)) {
      sd3[k] = t.rank === 4 && k !== "concat_project.0.weight" ? tf.expandDims(t, -1) : t;
    }
    loadStateDict(three, sd3);
    const x = tf.randomNormal([2, 7, 5, 6], 0, 1, "float32", 4);
    const y2 = two.apply(x) as tf.Tensor;
    const y3 = three.apply(tf.expandDims(x, 1)) as tf.Tensor;
    assert.deepEqual(y3.shape, [2, 1, 7, 5, 6]);
    assert.ok(maxAbsDiff(tf.squeeze(y3, [1]), y2) < 1e-5, pairwise);
    tf.dispose([sd2, Object.values(sd3), x, y2, y3]);
    two.dispose();
    three.dispose();
  }
});

Deno.test("nonlocal: training updates the BatchNorm running statistics with PyTorch's momentum 0.1", () => {
  const layer = built({ zeroInit: false, bnLayer: true }, [3, 6, 5, 8]);
  const x = tf.randomNormal([3, 6, 5, 8], 0, 1, "float32", 2);
  const before = stateDict(layer);
  tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
  const after = stateDict(layer);
  // running_mean = 0.9 * 0 + 0.1 * batch mean of W(y): not zero any more, and small
  const m = after["W.1.running_mean"].dataSync();
  assert.ok(m.some((v) => v !== 0));
  assert.equal(maxAbsDiff(before["W.0.weight"], after["W.0.weight"]), 0);
  tf.dispose([before, after, x]);
  layer.dispose();
});

Deno.test("nonlocal: saves and loads a 3-D concatenation block (snake_case option survives)", async () => {
  const input = tfl.input({ shape: [2, 5, 4, 6] });
  const layer = new NonLocalBlock({ pairwise: "concatenation", dims: 3, zeroInit: false });
  const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
  const dir = await Deno.makeTempDir();
  try {
    await model.save(fileIO(dir));
    const loaded = await tfl.loadLayersModel(fileIO(dir));
    assert.equal((loaded.layers[1] as NonLocalBlock).config.pairwise, "concatenation");
    const x = tf.randomNormal([2, 2, 5, 4, 6]);
    const a = model.predict(x) as tf.Tensor;
    const b = loaded.predict(x) as tf.Tensor;
    assert.equal(maxAbsDiff(a, b), 0);
    tf.dispose([x, a, b]);
    loaded.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
    model.dispose();
  }
});

Deno.test("nonlocal: configs and inputs that cannot work get Errors naming the layer", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { pairwise: "cosine" },
      /expected pairwise embedded_gaussian \| gaussian \| dot_product \| concatenation, got "cosine"/,
    ],
    [{ dims: 1 }, /expected dims 2 or 3, got 1/],
    [{ interChannels: 0 }, /expected interChannels null or a positive integer, got 0/],
    [{ blockSize: 0 }, /expected a positive integer blockSize, got 0/],
  ];
  for (const [config, pattern] of bad) {
    assert.throws(() => new NonLocalBlock({ name: "nl_bad", ...config } as Partial<NonLocalConfig>), (e: Error) => {
      assert.match(e.message, /^nl_bad: /);
      assert.match(e.message, pattern);
      return true;
    });
  }
  const layer = built({}, [1, 4, 4, 8]);
  const before = tf.memory().numTensors;
  const thin = tf.zeros([1, 1, 6, 8]);
  assert.throws(
    () => layer.apply(thin),
    /non_local_block_\d+: expected H and W of at least 2 for subSample .* got shape \[1,1,6,8\]/,
  );
  const video = tf.zeros([1, 2, 4, 4, 8]);
  assert.throws(() => layer.apply(video), /expected a rank-4 NHWC tensor, got shape \[1,2,4,4,8\]/);
  tf.dispose([thin, video]);
  assert.equal(tf.memory().numTensors, before);
  layer.dispose();
  const three = new NonLocalBlock({ dims: 3 });
  assert.throws(() => three.apply(tf.zeros([1, 4, 4, 8])), /expected a rank-5 NTHWC input, got shape \[1,4,4,8\]/);
});

Deno.test("nonlocal: blocked forward memory grows with HW x block, the materialised one with HW x HW", async () => {
  const c = 16;
  const peaks: { blocked: number; plain: number }[] = [];
  for (const side of [32, 64]) {
    const layer = built({ zeroInit: false, subSample: false, blockSize: 256 }, [1, side, side, c]);
    const x = tf.randomNormal([1, side, side, c], 0, 1, "float32", side);
    const base = tf.memory().numBytes;
    const blocked = (await peakBytes(() => layer.apply(x) as tf.Tensor)) - base;
    const plain = (await peakBytes(() => {
      const r = layer.attend(x);
      return [r.output, r.maps.affinity];
    })) - base;
    peaks.push({ blocked, plain });
    const hw = side * side;
    assert.ok(plain >= hw * hw * 4, `materialised peak ${plain} below the map's ${hw * hw * 4} bytes`);
    assert.ok(blocked < 2 * hw * 256 * 4, `blocked peak ${blocked} above 2 HW x block floats at ${side}x${side}`);
    tf.dispose(x);
    layer.dispose();
  }
  // HW x4: the blocked peak grows about 4x, the materialised one about 16x
  const blockedGrowth = peaks[1].blocked / peaks[0].blocked;
  const plainGrowth = peaks[1].plain / peaks[0].plain;
  assert.ok(blockedGrowth < 5, `blocked peak grew ${blockedGrowth.toFixed(1)}x for 4x positions`);
  assert.ok(plainGrowth > 12, `materialised peak grew ${plainGrowth.toFixed(1)}x for 4x positions`);
});
