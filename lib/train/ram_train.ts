/**
 * Training RAM (Mnih, Heess, Graves, Kavukcuoglu, "Recurrent Models of Visual Attention", NeurIPS
 * 2014) with its hybrid loss: the classification loss trains the glimpse, core and action networks
 * by backpropagation; the location policy N(mu_t, std^2) learns by REINFORCE with the reward R = 1
 * for a correct class after the last glimpse, minus a learned baseline b_t (its own MSE to R).
 *
 * The rollout here ({@link ramRolloutHost}) computes the same model as {@link ramUnroll} with the
 * weights of a {@link RecurrentAttentionModel}, but takes the glimpses on the host
 * ({@link glimpseSensorHost}): sampled locations are constants, so the retina needs no gradient,
 * and on wasm the tensor retina and its backward pass were three quarters of a training step. Two differences
 * from `ramUnroll` in training (neither changes inference, tested equal with `sample: false`):
 * - the first location is the image centre (as `ramUnroll` at inference) instead of uniform: the
 *   policy then trains on the starts it sees at test time;
 * - the location chosen after the last glimpse is never used, so it is not sampled and gets no
 *   REINFORCE term (in kevinzakka/recurrent-visual-attention it adds a term whose reward does not
 *   depend on it: pure variance). logPi and baselines are [N, T-1].
 *
 * Diagnostic options of {@link trainRam} (opt-in; with their defaults training is as before, the
 * two Adam optimisers of equal rate being one Adam): the location network's own learning rate
 * (`locationLrScale`), a frozen policy for the first epochs (`policyWarmup`), advantage
 * normalisation, mirroring instead of clamping samples outside [-1, 1] (`boundary`), M rollouts per
 * image with a leave-one-out mean-reward baseline (`rollouts`), and an oracle policy (`oracle`:
 * glimpses at the digit box's centre, not RAM, a bound on what the classifier learns from on-digit
 * glimpses). Epoch logs carry mean |mu_t|, the share of saturated means and the validation
 * glimpse-in-box rate per step. None of them made the policy track the digit (README, RAM).
 *
 * The reward (`reward`, {@link RamReward}): the paper's 0/1 hit after the last glimpse ("hit", the
 * default), or a shaped one, where the reference differs from what learns in this budget: p(true
 * class) ("prob"), log p ("logprob") or, per location, the gain in log p(true class) its glimpse
 * brought plus the discounted later gains ("step"; the classifier then reads every intermediate
 * state too). The 0/1 reward carries almost no signal while the classifier is at 20-30%; see the
 * README's RAM section for what each measured.
 *
 * Also here: evaluation with deterministic locations (mu_t, as at inference), the share of glimpse
 * centres inside the digit's box, and saving/loading the trained model (`weights.safetensors` in
 * PyTorch's state_dict names, `meta.json` with the config).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { glimpseSensorHost, type HostImages } from "../ops/glimpse_host.ts";
import { stopGradient } from "../ops/glimpse.ts";
import { linear } from "../ops/common.ts";
import { type Dense, gaussianLogProb, type RAMConfig, RecurrentAttentionModel, reinforceLoss } from "../modules/ram.ts";
import { loadStateDict, stateDict } from "../interop/torch.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../interop/safetensors.ts";
import { hashSeed, Rng } from "../data/rng.ts";
import type { Box } from "../data/digits.ts";
import { type ProgressBar, stdoutIsTerminal, terminalProgress } from "./progress.ts";
import { type ShippedModelMeta, shippedModelsDir } from "./shipped.ts";
import type { Scalar, Tensor, Tensor2D, Tensor4D } from "../types.ts";

/** Options of {@link ramRolloutHost}. */
export interface RamRolloutOptions {
  /** Sample l_t ~ N(mu_t, std^2) (training) or take l_t = mu_t (inference). */
  sample: boolean;
  /** Standard deviation of the policy. Default: the model's `std`. */
  std?: number;
  /** Generator of the location noise (needed when sampling). */
  rng?: Rng;
  /** How a sample outside [-1, 1] becomes a location: "clamp" (kevinzakka) or "reflect" (mirror at the edge). Default "clamp". */
  boundary?: "clamp" | "reflect";
  /** Diagnostics: glimpse centres l_1 .. l_{T-1} given instead of the policy's ([N, 2], the same every step; no REINFORCE term). */
  fixedLocations?: Float32Array;
  /** Also give the class log-probabilities after every glimpse (the classifier read at h_0 .. h_{T-1}; for the per-glimpse reward). Default false. */
  everyStep?: boolean;
}

/** What {@link ramRolloutHost} gives. */
export interface RamHostRollout {
  /** Class log-probabilities [N, K]. */
  logProbs: Tensor2D;
  /** log pi(l_t | mu_t) of the sampled locations l_1 .. l_{T-1} [N, T-1] (zeros when not sampling). */
  logPi: Tensor2D;
  /** Baselines b_1 .. b_{T-1} [N, T-1], read from the core state that chose each location. */
  baselines: Tensor2D;
  /** Glimpse centres l_0 .. l_{T-1}, [N, T, 2] row-major, (x, y) in [-1, 1]. */
  locations: Float32Array;
  /** The policy means mu_1 .. mu_{T-1}, [N, T-1, 2] flattened step-major (diagnostics). */
  mus: Float32Array;
  /** With `everyStep`: class log-probabilities after glimpses 0 .. T-1, each [N, K] (the last is `logProbs`). */
  stepLogProbs?: Tensor2D[];
}

/** A standard normal draw (Box-Muller). */
function normal(rng: Rng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Host images from an NHWC tensor (a copy of its values). */
export function hostImages(x: Tensor4D): HostImages {
  return { data: x.dataSync() as Float32Array, shape: x.shape as [number, number, number, number] };
}

/**
 * One RAM rollout of `model` on host images [N, H, W, C], glimpses taken on the host. Not tidied:
 * call inside `tf.tidy` or an optimizer's `minimize`. The first glimpse is at the centre.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { RecurrentAttentionModel } from "../modules/ram.ts";
 * import { ramRolloutHost } from "./ram_train.ts";
 * const ram = new RecurrentAttentionModel({ glimpseSize: 6, scales: 2, glimpses: 3, hidden: 32, hG: 16, hL: 16 });
 * ram.apply(tf.zeros([1, 28, 28, 1]));
 * const img = { data: new Float32Array(2 * 28 * 28), shape: [2, 28, 28, 1] as [number, number, number, number] };
 * const locs = tf.tidy(() => ramRolloutHost(ram, img, { sample: false }).locations); // [2, 3, 2]
 * ```
 */
export function ramRolloutHost(
  model: RecurrentAttentionModel,
  images: HostImages,
  o: RamRolloutOptions,
): RamHostRollout {
  const c = model.config;
  const [n, , , ch] = images.shape;
  if (!model.built) model.build([n, images.shape[1], images.shape[2], ch]);
  const std = o.std ?? c.std;
  if (o.sample && !o.rng) throw new Error(`${model.name}: ramRolloutHost needs an rng to sample locations`);
  const w = model.ramWeights();
  const dense = (x: Tensor, d: Dense) => linear(x, d.kernel, d.bias);
  const geometry = { size: c.glimpseSize, scales: c.scales, scaleFactor: c.scaleFactor };
  const T = c.glimpses;
  const locations = new Float32Array(n * T * 2);
  let l = new Float32Array(n * 2); // l_0: the centre
  let h: Tensor = tf.zeros([n, c.hidden]);
  const logPi: Tensor[] = [];
  const bases: Tensor[] = [];
  const mus = new Float32Array(n * Math.max(0, T - 1) * 2);
  const stepLogProbs: Tensor2D[] = [];
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < n; b++) {
      locations[(b * T + t) * 2] = l[2 * b];
      locations[(b * T + t) * 2 + 1] = l[2 * b + 1];
    }
    const phi = tf.tensor2d(glimpseSensorHost(images, l, geometry, "torch"), [n, c.scales * ch * c.glimpseSize ** 2]);
    const where = dense(tf.relu(dense(tf.tensor2d(l, [n, 2]), w.sensor.fc2)), w.sensor.fc4);
    const g = tf.relu(tf.add(dense(tf.relu(dense(phi, w.sensor.fc1)), w.sensor.fc3), where));
    h = tf.relu(tf.add(dense(g, w.i2h), dense(h, w.h2h)));
    if (o.everyStep && t < T - 1) stepLogProbs.push(tf.logSoftmax(dense(h, w.classifier)) as Tensor2D);
    if (t === T - 1) break; // the location after the last glimpse is never used
    const hd = stopGradient(h);
    const mu = tf.tanh(dense(tf.relu(dense(hd, w.locFc)), w.locOut));
    const m = mu.dataSync() as Float32Array;
    mus.set(m, t * n * 2);
    const next = new Float32Array(n * 2);
    if (o.fixedLocations) {
      next.set(o.fixedLocations);
      logPi.push(tf.zeros([n]));
    } else if (o.sample) {
      const raw = new Float32Array(n * 2);
      for (let i = 0; i < n * 2; i++) raw[i] = m[i] + std * normal(o.rng!);
      logPi.push(gaussianLogProb(tf.tensor2d(raw, [n, 2]), mu, std));
      if (o.boundary === "reflect") {
        for (let i = 0; i < n * 2; i++) {
          const r = raw[i] > 1 ? 2 - raw[i] : raw[i] < -1 ? -2 - raw[i] : raw[i];
          next[i] = Math.min(1, Math.max(-1, r));
        }
      } else for (let i = 0; i < n * 2; i++) next[i] = Math.min(1, Math.max(-1, raw[i]));
    } else {
      next.set(m);
      logPi.push(tf.zeros([n]));
    }
    bases.push(tf.reshape(dense(hd, w.baseline), [n]));
    l = next;
  }
  const stackOrEmpty = (xs: Tensor[]) => (xs.length ? tf.stack(xs, 1) : tf.zeros([n, 0])) as Tensor2D;
  const logProbs = tf.logSoftmax(dense(h, w.classifier)) as Tensor2D;
  return {
    logProbs,
    logPi: stackOrEmpty(logPi),
    baselines: stackOrEmpty(bases),
    locations,
    mus,
    ...(o.everyStep ? { stepLogProbs: [...stepLogProbs, logProbs] } : {}),
  };
}

/**
 * The reward REINFORCE maximises:
 * - "hit": the paper's R = 1 for a correct class after the last glimpse, else 0;
 * - "prob": R = p(true class) after the last glimpse (dense: it rises with every better glimpse
 *   even while the arg-max is still wrong);
 * - "logprob": R = log p(true class) after the last glimpse, floored at -5;
 * - "step": location l_t is rewarded by what glimpse t added, log p_t(y) - log p_{t-1}(y) (the
 *   classifier read after every glimpse, floored at -5), plus the later gains discounted by
 *   `discount` (1: the return telescopes to log p_{T-1}(y) - log p_{t-1}(y)). The classifier then
 *   also learns from every intermediate state (mean NLL of glimpses 0 .. T-2 added to the loss).
 */
export type RamReward = "hit" | "prob" | "logprob" | "step";

/** Options of {@link ramHybridLoss} besides the REINFORCE weight. */
export interface RamLossOptions {
  /** Divide the advantage R - b_t by its batch standard deviation. Default false. */
  normalizeAdvantage?: boolean;
  /** Rollouts per image (consecutive rows): leave-one-out mean-reward baseline. Default 1. */
  group?: number;
  /** The reward (see {@link RamReward}). Default "hit" (the paper's). */
  reward?: RamReward;
  /** Discount of later glimpses' gains for the "step" reward. Default 0.5. */
  discount?: number;
}

/** The hybrid loss's parts (scalars) and the batch's hits. */
export interface RamLossParts {
  /** action + baseline + reinforceWeight * reinforce. */
  loss: Scalar;
  /** NLL of the true class (after the last glimpse; with the "step" reward plus the mean NLL of the earlier glimpses). */
  action: Scalar;
  /** MSE of the baselines to the reward. */
  baseline: Scalar;
  /** REINFORCE term (mean over the batch of sum_t -log pi_t (R_t - b_t)). */
  reinforce: Scalar;
  /** Correct classifications of the batch (host copy; the "hit" reward). */
  hits: Float32Array;
}

/** The floor of log-probability rewards (a confidently wrong class would otherwise dominate the batch's variance). */
const LOG_REWARD_FLOOR = -5;

/**
 * RAM's hybrid loss of a rollout and labels [N] (not tidied: call inside `minimize` or a tidy).
 * The reward is the paper's 0/1 hit unless `o.reward` says otherwise; "step" needs a rollout with
 * `everyStep`.
 */
export function ramHybridLoss(
  r: RamHostRollout,
  labels: Int32Array,
  reinforceWeight = 1,
  o: RamLossOptions = {},
): RamLossParts {
  const [n, k] = r.logProbs.shape;
  const kind = o.reward ?? "hit";
  const group = o.group ?? 1;
  const lp = r.logProbs.dataSync();
  const hits = new Float32Array(n);
  for (let b = 0; b < n; b++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (lp[b * k + j] > lp[b * k + best]) best = j;
    hits[b] = best === labels[b] ? 1 : 0;
  }
  const steps = r.logPi.shape[1];
  const oneHot = tf.oneHot(tf.tensor1d(labels, "int32"), k);
  const nll = (logProbs: Tensor) => tf.neg(tf.mean(tf.sum(tf.mul(logProbs, oneHot), 1))) as Scalar;
  let action = nll(r.logProbs);
  // the reward: [N] (the same for every step) or [N, steps]
  let reward: Tensor;
  if (kind === "hit") reward = tf.tensor1d(hits);
  else if (kind === "prob" || kind === "logprob") {
    const R = new Float32Array(n);
    for (let b = 0; b < n; b++) {
      const l = lp[b * k + labels[b]];
      R[b] = kind === "prob" ? Math.exp(l) : Math.max(LOG_REWARD_FLOOR, l);
    }
    reward = tf.tensor1d(R);
  } else {
    if (!r.stepLogProbs || r.stepLogProbs.length !== steps + 1) {
      throw new Error(
        `ramHybridLoss: the "step" reward needs the log-probabilities after each of the ${
          steps + 1
        } glimpses (rollout with everyStep), got ${r.stepLogProbs?.length ?? "none"}`,
      );
    }
    if (group > 1) throw new Error(`ramHybridLoss: the "step" reward takes one rollout per image, got ${group}`);
    const gamma = o.discount ?? 0.5;
    const T = steps + 1;
    const lpy = new Float32Array(n * T); // log p_t(y), floored
    r.stepLogProbs.forEach((s, t) => {
      const v = s.dataSync();
      for (let b = 0; b < n; b++) lpy[b * T + t] = Math.max(LOG_REWARD_FLOOR, v[b * k + labels[b]]);
    });
    const G = new Float32Array(n * steps); // column j: the return of l_{j+1}
    for (let b = 0; b < n; b++) {
      let g = 0;
      for (let j = steps - 1; j >= 0; j--) {
        g = lpy[b * T + j + 1] - lpy[b * T + j] + gamma * g;
        G[b * steps + j] = g;
      }
    }
    reward = tf.tensor2d(G, [n, steps]);
    if (steps > 0) action = tf.add(action, tf.mean(tf.stack(r.stepLogProbs.slice(0, steps).map(nll)))) as Scalar;
  }
  const target = reward.rank === 1 ? tf.expandDims(reward, 1) : reward;
  const baseline = (steps ? tf.mean(tf.square(tf.sub(r.baselines, target))) : tf.scalar(0)) as Scalar;
  let reinforce = tf.scalar(0) as Scalar;
  if (steps) {
    if (group > 1) {
      // M rollouts per image (consecutive): the baseline of a rollout is the mean reward of the
      // image's other M - 1 rollouts (leave-one-out: unbiased), the same for every step
      const R = reward.dataSync();
      const adv = new Float32Array(n);
      for (let g0 = 0; g0 < n; g0 += group) {
        let sum = 0;
        for (let i = g0; i < g0 + group; i++) sum += R[i];
        for (let i = g0; i < g0 + group; i++) adv[i] = R[i] - (sum - R[i]) / (group - 1);
      }
      reinforce = tf.mean(tf.sum(tf.mul(tf.neg(r.logPi), tf.expandDims(tf.tensor1d(adv), 1)), 1)) as Scalar;
    } else if (o.normalizeAdvantage) {
      // (R - b_t) / its batch std: a per-batch step size that does not depend on how well the baseline fits
      const adv = tf.sub(target, stopGradient(r.baselines));
      const sd = tf.sqrt(tf.add(tf.mean(tf.square(tf.sub(adv, tf.mean(adv)))), 1e-6));
      reinforce = tf.mean(tf.sum(tf.mul(tf.neg(r.logPi), tf.div(adv, sd)), 1)) as Scalar;
    } else reinforce = reinforceLoss(r.logPi, reward, r.baselines);
  }
  const loss = tf.addN([action, baseline, tf.mul(reinforce, reinforceWeight)]) as Scalar;
  return { loss, action, baseline, reinforce, hits };
}

/** A training batch: images [B, H, W, C] in [0, 1] and labels (a {@link Batch} of `batches()` fits). The loop disposes `xs` (and `ys` when present). */
export interface RamBatch {
  /** Images. */
  xs: Tensor4D;
  /** Labels [B]. */
  labels: Int32Array;
  /** One-hot targets, unused (disposed). */
  ys?: Tensor;
  /** Digit boxes per sample (for the glimpse-in-box rate). */
  boxes?: Box[][];
}

/** One epoch of {@link trainRam}. */
export interface RamEpochLog {
  /** Epoch, 0-based. */
  epoch: number;
  /** Mean hybrid loss. */
  loss: number;
  /** Mean classification NLL. */
  action: number;
  /** Training accuracy (sampled locations). */
  acc: number;
  /** Validation error (deterministic locations), when validation data is given. */
  valError?: number;
  /** Learning rate at the end of the epoch. */
  lr: number;
  /** Policy std at the end of the epoch. */
  std: number;
  /** Seconds of the epoch (with validation). */
  seconds: number;
  /** Validation share of glimpse centres in the digit's box per glimpse. */
  valInBoxPerStep?: number[];
  /** Mean |mu| of the sampled policy means over the epoch, and the share with |mu| > 0.95. */
  muAbs?: number;
  /** Share of |mu| > 0.95. */
  muSaturated?: number;
}

/** What {@link trainRam}'s `onBatchEnd` gets. */
export interface RamBatchLog {
  /** Epoch, 0-based. */
  epoch: number;
  /** Batch in the epoch, 0-based. */
  batch: number;
  /** Hybrid loss of the batch. */
  loss: number;
  /** Accuracy of the batch. */
  acc: number;
}

/** Options of {@link trainRam}. */
export interface RamTrainOptions {
  /** Epochs. */
  epochs: number;
  /** Adam's learning rate, or a schedule of t = epoch + batch / batches. Default 1e-3. */
  learningRate?: number | ((t: number) => number);
  /** Policy std, or a schedule of t (a wider search early). Default: the model's `std`. */
  std?: number | ((t: number) => number);
  /** Weight of the REINFORCE term. Default 1. */
  reinforceWeight?: number;
  /** Epochs (t, fractional) during which the location network does not learn (the classifier first learns from the glimpses the initial policy takes). Default 0. */
  policyWarmup?: number;
  /** Learning rate of the location network relative to the others (its own Adam). Default 1. */
  locationLrScale?: number;
  /** How sampled locations outside [-1, 1] are brought back (see {@link RamRolloutOptions}). Default "clamp". */
  boundary?: "clamp" | "reflect";
  /** Diagnostics: glimpses 1 .. T-1 at the centre of the digit's box (needs the batches' boxes): what the classifier can learn from a perfect policy. Default false. */
  oracle?: boolean;
  /** Rollouts per image M (the REINFORCE baseline is then the mean reward of the image's other rollouts). Default 1. */
  rollouts?: number;
  /** Divide the advantage R - b_t by its batch standard deviation. Default false. */
  normalizeAdvantage?: boolean;
  /** The reward of the location policy (see {@link RamReward}). Default "hit" (the paper's). */
  reward?: RamReward;
  /** Discount of the "step" reward. Default 0.5. */
  discount?: number;
  /** Seed of the location noise (per epoch and batch). Default 0. */
  seed?: number;
  /** Terminal progress bar: true, false or "auto" (stdout is a terminal). Default "auto". */
  progress?: boolean | "auto";
  /** Stop after this many steps in total (tests). */
  maxSteps?: number;
  /** Called after every batch. */
  onBatchEnd?: (log: RamBatchLog) => void | Promise<void>;
  /** Called after every epoch. */
  onEpochEnd?: (log: RamEpochLog) => void | Promise<void>;
}

/** The data of {@link trainRam}. */
export interface RamTrainData {
  /** Batches of epoch `epoch` (0-based). */
  train(epoch: number): Iterable<RamBatch>;
  /** Batches per epoch (progress bar and schedules). */
  trainBatches: number;
  /** Validation batches, evaluated after every epoch with {@link evaluateRam}. */
  validation?(): Iterable<RamBatch>;
}

const schedule = (v: number | ((t: number) => number) | undefined, fallback: number) =>
  typeof v === "function" ? v : () => v ?? fallback;

/**
 * Trains a {@link RecurrentAttentionModel} with the hybrid loss (Adam). Returns the epoch logs.
 *
 * @example
 * ```ts
 * import { RecurrentAttentionModel } from "../modules/ram.ts";
 * import { batches, numBatches } from "../data/batches.ts";
 * import { translatedMnist } from "../data/digits.ts";
 * import { loadMnist } from "../data/mnist.ts";
 * import { trainRam } from "./ram_train.ts";
 * const ds = translatedMnist(await loadMnist({ limit: 256 }), { size: 60, seed: 1 });
 * const ram = new RecurrentAttentionModel({ glimpseSize: 12, scales: 3, glimpses: 4, hidden: 64, hG: 32, hL: 32 });
 * const opts = { batchSize: 32, shuffle: true, seed: 1 };
 * await trainRam(ram, { train: (e) => batches(ds, { ...opts, epoch: e }), trainBatches: numBatches(ds, opts) }, { epochs: 1 });
 * ```
 */
export async function trainRam(
  model: RecurrentAttentionModel,
  data: RamTrainData,
  options: RamTrainOptions,
): Promise<RamEpochLog[]> {
  const lr = schedule(options.learningRate, 1e-3);
  const std = schedule(options.std, model.config.std);
  const seed = options.seed ?? 0;
  const optimizer = tf.train.adam(lr(0));
  const locScale = options.locationLrScale ?? 1;
  const locOptimizer = tf.train.adam(lr(0) * locScale);
  // names of the location network's variables (the model is built by the first rollout)
  let locVars: Set<string> | null = null;
  const showBar = options.progress === "auto" || options.progress === undefined ? stdoutIsTerminal() : options.progress;
  const history: RamEpochLog[] = [];
  let steps = 0;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const start = performance.now();
      const bar: ProgressBar | null = showBar ? terminalProgress() : null;
      let lossSum = 0, actionSum = 0, hitSum = 0, seen = 0, batch = 0, muSum = 0, muSat = 0, muN = 0;
      bar?.start(data.trainBatches, { epoch: epoch + 1, epochs: options.epochs, loss: NaN, acc: NaN });
      for (const b of data.train(epoch)) {
        const t = epoch + batch / data.trainBatches;
        (optimizer as unknown as { learningRate: number }).learningRate = lr(t);
        const warm = options.policyWarmup ?? 0;
        (locOptimizer as unknown as { learningRate: number }).learningRate = t < warm ? 0 : lr(t) * locScale;
        const rng = new Rng(hashSeed(seed, epoch, batch));
        const M = options.rollouts ?? 1;
        let images = hostImages(b.xs);
        let labels = b.labels;
        if (M > 1) {
          const [bn, bh, bw, bc] = images.shape;
          const px = bh * bw * bc;
          const data = new Float32Array(bn * M * px);
          labels = new Int32Array(bn * M);
          for (let i = 0; i < bn; i++) {
            for (let m = 0; m < M; m++) {
              data.set(images.data.subarray(i * px, (i + 1) * px), (i * M + m) * px);
              labels[i * M + m] = b.labels[i];
            }
          }
          images = { data, shape: [bn * M, bh, bw, bc] };
        }
        tf.dispose([b.xs, b.ys]);
        let oracle: Float32Array | undefined;
        if (options.oracle) {
          const [on, oh, ow] = images.shape;
          oracle = new Float32Array(on * 2);
          for (let i = 0; i < on; i++) {
            const box = b.boxes![Math.floor(i / M)][0];
            oracle[2 * i] = -1 + (box.x0 + box.x1) / ow;
            oracle[2 * i + 1] = -1 + (box.y0 + box.y1) / oh;
          }
        }
        let parts: { loss: number; action: number; hits: number } = { loss: 0, action: 0, hits: 0 };
        const { value, grads } = tf.variableGrads(() => {
          const r = ramRolloutHost(model, images, {
            sample: true,
            std: std(t),
            rng,
            boundary: options.boundary,
            fixedLocations: oracle,
            everyStep: options.reward === "step",
          });
          const p = ramHybridLoss(r, labels, options.reinforceWeight ?? 1, {
            normalizeAdvantage: options.normalizeAdvantage,
            group: M,
            reward: options.reward,
            discount: options.discount,
          });
          const mus = r.mus;
          for (let i = 0; i < mus.length; i++) {
            const a = Math.abs(mus[i]);
            muSum += a;
            if (a > 0.95) muSat++;
          }
          muN += mus.length;
          parts = {
            loss: p.loss.dataSync()[0],
            action: p.action.dataSync()[0],
            hits: p.hits.reduce((a, x) => a + x, 0),
          };
          return p.loss;
        });
        if (!locVars) {
          const rw = model.ramWeights();
          locVars = new Set(
            [rw.locFc.kernel, rw.locFc.bias, rw.locOut.kernel, rw.locOut.bias].map((v) => (v as tf.Variable).name),
          );
        }
        const main: { name: string; tensor: Tensor }[] = [], loc: { name: string; tensor: Tensor }[] = [];
        for (const [k, g] of Object.entries(grads)) (locVars.has(k) ? loc : main).push({ name: k, tensor: g });
        optimizer.applyGradients(main);
        if (loc.length && t >= (options.policyWarmup ?? 0)) locOptimizer.applyGradients(loc);
        tf.dispose([value, ...Object.values(grads)]);
        const m = labels.length;
        lossSum += parts.loss * m;
        actionSum += parts.action * m;
        hitSum += parts.hits;
        seen += m;
        steps++;
        bar?.update(batch + 1, { epoch: epoch + 1, epochs: options.epochs, loss: lossSum / seen, acc: hitSum / seen });
        await options.onBatchEnd?.({ epoch, batch, loss: parts.loss, acc: parts.hits / m });
        batch++;
        if (options.maxSteps !== undefined && steps >= options.maxSteps) break;
      }
      const log: RamEpochLog = {
        epoch,
        loss: lossSum / Math.max(1, seen),
        action: actionSum / Math.max(1, seen),
        acc: hitSum / Math.max(1, seen),
        lr: lr(epoch + 1),
        std: std(epoch + 1),
        seconds: 0,
        muAbs: muSum / Math.max(1, muN),
        muSaturated: muSat / Math.max(1, muN),
      };
      if (data.validation) {
        const v = evaluateRam(model, data.validation());
        log.valError = v.error;
        log.valInBoxPerStep = v.glimpseInBoxPerStep;
      }
      log.seconds = (performance.now() - start) / 1000;
      bar?.stop(
        log.valError !== undefined ? `  validation error ${(100 * log.valError).toFixed(2)}%` : undefined,
      );
      history.push(log);
      await options.onEpochEnd?.(log);
      if (options.maxSteps !== undefined && steps >= options.maxSteps) break;
    }
  } finally {
    optimizer.dispose();
    locOptimizer.dispose();
  }
  return history;
}

/** What {@link evaluateRam} gives. */
export interface RamEvaluation {
  /** Images evaluated. */
  n: number;
  /** Classification error (0..1), deterministic locations. */
  error: number;
  /** Mean NLL of the true class. */
  loss: number;
  /** Share of all glimpse centres inside the digit's box (NaN without boxes). */
  glimpseInBox: number;
  /** The same per glimpse t = 0 .. T-1. */
  glimpseInBoxPerStep: number[];
}

/** Whether the centre pixel of location (x, y) on an h x w image lies in the box (the retina's centre pixel). */
export function locationInBox(x: number, y: number, box: Box, h: number, w: number): boolean {
  const cx = Math.floor(((x + 1) * w) / 2);
  const cy = Math.floor(((y + 1) * h) / 2);
  return cx >= box.x0 && cx < box.x1 && cy >= box.y0 && cy < box.y1;
}

/**
 * Evaluates RAM with deterministic locations (l_0 the centre, l_t = mu_t, as at inference) on
 * batches; disposes them.
 */
export function evaluateRam(model: RecurrentAttentionModel, data: Iterable<RamBatch>): RamEvaluation {
  const T = model.config.glimpses;
  let n = 0, wrong = 0, nll = 0, boxed = 0;
  const inBox = new Array(T).fill(0);
  for (const b of data) {
    const images = hostImages(b.xs);
    tf.dispose([b.xs, b.ys]);
    const [m, h, w] = images.shape;
    const { lp, locations, k } = tf.tidy(() => {
      const r = ramRolloutHost(model, images, { sample: false });
      return { lp: r.logProbs.dataSync(), locations: r.locations, k: r.logProbs.shape[1] };
    });
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (lp[i * k + j] > lp[i * k + best]) best = j;
      if (best !== b.labels[i]) wrong++;
      nll -= lp[i * k + b.labels[i]];
      const box = b.boxes?.[i]?.[0];
      if (box) {
        boxed++;
        for (let t = 0; t < T; t++) {
          if (locationInBox(locations[(i * T + t) * 2], locations[(i * T + t) * 2 + 1], box, h, w)) inBox[t]++;
        }
      }
    }
    n += m;
  }
  const sum = inBox.reduce((a, x) => a + x, 0);
  return {
    n,
    error: wrong / Math.max(1, n),
    loss: nll / Math.max(1, n),
    glimpseInBox: boxed ? sum / (boxed * T) : NaN,
    glimpseInBoxPerStep: inBox.map((x) => (boxed ? x / boxed : NaN)),
  };
}

/** `meta.json` of a shipped RAM: {@link ShippedModelMeta} plus the format, config and input shape. */
export interface RamShippedMeta extends ShippedModelMeta {
  /** "ram-safetensors": `weights.safetensors` holds the PyTorch state_dict (kevinzakka's names). */
  format: "ram-safetensors";
  /** The {@link RecurrentAttentionModel} config. */
  config: RAMConfig;
  /** Input [H, W, C]. */
  inputShape: [number, number, number];
  /** Share of the test glimpse centres inside the digit's box (deterministic locations). */
  glimpseInBox?: number;
  /** The same per glimpse t = 0 .. T-1. */
  glimpseInBoxPerStep?: number[];
  /** Per-epoch training log. */
  history?: { epoch: number; loss: number; acc: number; valError: number | null }[];
}

/** Writes `weights.safetensors` (PyTorch names and layouts) and `meta.json` to `dir`. */
export async function saveRam(model: RecurrentAttentionModel, dir: string, meta: RamShippedMeta): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const sd = stateDict(model);
  try {
    await writeSafetensorsFile(`${dir}/weights.safetensors`, sd);
  } finally {
    tf.dispose(Object.values(sd));
  }
  await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta, null, 2) + "\n");
}

/** Loads a RAM saved by {@link saveRam} from `dir`. */
export async function loadRam(dir: string): Promise<{ model: RecurrentAttentionModel; meta: RamShippedMeta }> {
  const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as RamShippedMeta;
  if (meta.format !== "ram-safetensors") {
    throw new Error(
      `loadRam: expected meta.json format "ram-safetensors" in ${dir}, got ${JSON.stringify(meta.format)}`,
    );
  }
  const model = new RecurrentAttentionModel({ ...meta.config, name: meta.name });
  tf.tidy(() => void model.apply(tf.zeros([1, ...meta.inputShape]))); // builds it (and lets dispose() work)
  const file = await readSafetensorsFile(`${dir}/weights.safetensors`);
  loadStateDict(model, file.tensors, { strict: true });
  return { model, meta };
}

/**
 * Loads the shipped RAM trained on 60x60 translated MNIST (`data/models/ram_translated/`, made by
 * `deno task experiment:ram --save`): images [N, 60, 60, 1] in [0, 1]; `model.apply(x)` gives class
 * log-probabilities [N, 10] and, under `captureAttention`, the glimpse `locations` [N, T, 2].
 *
 * @example
 * ```ts
 * import { loadShippedRam } from "./ram_train.ts";
 * const { model, meta } = await loadShippedRam();
 * console.log(meta.testError, meta.config.glimpses);
 * ```
 */
export function loadShippedRam(
  name = "ram_translated",
): Promise<{ model: RecurrentAttentionModel; meta: RamShippedMeta }> {
  return loadRam(`${shippedModelsDir()}${name}`);
}
