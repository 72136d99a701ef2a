/**
 * Generated over `listModels()`: every zoo model builds at its papers' width on 32x32 images and
 * gives the output shape its task says, leaving no tensor behind; at its example configuration
 * (the same architecture at width 16, which keeps the suite fast) it trains (finite gradients for
 * every weight after two SGD steps; in inference mode the loss changes along the gradient by what
 * the gradient says, and falls after a small step against it), saves and loads with identical
 * predictions and the same PyTorch module paths, and leaves no tensor behind (on the default
 * backend: wasm here).
 *
 * Why the loss-fall check runs in inference mode: at 32x32 a ResNet-50's layer4 is 1x1, so in
 * training mode at batch 2 each of its BatchNorms normalises two values per channel, which gives
 * +-gamma (a smoothed sign of their difference, width about sqrt(eps) = 3e-3). The training-mode
 * loss is then nearly piecewise constant with steep ridges: its gradient norm was 3.6e4 for
 * cbam_resnet50 (1.6 in inference mode), so an SGD step of lr 1e-4 moved the weights by 3.6, far
 * beyond where the gradient says anything (central differences along it disagree even at steps of
 * 1e-6), and the loss rose or fell at random. The gradient itself is right: at 64x64 (layer4 2x2)
 * or batch 8 the training-mode central differences converge to it.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { createModel, listModels, torchNames, withSeed } from "../mod.ts";
import { fileIO } from "../lib/interop/file_io.ts";
import { initBackend } from "../lib/runtime/backend.ts";

await initBackend({ quiet: true });

const SIZE = 32;
const CLASSES = 3;

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("listModels: every model the brief names, with its paper", () => {
  const names = listModels().map((m) => m.name);
  for (
    const n of [
      "resnet18",
      "resnet34",
      "resnet50",
      "resnet101",
      "se_resnet50",
      "cbam_resnet50",
      "eca_resnet50",
      "sk_resnet50",
      "gc_resnet50",
      "bam_resnet50",
      "danet_resnet50",
      "ltpa_vgg16",
    ]
  ) assert.ok(names.includes(n), `${n} missing from the zoo`);
  for (const m of listModels()) {
    assert.ok(m.paper.includes(":") && m.year > 2000 && m.venue, `${m.name} cites no paper`);
  }
  assert.throws(() => createModel("resnet51"), /unknown model 'resnet51'; the zoo has: resnet18/);
});

for (const info of listModels()) {
  Deno.test(`${info.name}: builds, runs, trains, saves and loads, no leaks`, async (t) => {
    const start = tf.memory().numTensors;
    const x = tf.randomNormal([2, SIZE, SIZE, 3], 0, 1, "float32", 7);
    const want = info.task === "segmentation" ? [2, SIZE, SIZE, CLASSES] : [2, CLASSES];
    await t.step("at the papers' width: output shape, inference leaves nothing behind", () => {
      const full = createModel(info.name, { inputShape: [SIZE, SIZE, 3], numClasses: CLASSES });
      const before = tf.memory().numTensors;
      const y = full.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, want);
      assert.ok(tf.tidy(() => tf.all(tf.isFinite(y)).dataSync()[0]) === 1, "non-finite output");
      y.dispose();
      assert.equal(tf.memory().numTensors, before, "predict leaked");
      full.dispose();
    });
    assert.deepEqual(info.example.config, { inputShape: [SIZE, SIZE, 3], numClasses: CLASSES, width: 16 });
    // seeded: the gradient checks must not depend on which weights an earlier test left Math.random at
    const model = withSeed(7, () => createModel(info.name, info.example.config));
    try {
      await t.step("inference mode: the loss changes along the gradient as it says, and falls against it", () => {
        const labels = tf.tidy(() => tf.oneHot(tf.fill(want.slice(0, -1), 1, "int32") as tf.Tensor, CLASSES));
        const loss = () =>
          tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: false }) as tf.Tensor) as tf.Scalar;
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(loss, vars);
        const before = value.dataSync()[0];
        const norm = Math.sqrt(tf.tidy(() => tf.addN(vars.map((v) => tf.sum(tf.square(grads[v.name])))).dataSync()[0]));
        assert.ok(norm > 0, "zero gradient");
        const saved = vars.map((v) => tf.clone(v));
        // the loss at w - e g / |g|: its derivative in e is -|g|
        const at = (e: number) => {
          vars.forEach((v, i) => {
            const moved = tf.tidy(() => tf.sub(saved[i], tf.mul(grads[v.name], e / norm)));
            v.assign(moved);
            moved.dispose(); // assign shares the data; the tensor object is ours to free
          });
          const l = tf.tidy(() => loss().dataSync()[0]);
          vars.forEach((v, i) => v.assign(saved[i]));
          return l;
        };
        const steps = [1e-3, 3e-4, 1e-4].map((e) => ({ e, down: at(e), up: at(-e) }));
        // ReLU kinks and max pools bend the loss within a step of 1e-3 (LTPA's VGG: 2% at 1e-3, 0.3% at 1e-4)
        const ratios = steps.map(({ e, down, up }) => (up - down) / (2 * e) / norm);
        const best = ratios.reduce((a, b) => (Math.abs(b - 1) < Math.abs(a - 1) ? b : a));
        assert.ok(Math.abs(best - 1) < 0.01, `central difference / |g| along the gradient: ${ratios} (|g| ${norm})`);
        assert.ok(steps[0].down < before, `loss ${before} -> ${steps[0].down} after a step of 1e-3 against g`);
        tf.dispose([value, labels, ...saved, ...Object.values(grads)]);
      });

      await t.step("two training steps: finite gradients for every weight and a finite loss after them", () => {
        const labels = tf.tidy(() => tf.oneHot(tf.fill(want.slice(0, -1), 1, "int32") as tf.Tensor, CLASSES));
        const loss = () =>
          tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(loss, vars);
        const before = value.dataSync()[0];
        assert.ok(Number.isFinite(before), `loss ${before}`);
        for (const v of vars) {
          const g = grads[v.name];
          assert.ok(g, `${v.name} has no gradient`);
          assert.ok(tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0]) === 1, `${v.name}: non-finite gradient`);
        }
        const opt = tf.train.sgd(1e-3);
        opt.applyGradients(grads);
        tf.dispose(opt.minimize(loss, true) ?? []); // a second step
        const after = tf.tidy(() => loss().dataSync()[0]);
        assert.ok(Number.isFinite(after), `loss after a step ${after}`);
        // no "loss falls" here: in training mode at batch 2 the loss is nearly piecewise constant (see the top);
        // the step before checked the gradient on the fresh weights (these steps move them by lr |g|, about 36)
        tf.dispose([value, labels, ...Object.values(grads)]);
        opt.dispose();
      });

      await t.step("saves and loads with identical predictions and module paths", async () => {
        const dir = await Deno.makeTempDir();
        try {
          await model.save(fileIO(dir));
          const loaded = await tfl.loadLayersModel(fileIO(dir));
          const a = model.predict(x) as tf.Tensor;
          const b = loaded.predict(x) as tf.Tensor;
          assert.equal(maxAbsDiff(a, b), 0);
          assert.deepEqual(torchNames(loaded), torchNames(model));
          tf.dispose([a, b]);
          loaded.dispose();
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    } finally {
      x.dispose();
      model.dispose();
    }
    assert.equal(tf.memory().numTensors, start, "tensors left behind");
  });
}
