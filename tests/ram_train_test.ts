/**
 * Training RAM (lib/train/ram_train.ts, lib/ops/glimpse_host.ts, lib/viz/glimpse.ts): the host
 * retina equals the tensor retina; the host rollout equals the model's own at inference; a short
 * training run lowers the loss and leaks nothing; the shipped model loads and gives the test error
 * its meta.json records; the glimpse-path figure keeps row 0 at the top.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { initBackend } from "../lib/runtime/backend.ts";
import { withSeed } from "../lib/runtime/seed.ts";
import { RecurrentAttentionModel } from "../lib/modules/ram.ts";
import { glimpseSensor } from "../lib/ops/glimpse.ts";
import { glimpseSensorHost } from "../lib/ops/glimpse_host.ts";
import {
  evaluateRam,
  hostImages,
  loadRam,
  loadShippedRam,
  locationInBox,
  ramHybridLoss,
  ramRolloutHost,
  saveRam,
  trainRam,
} from "../lib/train/ram_train.ts";
import { batches, numBatches } from "../lib/data/batches.ts";
import { translatedMnist } from "../lib/data/digits.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { Rng } from "../lib/data/rng.ts";
import { glimpseCentrePixel, glimpsePathFigure, greyToRgb } from "../lib/viz/glimpse.ts";

await initBackend({ quiet: true });

const small = { glimpseSize: 6, scales: 3, scaleFactor: 2, glimpses: 4, hidden: 48, hG: 24, hL: 16, std: 0.2 };

Deno.test("glimpseSensorHost equals glimpseSensor (non-square, 2 channels, locations at and past the edges)", () => {
  const n = 5, h = 23, w = 31, c = 2;
  const x = tf.randomUniform([n, h, w, c], 0, 1, "float32", 3) as tf.Tensor4D;
  const loc = tf.tensor2d([[-1, -1], [1, 1], [0.37, -0.81], [-0.999, 0.5], [0.0625, 0.03125]]);
  for (const o of [{ size: 4, scales: 3, scaleFactor: 2 }, { size: 5, scales: 2, scaleFactor: 3 }]) {
    const before = tf.memory().numTensors;
    const ref = glimpseSensor(x, loc, o);
    const host = glimpseSensorHost(hostImages(x), loc.dataSync() as Float32Array, o);
    const want = ref.patches.dataSync();
    assert.equal(host.length, want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(host[i] - want[i]));
    assert.ok(worst < 1e-5, `max difference ${worst}`);
    // the torch layout is the NHWC one transposed to [N, k*C, g, g]
    const torch = glimpseSensorHost(hostImages(x), loc.dataSync() as Float32Array, o, "torch");
    const t = tf.tidy(() => tf.transpose(ref.patches, [0, 3, 1, 2]).dataSync());
    assert.ok(t.every((v, i) => Math.abs(v - torch[i]) < 1e-5));
    tf.dispose([ref.patches, ref.footprint]);
    assert.equal(tf.memory().numTensors, before);
  }
  assert.throws(
    () =>
      glimpseSensorHost({ data: new Float32Array(10), shape: [1, 4, 4, 1] }, [0, 0], {
        size: 2,
        scales: 1,
        scaleFactor: 2,
      }),
    /glimpseSensorHost: expected 16 pixels for \[1,4,4,1\], got 10/,
  );
  assert.throws(
    () => glimpseSensorHost(hostImages(x), [0, 0], { size: 2, scales: 1, scaleFactor: 2 }),
    /glimpseSensorHost: expected 10 location values, got 2/,
  );
  tf.dispose([x, loc]);
});

Deno.test("ramRolloutHost (deterministic) equals the model's rollout: log-probabilities and locations", () => {
  const ram = new RecurrentAttentionModel(small);
  withSeed(4, () => tf.tidy(() => void ram.apply(tf.zeros([1, 30, 26, 1]))));
  const x = tf.randomUniform([3, 30, 26, 1], 0, 1, "float32", 5) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const ref = tf.tidy(() => {
    const r = ram.rollout(x, { sample: false });
    return { lp: r.logProbs.dataSync(), loc: r.locations.dataSync() };
  });
  const host = tf.tidy(() => {
    const r = ramRolloutHost(ram, hostImages(x), { sample: false });
    assert.deepEqual(r.logPi.shape, [3, small.glimpses - 1]);
    assert.deepEqual(r.baselines.shape, [3, small.glimpses - 1]);
    return { lp: r.logProbs.dataSync(), loc: r.locations };
  });
  assert.equal(tf.memory().numTensors, before);
  assert.ok(ref.lp.every((v, i) => Math.abs(v - host.lp[i]) < 1e-4));
  assert.ok(ref.loc.every((v, i) => Math.abs(v - host.loc[i]) < 1e-5));
  // the policy moved: not every location is the centre
  assert.ok(host.loc.some((v) => Math.abs(v) > 1e-3));
  assert.throws(() => ramRolloutHost(ram, hostImages(x), { sample: true }), /ramRolloutHost needs an rng/);
  // sampling: locations stay in [-1, 1], logPi finite, same rng seed -> same locations
  const a = tf.tidy(() => ramRolloutHost(ram, hostImages(x), { sample: true, std: 0.5, rng: new Rng(1) }).locations);
  const b = tf.tidy(() => ramRolloutHost(ram, hostImages(x), { sample: true, std: 0.5, rng: new Rng(1) }).locations);
  assert.deepEqual(a, b);
  assert.ok(a.every((v) => v >= -1 && v <= 1));
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  ram.dispose();
});

Deno.test("ramHybridLoss: the reward is the hit of the arg-max; the REINFORCE term sends no gradient to the classifier", () => {
  const ram = new RecurrentAttentionModel(small);
  withSeed(2, () => tf.tidy(() => void ram.apply(tf.zeros([1, 28, 28, 1]))));
  const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 6) as tf.Tensor4D;
  const images = hostImages(x);
  const labels = Int32Array.from([0, 1, 2, 3]);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const r = ramRolloutHost(ram, images, { sample: true, rng: new Rng(3) });
    const p = ramHybridLoss(r, labels);
    const pred = tf.argMax(r.logProbs, 1).dataSync();
    assert.deepEqual(Array.from(p.hits), Array.from(pred, (v, i) => (v === labels[i] ? 1 : 0)));
    const total = p.action.dataSync()[0] + p.baseline.dataSync()[0] + p.reinforce.dataSync()[0];
    assert.ok(Math.abs(p.loss.dataSync()[0] - total) < 1e-5);
  });
  // gradient of the REINFORCE term alone: zero on the classifier, non-zero on the location network
  const vars = ram.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  const { value, grads } = tf.variableGrads(() => {
    const r = ramRolloutHost(ram, images, { sample: true, rng: new Rng(3) });
    return ramHybridLoss(r, Int32Array.from([9, 9, 9, 9]), 1).reinforce;
  }, vars);
  const norm = (k: string) => {
    const g = grads[Object.keys(grads).find((n) => n.includes(k))!];
    return g ? tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]) : 0;
  };
  assert.equal(norm("classifier_fc_kernel"), 0);
  assert.equal(norm("rnn_h2h_kernel"), 0);
  assert.ok(norm("locator_fc_lt_kernel") > 0);
  tf.dispose([value, ...Object.values(grads).filter((g) => g)]);
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  ram.dispose();
});

Deno.test("ramHybridLoss rewards: prob is p(y), logprob log p(y); step rewards each location by its glimpse's gain in log p(y), discounted", () => {
  const ram = new RecurrentAttentionModel(small);
  withSeed(2, () => tf.tidy(() => void ram.apply(tf.zeros([1, 28, 28, 1]))));
  const x = tf.randomUniform([3, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
  const images = hostImages(x);
  const labels = Int32Array.from([4, 1, 7]);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const r = ramRolloutHost(ram, images, { sample: true, rng: new Rng(3), everyStep: true });
    const T = small.glimpses;
    assert.equal(r.stepLogProbs!.length, T);
    assert.deepEqual(Array.from(r.stepLogProbs![T - 1].dataSync()), Array.from(r.logProbs.dataSync()));
    const lpy = r.stepLogProbs!.map((s) => Array.from(labels, (y, b) => s.dataSync()[b * 10 + y]));
    // prob: the baseline's MSE target is p(y), the same for every step
    const bl = r.baselines.arraySync();
    const mse = (target: (b: number, j: number) => number) =>
      bl.flatMap((row, b) => row.map((v, j) => (v - target(b, j)) ** 2)).reduce((a, v) => a + v, 0) / (3 * (T - 1));
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-4, `${a} vs ${b}`);
    close(ramHybridLoss(r, labels, 1, { reward: "prob" }).baseline.dataSync()[0], mse((b) => Math.exp(lpy[T - 1][b])));
    close(ramHybridLoss(r, labels, 1, { reward: "logprob" }).baseline.dataSync()[0], mse((b) => lpy[T - 1][b]));
    // step, discount 0.5: G_j = sum_{s > j} 0.5^(s-j-1) (log p_s - log p_{s-1}) (no floor reached here)
    const G = (b: number, j: number) => {
      let g = 0;
      for (let s = T - 1; s > j; s--) g = lpy[s][b] - lpy[s - 1][b] + 0.5 * g;
      return g;
    };
    const step = ramHybridLoss(r, labels, 1, { reward: "step" });
    close(step.baseline.dataSync()[0], mse(G));
    // the action loss adds the mean NLL of the intermediate glimpses
    const nll = (t: number) => -lpy[t].reduce((a, v) => a + v, 0) / 3;
    const inter = Array.from({ length: T - 1 }, (_, t) => nll(t)).reduce((a, v) => a + v, 0) / (T - 1);
    close(step.action.dataSync()[0], nll(T - 1) + inter);
    const plain = ramRolloutHost(ram, images, { sample: true, rng: new Rng(3) });
    assert.throws(() => ramHybridLoss(plain, labels, 1, { reward: "step" }), /"step" reward needs .*everyStep/);
  });
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  ram.dispose();
});

Deno.test("trainRam: a short run on translated MNIST lowers the loss, leaks no tensors; save/load round trip", async () => {
  const digits = await loadMnist({ split: "train", limit: 768 });
  const ds = translatedMnist(digits, { size: 36, seed: 1 });
  const ram = new RecurrentAttentionModel({ ...small, glimpseSize: 8 });
  withSeed(1, () => tf.tidy(() => void ram.apply(tf.zeros([1, 36, 36, 1]))));
  const evalSet = () => batches(ds, { batchSize: 256, end: 512 });
  const lossBefore = evaluateRam(ram, evalSet()).loss;
  const opts = { batchSize: 32, shuffle: true, seed: 1, dropRemainder: true };
  const before = tf.memory().numTensors;
  const logs: number[] = [];
  const history = await trainRam(ram, {
    train: (epoch) => batches(ds, { ...opts, epoch }),
    trainBatches: numBatches(ds, opts),
  }, {
    epochs: 3,
    learningRate: 3e-3,
    seed: 1,
    progress: false,
    onBatchEnd: (l) => void logs.push(l.loss),
  });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(history.length, 3);
  assert.equal(logs.length, 3 * numBatches(ds, opts));
  const lossAfter = evaluateRam(ram, evalSet()).loss;
  assert.ok(lossAfter < lossBefore - 0.3, `evaluation NLL ${lossBefore} -> ${lossAfter}`);
  assert.ok(history[2].action < history[0].action, `training NLL ${history.map((h) => h.action)}`);

  const dir = await Deno.makeTempDir();
  try {
    const meta = {
      name: "ram_tiny",
      attention: "ram",
      task: "test",
      command: "test",
      testSet: "test",
      testError: 0,
      params: ram.countParams(),
      trainSeconds: 0,
      epochs: 3,
      localisation: {},
      backend: "test",
      format: "ram-safetensors" as const,
      config: ram.config,
      inputShape: [36, 36, 1] as [number, number, number],
    };
    await saveRam(ram, dir, meta);
    const { model } = await loadRam(dir);
    const x = tf.randomUniform([2, 36, 36, 1], 0, 1, "float32", 8) as tf.Tensor4D;
    const [a, b] = [ram, model].map((m) =>
      tf.tidy(() => ramRolloutHost(m, hostImages(x), { sample: false }).logProbs.dataSync())
    );
    assert.deepEqual(a, b);
    x.dispose();
    model.dispose();
    await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify({ ...meta, format: "fileIO" }));
    await assert.rejects(() => loadRam(dir), /loadRam: expected meta.json format "ram-safetensors" .*got "fileIO"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  ram.dispose();
});

Deno.test("shipped RAM: loads; on the first 1,000 images of its test set, the error and glimpse rate of meta.json", async () => {
  const { model, meta } = await loadShippedRam();
  assert.equal(meta.attention, "ram");
  assert.equal(meta.config.glimpses, 8);
  const test = translatedMnist(await loadMnist({ split: "test", limit: 1000 }), { size: 60, seed: 12345 });
  const before = tf.memory().numTensors;
  const ev = evaluateRam(model, batches(test, { batchSize: 500 }));
  assert.equal(tf.memory().numTensors, before);
  assert.equal(ev.n, 1000);
  // the target is 4% (not reached at the 30-minute budget: see the README); what is
  // checked here is that the shipped weights are the ones measured: a binomial standard deviation
  // at 1,000 images is under 1 point, 2.5 points is about 3 of them
  assert.ok(ev.error < 0.5, `error ${ev.error}: no better than a guess`);
  assert.ok(Math.abs(ev.error - meta.testError) < 0.025, `${ev.error} here, ${meta.testError} in meta.json`);
  assert.ok(Math.abs(ev.glimpseInBox - (meta.glimpseInBox ?? NaN)) < 0.05);
  model.dispose();
});

Deno.test("locationInBox uses the retina's centre pixel", () => {
  const box = { x0: 10, y0: 20, x1: 15, y1: 30 };
  // x = -1 + 2 * 12.5 / 60 -> column floor(12.5) = 12; y = 0 -> row 30 (excluded)
  assert.equal(locationInBox(-1 + (2 * 12.5) / 60, 0, box, 60, 60), false);
  assert.equal(locationInBox(-1 + (2 * 12.5) / 60, -1 + (2 * 25) / 60, box, 60, 60), true);
  assert.equal(glimpseCentrePixel(-1, 60), 0);
  assert.equal(glimpseCentrePixel(0.999, 60), 59);
});

Deno.test("glimpsePathFigure: row 0 at the top, centres and squares where the retina reads", () => {
  const img = new Uint8Array(40 * 50);
  const rgb = greyToRgb(img, 40, 50);
  const locs = [[0, 0], [-0.9, -0.9], [0.9, 0.8]];
  const fig = glimpsePathFigure(rgb, locs, { imageSize: [40, 50], glimpseSize: 6, scales: 2, scaleFactor: 2 });
  const ya = fig.layout.yaxis as { range: number[] };
  assert.ok(ya.range[0] > ya.range[1], "y reversed: row 0 at the top");
  const path = fig.data.find((t) => t.type === "scatter")!;
  assert.deepEqual(path.x, [25, 2, 47]);
  assert.deepEqual(path.y, [20, 2, 36]);
  assert.deepEqual(path.text, ["1", "2", "3"]);
  const shapes = fig.layout.shapes as { x0: number; x1: number; y0: number; y1: number }[];
  assert.equal(shapes.length, 6);
  // glimpse 2 (top-left), finest scale: side 6 from pixel 2 - 3 = -1: x -1.5 .. 4.5, clipped to the image
  assert.deepEqual([shapes[2].x0, shapes[2].x1, shapes[2].y0, shapes[2].y1], [-0.5, 4.5, -0.5, 4.5]);
  // its coarse scale: side 12 from pixel -4: up to 7.5
  assert.deepEqual([shapes[3].x0, shapes[3].x1], [-0.5, 7.5]);
  // glimpse 1 (centre), coarse scale: side 12 from column 25 - 6 = 19, row 20 - 6 = 14: inside
  assert.deepEqual([shapes[1].x0, shapes[1].x1, shapes[1].y0, shapes[1].y1], [18.5, 30.5, 13.5, 25.5]);
  assert.throws(() => greyToRgb(img, 10, 10), /greyToRgb: expected 100 pixels for 10x10, got 2000/);
  // the top-left glimpse reads the top-left pixels of the image
  const x = new Float32Array(40 * 50);
  x[0] = 1;
  const p = glimpseSensorHost({ data: x, shape: [1, 40, 50, 1] }, [-0.9, -0.9], { size: 6, scales: 1, scaleFactor: 2 });
  assert.equal(p[1 * 6 + 1], 1); // pixel (0, 0) is patch cell (1, 1): the patch starts at (-1, -1)
});

Deno.test("shipped RAM: listed only with { all: true }; loadShippedModel points to loadShippedRam", async () => {
  const { listShippedModels, loadShippedModel } = await import("../lib/train/shipped.ts");
  assert.ok(!(await listShippedModels()).some((m) => m.name === "ram_translated"));
  const all = await listShippedModels({ all: true });
  assert.equal(all.find((m) => m.name === "ram_translated")?.format, "ram-safetensors");
  await assert.rejects(
    () => loadShippedModel("ram_translated"),
    /'ram_translated' is not a LayersModel .*loadShippedRam/,
  );
});

Deno.test("coordinates: a glimpse at the digit box's centre holds the digit's ink, at the mirrored place none", async () => {
  // the policy's (x, y), the host retina, locationInBox and the dataset's boxes agree: x along the
  // width, y along the height, -1 at the left/top (a swap or a sign error would fail here)
  const ds = translatedMnist(await loadMnist({ limit: 64 }), { size: 60, seed: 3 });
  let checked = 0;
  for (const b of batches(ds, { batchSize: 64 })) {
    const images = hostImages(b.xs);
    tf.dispose([b.xs, b.ys]);
    const n = images.shape[0];
    for (let i = 0; i < n; i++) {
      const box = b.boxes[i][0];
      const cx = (box.x0 + box.x1) / 2, cy = (box.y0 + box.y1) / 2;
      const at = [-1 + (2 * cx) / 60, -1 + (2 * cy) / 60];
      // far from the centre only: the mirrored box must not overlap the digit's
      if (Math.abs(cx - 30) < 16 && Math.abs(cy - 30) < 16) continue;
      const one = {
        data: images.data.subarray(i * 3600, (i + 1) * 3600),
        shape: [1, 60, 60, 1] as [number, number, number, number],
      };
      const ink = (l: number[]) =>
        glimpseSensorHost(one, new Float32Array(l), { size: 12, scales: 1, scaleFactor: 2 }).reduce((a, x) => a + x, 0);
      assert.ok(locationInBox(at[0], at[1], box, 60, 60));
      assert.ok(ink(at) > 10, `image ${i}: no ink at the box centre`);
      const swapped = ink([at[1], at[0]]), mirrored = ink([-at[0], -at[1]]);
      assert.equal(mirrored, 0, `image ${i}: ink at the mirrored location`);
      if (Math.abs(cx - cy) > 24) assert.ok(swapped < ink(at), `image ${i}: as much ink with x and y swapped`);
      checked++;
    }
  }
  assert.ok(checked > 10, `only ${checked} images far from the centre`);
});
