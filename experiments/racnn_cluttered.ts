/**
 * Experiment: a two-scale RA-CNN (Fu et al., CVPR 2017) on 60x60 cluttered MNIST (4 clutter
 * patches of 8x8). Scale 1 classifies the whole image; its APN picks a square around the digit,
 * which is cut out with the boxcar mask and zoomed to `--zoom` pixels; scale 2 classifies the zoom.
 * Training follows `trainRacnn` (lib/train/racnn_train.ts): scale 1 alone, the APN initialised on
 * the peak response of scale 1, then per batch a classification step and a ranking step.
 *
 * `deno task experiment:racnn [--scale1 30000] [--apn-init 4000] [--alternate 20000] [--test 5000]
 * [--batch 64] [--lr 3e-3] [--apn-lr 1e-3] [--zoom 40] [--seed 1] [--save]`
 *
 * Prints the test error of scale 1, scale 2 and the fused prediction, how often the crop's centre
 * lies in the digit's box and the crop's IoU with it. Training images come from MNIST train
 * digits 0..54,999 (a new cluttered image for every step), the test images from MNIST test (seed
 * 12345). `--save` writes `data/models/racnn_cluttered/` (weights.safetensors + meta.json).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import {
  clutteredMnist,
  evaluateRacnn,
  initBackend,
  loadMnist,
  type RACNNConfig,
  racnnModel,
  saveRacnn,
  sliceMnist,
  stdoutIsTerminal,
  trainRacnn,
} from "../mod.ts";
import { parseOptions } from "./cli.ts";

const a = parseOptions(Deno.args, {
  scale1: 30000,
  apnInit: 4000,
  alternate: 20000,
  test: 5000,
  batch: 64,
  lr: 3e-3,
  apnLr: 1e-3,
  zoom: 40,
  seed: 1,
  save: false,
  modelsDir: "data/models",
}, { script: "experiments/racnn_cluttered.ts" });

const backend = await initBackend({ quiet: true, backend: Deno.env.get("ATTNKIT_BACKEND") ? undefined : "wasm" });
console.log(`backend ${backend.name}`);
const trainSrc = sliceMnist(await loadMnist({ split: "train" }), 0, 55000);
const opts = { size: 60, clutter: 4, patch: 8 };
const trainSet = clutteredMnist(trainSrc, { ...opts, seed: a.seed, count: a.scale1 + a.apnInit + a.alternate });
const testSet = clutteredMnist(await loadMnist({ split: "test" }), { ...opts, seed: 12345, count: a.test });
const config: RACNNConfig = {
  imageSize: 60,
  channels: 1,
  classes: 10,
  filters: [16, 32, 64],
  apnHidden: 64,
  zoomSize: a.zoom,
  minHalfSide: 0.2,
  pool: "max",
};
const model = racnnModel(config, a.seed);
const params = model.variables("joint").reduce((n, v) => n + v.size, 0);
console.log(`RA-CNN: ${params} parameters; config ${JSON.stringify(config)}`);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const logs = await trainRacnn(model, trainSet, {
  scale1Images: a.scale1,
  apnInitImages: a.apnInit,
  alternateImages: a.alternate,
  batchSize: a.batch,
  learningRate: a.lr,
  apnLearningRate: a.apnLr,
  seed: a.seed,
  // without a terminal (no bar): a line every 50 steps
  onStep: (l) => {
    if (!stdoutIsTerminal() && l.step % 50 === 0) console.error(`${l.phase} step ${l.step}: loss ${l.loss.toFixed(4)}`);
  },
});
const trainSeconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const trainCpuSeconds = (cpu.user + cpu.system) / 1e6;
for (const l of logs) {
  console.log(
    `${l.phase}: ${l.steps} steps, loss ${l.firstLoss.toFixed(4)} -> ${l.lastLoss.toFixed(4)}` +
      (l.rankLoss !== undefined ? `, mean ranking loss ${l.rankLoss.toFixed(4)}` : "") + `, ${l.seconds.toFixed(0)} s`,
  );
}
const e = evaluateRacnn(model, testSet);
const pct = (x: number) => (100 * x).toFixed(2);
console.log(`test (${e.count} cluttered images from MNIST test, seed 12345):`);
console.log(`  error: scale 1 ${pct(e.error1)} %, scale 2 ${pct(e.error2)} %, fused ${pct(e.errorFused)} %`);
console.log(
  `  crop: centre in the digit's box ${pct(e.centreInBox)} %, IoU with the box ${e.iou.toFixed(3)}, ` +
    `share of the digit's box inside the crop ${pct(e.coverage)} %, ` +
    `mean half side ${e.meanHalfSide.toFixed(1)} px`,
);
console.log(`train ${trainSeconds.toFixed(0)} s wall, ${trainCpuSeconds.toFixed(0)} s CPU`);

if (a.save) {
  const dir = `${a.modelsDir}/racnn_cluttered`;
  await saveRacnn(model, dir);
  const meta = {
    name: "racnn_cluttered",
    attention: "racnn_apn",
    format: "safetensors",
    config,
    task: "60x60 cluttered MNIST (4 patches of 8x8), 10 classes; RACNN.forward(images [N,60,60,1] in [0,1]) -> " +
      "logits1, logits2 [N,10], zoomed [N,Z,Z,1], box [N,3] (tx, ty, tl in pixels); load with loadShippedRacnn()",
    command: `deno task experiment:racnn --scale1 ${a.scale1} --apn-init ${a.apnInit} --alternate ${a.alternate} ` +
      `--test ${a.test} --batch ${a.batch} --lr ${a.lr} --apn-lr ${a.apnLr} --zoom ${a.zoom} --seed ${a.seed} --save`,
    testSet: `clutteredMnist(MNIST test, { size: 60, clutter: 4, patch: 8, seed: 12345, count: ${a.test} })`,
    testError: e.errorFused,
    metrics: {
      error1: e.error1,
      error2: e.error2,
      errorFused: e.errorFused,
      centreInBox: e.centreInBox,
      iou: e.iou,
      coverage: e.coverage,
      meanHalfSide: e.meanHalfSide,
    },
    params,
    trainSeconds,
    trainCpuSeconds,
    epochs: 1,
    localisation: {},
    backend: backend.name,
    phases: logs,
  };
  await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta, null, 1) + "\n");
  console.log(`saved ${dir}`);
}
model.dispose();
if (tf.memory().numTensors > 20) console.error(`${tf.memory().numTensors} tensors left`);
