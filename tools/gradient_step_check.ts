/**
 * Does a zoo model's loss fall along its negative gradient, and does the gradient predict by how much?
 *
 * Builds a zoo model at its example width (seeded), takes one seeded batch, and for each mode
 * (training: batch statistics; inference: running statistics) prints the loss, |g|, and for each
 * step e along d = -g / |g|: L(w + e d) - L(w) and the central difference (L(w + e d) - L(w - e d)) /
 * 2e divided by the analytic directional derivative -|g| (1 when the gradient is right and e is
 * small enough). Same batch, same mode on both sides.
 *
 *   deno run -A tools/gradient_step_check.ts --model cbam_resnet50 --batch 2 --size 32 --seed 7
 *   ATTNKIT_BACKEND=cpu deno run -A tools/gradient_step_check.ts --eps 1e-4,1e-5,1e-6
 *
 * What it showed (cbam_resnet50, width 16, seed 7, 1.2 s CPU on wasm): in inference mode |g| is 1.01 and
 * the ratio 0.9999 at e = 1e-3, on wasm and cpu alike. In training mode at batch 2 and 32x32, |g| is
 * 3.6e4 on wasm (2.4e4 on cpu: rounding differences, amplified) and the ratio is -0.0006 at 1e-3,
 * -0.04 at 1e-5, 0.54 at 1e-7, while a step of 1e-5 already raises the loss by 0.03: layer4's
 * BatchNorms see two values per channel there (a near-step function). At 64x64 (layer4 2x2) the
 * training-mode |g| is 41 and the ratio 0.9985 at 1e-5.
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import { parseArgs } from "node:util";
import { createModel } from "../lib/backbones/zoo.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { withSeed } from "../lib/runtime/seed.ts";

const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "cbam_resnet50" },
    batch: { type: "string", default: "2" },
    size: { type: "string", default: "32" },
    width: { type: "string", default: "16" },
    seed: { type: "string", default: "7" },
    eps: { type: "string", default: "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6" },
  },
});
const info = await initBackend({ quiet: true });
const batch = Number(opt.batch), size = Number(opt.size), seed = Number(opt.seed);
const classes = 3;
const start = performance.now(), cpu0 = process.cpuUsage();
const model = withSeed(
  seed,
  () => createModel(opt.model!, { inputShape: [size, size, 3], numClasses: classes, width: Number(opt.width) }),
);
const x = tf.randomNormal([batch, size, size, 3], 0, 1, "float32", seed);
const segmentation = model.outputs[0].shape.length === 4;
const labels = tf.tidy(() =>
  tf.oneHot(tf.fill(segmentation ? [batch, size, size] : [batch], 1, "int32") as tf.Tensor, classes)
);
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const saved = vars.map((v) => tf.clone(v));
console.log(`${info.name}: ${opt.model} width ${opt.width}, batch ${batch}, ${size}x${size}, seed ${seed}`);
for (const training of [false, true]) {
  // a training-mode call also updates the running statistics; they do not enter the training-mode loss
  const loss = () => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training }) as tf.Tensor) as tf.Scalar;
  const { value, grads } = tf.variableGrads(loss, vars);
  const l0 = value.dataSync()[0];
  const norm = Math.sqrt(tf.tidy(() => tf.addN(vars.map((v) => tf.sum(tf.square(grads[v.name])))).dataSync()[0]));
  const at = (e: number) => {
    vars.forEach((v, i) => {
      const moved = tf.tidy(() => tf.sub(saved[i], tf.mul(grads[v.name], e / norm)));
      v.assign(moved);
      moved.dispose();
    });
    const l = tf.tidy(() => loss().dataSync()[0]);
    vars.forEach((v, i) => v.assign(saved[i]));
    return l;
  };
  console.log(`${training ? "training" : "inference"} mode: loss ${l0.toFixed(6)}, |g| ${norm.toExponential(3)}`);
  for (const e of opt.eps!.split(",").map(Number)) {
    const down = at(e), up = at(-e);
    const ratio = (down - up) / (2 * e) / -norm;
    console.log(
      `  step ${e.toExponential(0)}: L(w + e d) - L(w) ${(down - l0).toExponential(3)}, fd / g.d ${ratio.toFixed(4)}`,
    );
  }
  tf.dispose([value, ...Object.values(grads)]);
}
const cpu = process.cpuUsage(cpu0);
console.log(
  `wall ${((performance.now() - start) / 1000).toFixed(1)} s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`,
);
tf.dispose([x, labels, ...saved]);
model.dispose();
