/**
 * Experiment: RAM (Mnih et al., "Recurrent Models of Visual Attention", NeurIPS 2014) on 60x60
 * translated MNIST, trained with the hybrid loss (classification NLL + REINFORCE with a baseline).
 *
 * `deno task experiment:ram [--epochs 20] [--batch 128] [--lr 1e-3] [--std 0.2,0.1] [--glimpses 8]
 * [--glimpse-size 12] [--scales 3] [--reward step] [--seed 1] [--train 55000] [--val 1000] [--test 10000]
 * [--threads 1] [--save] [--progress]`
 *
 * Diagnostic options (off by default; see the README's RAM section for what they showed): `--loc-lr F` (the
 * location network's learning rate, a factor of `--lr`), `--adv-norm` (advantage over its batch std),
 * `--reflect` (mirror samples at the edge instead of clamping), `--policy-warmup E` (location network frozen for
 * E epochs), `--rollouts M` (M rollouts per image, leave-one-out mean-reward baseline), `--oracle` (glimpses 1..T-1
 * at the digit box's centre: not RAM, an upper bound of what the classifier learns from on-digit glimpses),
 * `--reinforce-weight W`. Every epoch also prints mean |mu_t|, the share of |mu_t| > 0.95 and the validation
 * glimpse-in-box rate per step.
 *
 * The reward: `--reward step|hit|prob|logprob` (default step: each location is rewarded by its glimpse's gain in
 * log p(true class) plus the later gains discounted by `--discount G`, default 0.5, the shaped reward with which the
 * policy learned to find the digit in this budget; hit is the paper's 0/1 reward; see `RamReward` and the README).
 *
 * Data: MNIST train digits 0-54,999 placed at new random positions every epoch; validation: 1,000
 * images made from digits 55,000-59,999; test: the MNIST test digits, placed with seed 12345.
 * Prints the validation error after every epoch, then the test error with deterministic locations
 * (mu_t), the share of glimpse centres inside the digit's box, and the training time (wall and
 * CPU). `--save` writes `data/models/ram_translated/` (`weights.safetensors`, `meta.json`).
 *
 * @module
 */
import process from "node:process";
import {
  batches,
  cosineSchedule,
  evaluateRam,
  getBackendInfo,
  hashSeed,
  initBackend,
  loadMnist,
  numBatches,
  type RAMConfig,
  type RamReward,
  RecurrentAttentionModel,
  saveRam,
  sliceMnist,
  trainRam,
  translatedMnist,
  withSeed,
} from "../mod.ts";
import { numberList, parseOptions } from "./cli.ts";

interface Args {
  epochs: number;
  batch: number;
  lr: number;
  std: [number, number];
  glimpses: number;
  glimpseSize: number;
  scales: number;
  hidden: number;
  seed: number;
  train: number;
  val: number;
  test: number;
  threads: number;
  save: boolean;
  out: string;
  progress: boolean;
  locLr: number;
  reinforceWeight: number;
  advNorm: boolean;
  reflect: boolean;
  policyWarmup: number;
  rollouts: number;
  oracle: boolean;
  reward: string;
  discount: number;
}

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    epochs: 20,
    batch: 128,
    lr: 1e-3,
    std: [0.2, 0.1],
    glimpses: 8,
    glimpseSize: 12,
    scales: 3,
    hidden: 256,
    seed: 1,
    train: 55000,
    val: 1000,
    test: 10000,
    threads: 1,
    save: false,
    out: "data/models/ram_translated",
    progress: false,
    locLr: 1,
    reinforceWeight: 1,
    advNorm: false,
    reflect: false,
    policyWarmup: 0,
    rollouts: 1,
    oracle: false,
    reward: "step",
    discount: 0.5,
  };
  const a = parseOptions(argv, defaults, {
    script: "experiments/ram_translated.ts",
    convert: {
      std: (t, flag): [number, number] => {
        const s = numberList(t, flag);
        return [s[0], s[1] ?? s[0]];
      },
    },
  });
  if (!["hit", "prob", "logprob", "step"].includes(a.reward)) {
    throw new Error(`--reward: one of hit, prob, logprob, step, got '${a.reward}'`);
  }
  if (a.train > 55000) {
    throw new Error(`--train: at most 55000 (digits 55,000-59,999 are the validation set), got ${a.train}`);
  }
  return a;
}

const args = parseArgs(Deno.args);
await initBackend({ threads: args.threads });
const backend = getBackendInfo()!;

const mnist = await loadMnist({ split: "train" });
const trainDigits = sliceMnist(mnist, 0, args.train);
const valDigits = sliceMnist(mnist, 55000, 60000);
const testDigits = await loadMnist({ split: "test" });
const valSet = translatedMnist(valDigits, { size: 60, seed: hashSeed(args.seed, 1000), count: args.val });
const testSet = translatedMnist(testDigits, { size: 60, seed: 12345, count: args.test });

const config: RAMConfig = {
  glimpseSize: args.glimpseSize,
  scales: args.scales,
  scaleFactor: 2,
  hG: 128,
  hL: 128,
  classes: 10,
  glimpses: args.glimpses,
  hidden: args.hidden,
  std: args.std[1],
};
const model = new RecurrentAttentionModel({ ...config, name: "ram_translated" });
withSeed(args.seed, () => model.build([1, 60, 60, 1]));
const params = model.countParams();
console.log(`RAM ${JSON.stringify(config)}: ${params} parameters`);

const batchOpts = { batchSize: args.batch, shuffle: true, seed: args.seed, dropRemainder: true };
// every epoch places the training digits anew (a new set seed), in a new order
const epochSet = (epoch: number) => translatedMnist(trainDigits, { size: 60, seed: hashSeed(args.seed, epoch) });
const [std0, std1] = args.std;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const history = await trainRam(model, {
  train: (epoch) => batches(epochSet(epoch), { ...batchOpts, epoch }),
  trainBatches: numBatches(epochSet(0), batchOpts),
  validation: () => batches(valSet, { batchSize: 500 }),
}, {
  epochs: args.epochs,
  learningRate: cosineSchedule(args.lr, args.epochs, { warmup: 0.3, floor: 0.02 }),
  // a wider search early, a sharper policy late: linear from std0 to std1
  std: (t) => std0 + (std1 - std0) * Math.min(1, t / args.epochs),
  seed: args.seed,
  locationLrScale: args.locLr,
  reinforceWeight: args.reinforceWeight,
  normalizeAdvantage: args.advNorm,
  boundary: args.reflect ? "reflect" : "clamp",
  policyWarmup: args.policyWarmup,
  rollouts: args.rollouts,
  oracle: args.oracle,
  reward: args.reward as RamReward,
  discount: args.discount,
  progress: args.progress ? true : "auto",
  onEpochEnd: (log) => {
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `epoch ${log.epoch + 1}/${args.epochs}: loss ${log.loss.toFixed(4)} nll ${log.action.toFixed(4)} train acc ${
        (100 * log.acc).toFixed(2)
      }% val error ${(100 * (log.valError ?? NaN)).toFixed(2)}% lr ${log.lr.toExponential(2)} std ${
        log.std.toFixed(3)
      } | ${log.seconds.toFixed(0)} s, total ${((performance.now() - t0) / 1000).toFixed(0)} s wall, ${
        ((cpu.user + cpu.system) / 1e6).toFixed(0)
      } s CPU | |mu| ${log.muAbs?.toFixed(3)} sat ${(100 * (log.muSaturated ?? 0)).toFixed(1)}% | val in box ${
        log.valInBoxPerStep?.map((x) => (100 * x).toFixed(1)).join(" / ")
      }`,
    );
  },
});
const trainSeconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const trainCpuSeconds = (cpu.user + cpu.system) / 1e6;

const test = evaluateRam(model, batches(testSet, { batchSize: 500 }));
console.log(
  `test error ${
    (100 * test.error).toFixed(2)
  }% on ${test.n} images (deterministic locations); glimpse centres in the digit's box ${
    (100 * test.glimpseInBox).toFixed(1)
  }% (per glimpse: ${test.glimpseInBoxPerStep.map((x) => (100 * x).toFixed(1)).join(" / ")})`,
);
console.log(
  `training: ${trainSeconds.toFixed(0)} s wall, ${trainCpuSeconds.toFixed(0)} s CPU (${backend.name}, ${
    backend.threads ?? "-"
  } thread(s))`,
);

if (args.save) {
  const command = `deno task experiment:ram --epochs ${args.epochs} --batch ${args.batch} --lr ${args.lr} --std ${
    args.std.join(",")
  } --glimpses ${args.glimpses} --glimpse-size ${args.glimpseSize} --scales ${args.scales} --seed ${args.seed} --train ${args.train} --val ${args.val} --test ${args.test} --reward ${args.reward}${
    args.reward === "step" ? ` --discount ${args.discount}` : ""
  } --save`;
  await saveRam(model, args.out, {
    name: "ram_translated",
    attention: "ram",
    task: "60x60 translated MNIST; input [N, 60, 60, 1] in [0, 1] -> class log-probabilities [N, 10]",
    command,
    testSet: `translatedMnist(MNIST test, { size: 60, seed: 12345, count: ${args.test} })`,
    testError: test.error,
    params,
    trainSeconds: Math.round(trainSeconds),
    trainCpuSeconds: Math.round(trainCpuSeconds),
    epochs: history.length,
    localisation: {},
    glimpseInBox: test.glimpseInBox,
    glimpseInBoxPerStep: test.glimpseInBoxPerStep,
    history: history.map((h) => ({ epoch: h.epoch, loss: h.loss, acc: h.acc, valError: h.valError ?? null })),
    backend: `${backend.name}${backend.threads ? `, ${backend.threads} thread(s)` : ""}`,
    format: "ram-safetensors",
    config,
    inputShape: [60, 60, 1],
  });
  console.log(`saved ${args.out}/ (weights.safetensors, meta.json)`);
}
