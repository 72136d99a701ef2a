/**
 * Experiment: Show, Attend and Tell (Xu et al., ICML 2015) reads two-digit MNIST images left to
 * right (36x64, one digit in each 32-pixel slot). A small CNN encoder gives a 9x16 grid of
 * annotation vectors, the LSTM soft-attention decoder reads one digit per step (teacher forcing,
 * doubly stochastic penalty). Prints the share of test images read fully right (greedy decoding),
 * per-digit accuracy, and per step how often the attention's peak falls in the box of the digit
 * being read.
 *
 * `deno task experiment:sat [--train 25000] [--epochs 2] [--test 5000] [--batch 64] [--lr 3e-3]
 * [--lambda 1] [--seed 1] [--save] [--progress]`
 *
 * Training pairs come from MNIST train digits 0..54,999, `--train` new pairs every epoch; the test
 * pairs from MNIST test (seed 12345). `--save` writes `data/models/sat_two_digits/` (model.json +
 * weights.bin, the fileIO format, and meta.json).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import {
  evaluateSat,
  fileIO,
  hashSeed,
  initBackend,
  loadMnist,
  multiDigitMnist,
  satModel,
  sliceMnist,
  stdoutIsTerminal,
  trainSat,
} from "../mod.ts";
import { parseOptions } from "./cli.ts";

interface Args {
  train: number;
  epochs: number;
  test: number;
  batch: number;
  lr: number;
  lambda: number;
  seed: number;
  save: boolean;
  progress: boolean;
  modelsDir: string;
}

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    train: 25000,
    epochs: 2,
    test: 5000,
    batch: 64,
    lr: 3e-3,
    lambda: 1,
    seed: 1,
    save: false,
    progress: false,
    modelsDir: "data/models",
  };
  return parseOptions(argv, defaults, { script: "experiments/sat_digits.ts" });
}

const a = parseArgs(Deno.args);
const backend = await initBackend({ quiet: true, backend: Deno.env.get("ATTNKIT_BACKEND") ? undefined : "wasm" });
console.log(`backend ${backend.name}`);
const trainSrc = sliceMnist(await loadMnist({ split: "train" }), 0, 55000);
const testSet = multiDigitMnist(await loadMnist({ split: "test" }), { digits: 2, count: a.test, seed: 12345 });
const model = satModel({ seed: a.seed });
const params = model.countParams();
console.log(`Show, Attend and Tell reader: ${params} parameters; ${a.epochs} epochs of ${a.train} new pairs`);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const logs = await trainSat(
  model,
  (epoch) => multiDigitMnist(trainSrc, { digits: 2, count: a.train, seed: hashSeed(a.seed, epoch) }),
  {
    epochs: a.epochs,
    batchSize: a.batch,
    learningRate: a.lr,
    lambda: a.lambda,
    seed: a.seed,
    progress: a.progress ? true : "auto",
    // without a terminal (no bar): a line every 100 steps
    onBatchEnd: (l) => {
      if (!a.progress && !stdoutIsTerminal() && l.batch % 100 === 0) {
        console.error(`epoch ${l.epoch + 1} step ${l.batch}: loss ${l.loss.toFixed(4)} acc ${l.acc.toFixed(3)}`);
      }
    },
  },
);
const trainSeconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const trainCpuSeconds = (cpu.user + cpu.system) / 1e6;
for (const l of logs) {
  console.log(
    `epoch ${l.epoch + 1}: loss ${l.loss.toFixed(4)} penalty ${l.penalty.toFixed(4)} ` +
      `teacher-forced acc ${l.acc.toFixed(4)} ${l.seconds.toFixed(0)} s`,
  );
}
const e = evaluateSat(model, testSet);
const pct = (x: number) => (100 * x).toFixed(2);
console.log(`test (${e.count} two-digit images from MNIST test, seed 12345):`);
console.log(`  both digits right ${pct(e.sequenceAcc)} %, digits right ${pct(e.digitAcc)} %`);
e.steps.forEach((s, i) =>
  console.log(
    `  step ${i + 1}: acc ${pct(s.acc)} %, attention peak in the digit's box ${pct(s.pointing)} %, ` +
      `attention mass in the box ${pct(s.massInBox)} %`,
  )
);
console.log(`train ${trainSeconds.toFixed(0)} s wall, ${trainCpuSeconds.toFixed(0)} s CPU`);

if (a.save) {
  const dir = `${a.modelsDir}/sat_two_digits`;
  await model.save(fileIO(dir));
  const localisation: Record<string, { massInBox: number; pointing: number; mapSize: number[] }> = {};
  const grid = (model.getLayer("coords").outputShape as number[]).slice(1, 3);
  e.steps.forEach((s, i) => localisation[`decoder step ${i + 1}`] = { ...s, mapSize: grid });
  for (const s of Object.values(localisation)) delete (s as { acc?: number }).acc;
  const meta = {
    name: "sat_two_digits",
    attention: "show_attend_tell",
    format: "layers",
    task: "read two-digit MNIST images left to right; inputs [image [N,36,64,1] in [0,1], tokens [N,2,11] one-hot " +
      "(start token 10, then the previous digit)]; output logits [N,2,11]; readDigits() decodes greedily",
    command: `deno task experiment:sat --train ${a.train} --epochs ${a.epochs} --test ${a.test} --batch ${a.batch} ` +
      `--lr ${a.lr} --lambda ${a.lambda} --seed ${a.seed} --save`,
    testSet: `multiDigitMnist(MNIST test, { digits: 2, count: ${a.test}, seed: 12345 })`,
    testError: 1 - e.sequenceAcc,
    metrics: {
      sequenceAcc: e.sequenceAcc,
      digitAcc: e.digitAcc,
      step1Acc: e.steps[0].acc,
      step2Acc: e.steps[1]?.acc,
    },
    params,
    trainSeconds,
    trainCpuSeconds,
    epochs: a.epochs,
    localisation,
    backend: backend.name,
    history: logs,
  };
  await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta, null, 1) + "\n");
  console.log(`saved ${dir}`);
}
model.dispose();
if (tf.memory().numTensors > 20) console.error(`${tf.memory().numTensors} tensors left`);
