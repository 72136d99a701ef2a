/**
 * A training loop for classifiers that output logits: Adam (or SGD), softmax cross-entropy,
 * accuracy, a learning-rate schedule, early stopping, a terminal progress bar, callbacks for
 * notebooks, and checkpoints that resume exactly.
 *
 * The loop is custom (`optimizer.minimize` per batch) rather than `model.fit`, so that it can be
 * reproduced and resumed bit for bit: the data order of epoch `e` comes from the caller's
 * `data.train(e)` (seeded), every training step runs with `Math.random` seeded by
 * `(seed, epoch, batch)` (dropout and other random ops), and a checkpoint stores the weights, the
 * optimizer's slots and its bias-correction powers.
 *
 * Checkpoint folder layout (`checkpointDir`):
 * - `last/`: `model.json` + `weights.bin` (the {@link fileIO} format, loadable with
 *   `tf.loadLayersModel(fileIO(dir))`), `optimizer.json` + `optimizer.bin` (the optimizer's
 *   variables, float32 little-endian, in the order `optimizer.getWeights()` gives), `state.json`
 *   (epochs done, history, early-stopping state). Written to a temporary folder, then renamed.
 * - `best/`: the weights of the best epoch by the monitored metric, and its `state.json`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { fileIO } from "../interop/file_io.ts";
import { hashSeed, withSeededRandom } from "../data/rng.ts";
import { type ProgressBar, stdoutIsTerminal, terminalProgress } from "./progress.ts";
import * as fused from "./fused_optimizers.ts";
import type { LayersModel, Scalar, Tensor } from "../types.ts";

/** A batch for the loop. The loop disposes `xs` and `ys`. */
export interface TrainBatch {
  /** Inputs. */
  xs: Tensor;
  /** One-hot targets, shaped like the logits. */
  ys: Tensor;
}

/** The data of a training run. */
export interface TrainData {
  /** The batches of epoch `epoch` (0-based), the same for the same epoch (seeded order). */
  train(epoch: number): Iterable<TrainBatch>;
  /** Batches per epoch (for the progress bar). */
  trainBatches?: number;
  /** The validation batches (used for `valLoss` / `valAcc` and early stopping). */
  validation?(): Iterable<TrainBatch>;
}

/** A metric the loop can monitor. */
export type Monitor = "loss" | "acc" | "valLoss" | "valAcc";

/** Early stopping: stop when `monitor` has not improved by `minDelta` for `patience` epochs. */
export interface EarlyStoppingOptions {
  /** Metric to watch. Default "valLoss" (or "loss" without validation data). */
  monitor?: Monitor;
  /** Epochs without improvement before stopping. Default 3. */
  patience?: number;
  /** Smallest change that counts as an improvement. Default 0. */
  minDelta?: number;
  /** Put the best epoch's weights back at the end. Default true. */
  restoreBest?: boolean;
}

/** What {@link train}'s `onBatchEnd` gets. */
export interface BatchLog {
  /** Epoch, 0-based. */
  epoch: number;
  /** Batch in the epoch, 0-based. */
  batch: number;
  /** Batches per epoch, when known. */
  batches?: number;
  /** Loss of this batch. */
  loss: number;
  /** Accuracy of this batch. */
  acc: number;
  /** Learning rate used. */
  lr: number;
}

/** One epoch's metrics. */
export interface EpochLog {
  /** Epoch, 0-based. */
  epoch: number;
  /** Mean training loss (per sample). */
  loss: number;
  /** Training accuracy. */
  acc: number;
  /** Validation loss. */
  valLoss?: number;
  /** Validation accuracy. */
  valAcc?: number;
  /** Learning rate at the end of the epoch. */
  lr: number;
  /** Seconds the epoch took (training and validation). */
  seconds: number;
}

/** Options of {@link train}. */
export interface TrainOptions {
  /** Total epochs (a resumed run continues up to this). */
  epochs: number;
  /** Optimizer. Default "adam". Adam and momentum (0.9) update each variable in one SIMD pass on wasm, bit-equal to tfjs's (`fused_optimizers.ts`). */
  optimizer?: "adam" | "sgd" | "momentum";
  /**
   * Learning rate, or a schedule of the position in training `t = epoch + batch / batches`
   * (see {@link cosineSchedule}). Default 1e-3.
   */
  learningRate?: number | ((t: number) => number);
  /** Seed of the training steps' random ops. Default 0. */
  seed?: number;
  /** Early stopping, off when absent. */
  earlyStopping?: EarlyStoppingOptions;
  /** Save a checkpoint after every epoch in this folder. */
  checkpointDir?: string;
  /** Continue from `checkpointDir/last` when it exists. Default false. */
  resume?: boolean;
  /** Terminal progress bar: true, false, or "auto" (when stdout is a terminal). Default "auto". */
  progress?: boolean | "auto";
  /** Called after every batch (live notebook progress). */
  onBatchEnd?: (log: BatchLog) => void | Promise<void>;
  /** Called after every epoch. */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /** Loss of a batch from one-hot targets and logits. Default: softmax cross-entropy. */
  loss?: (ys: Tensor, logits: Tensor) => Scalar;
  /** Stop after this many training steps in total (for tests; the epoch is then left unfinished). */
  maxSteps?: number;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** Every epoch's log, resumed epochs included. */
  history: EpochLog[];
  /** Whether early stopping ended the run. */
  stoppedEarly: boolean;
  /** The best epoch by the monitored metric (when early stopping is on), else the last. */
  bestEpoch: number;
  /** Epochs completed in total. */
  epochs: number;
  /** The epoch the run resumed from (epochs already done), or 0. */
  resumedFrom: number;
  /** Seconds this call took. */
  seconds: number;
}

/** What `state.json` of a checkpoint holds. */
export interface CheckpointState {
  /** Format version. */
  version: 1;
  /** Epochs completed. */
  epochsDone: number;
  /** Steps (batches) completed. */
  steps: number;
  /** Epoch logs. */
  history: EpochLog[];
  /** Early stopping: best value, its epoch and the epochs since. */
  best?: { value: number; epoch: number; wait: number };
  /** Seed of the run. */
  seed: number;
  /** Optimizer name. */
  optimizer: string;
}

/**
 * Cosine decay from `base` to `base * floor` over `epochs`, after a linear warm-up of
 * `warmup` epochs.
 *
 * @example
 * ```ts
 * import { cosineSchedule } from "./train.ts";
 * const lr = cosineSchedule(3e-3, 5, { warmup: 0.2 });
 * lr(0); lr(2.5); lr(5);
 * ```
 */
export function cosineSchedule(
  base: number,
  epochs: number,
  options: { warmup?: number; floor?: number } = {},
): (t: number) => number {
  const warmup = options.warmup ?? 0;
  const floor = options.floor ?? 0.02;
  return (t) => {
    if (t < warmup) return base * Math.max(0.05, t / warmup);
    const p = Math.min(1, (t - warmup) / Math.max(1e-9, epochs - warmup));
    return base * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
  };
}

/** Softmax cross-entropy on logits, mean over the batch (and sequence positions). */
export function softmaxCrossEntropy(ys: Tensor, logits: Tensor): Scalar {
  return tf.tidy(() => tf.mean(tf.neg(tf.sum(tf.mul(ys, tf.logSoftmax(logits)), -1))) as Scalar);
}

/** Number of rows whose arg-max of the logits matches the one-hot target (a scalar tensor). */
function correctCount(ys: Tensor, logits: Tensor): Tensor {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(ys, -1), tf.argMax(logits, -1)), "float32")));
}

/** Rows in a batch (all axes but the class axis). */
function rowsOf(ys: Tensor): number {
  return ys.size / ys.shape[ys.shape.length - 1];
}

/** Loss and accuracy of `model` over some batches (inference mode). */
export interface Evaluation {
  /** Mean loss per sample. */
  loss: number;
  /** Accuracy. */
  acc: number;
  /** Samples (rows) seen. */
  count: number;
}

/**
 * Mean loss and accuracy of a logits model over batches (disposes them).
 *
 * @example
 * ```ts
 * import { evaluate } from "./train.ts";
 * // const { loss, acc } = evaluate(model, batches(testSet, { batchSize: 256 }));
 * ```
 */
export function evaluate(
  model: LayersModel,
  data: Iterable<TrainBatch>,
  loss: (ys: Tensor, logits: Tensor) => Scalar = softmaxCrossEntropy,
): Evaluation {
  let sum = 0, correct = 0, count = 0;
  for (const { xs, ys } of data) {
    const [l, c] = tf.tidy(() => {
      const logits = model.predict(xs) as Tensor;
      return [loss(ys, logits).dataSync()[0], correctCount(ys, logits).dataSync()[0]];
    });
    const rows = rowsOf(ys);
    sum += l * rows;
    correct += c;
    count += rows;
    xs.dispose();
    ys.dispose();
  }
  return { loss: count ? sum / count : NaN, acc: count ? correct / count : NaN, count };
}

type AnyOptimizer = tf.Optimizer & { learningRate?: number };

function makeOptimizer(kind: string, lr: number): AnyOptimizer {
  switch (kind) {
    case "adam":
      return fused.adam(lr) as unknown as AnyOptimizer;
    case "sgd":
      return tf.train.sgd(lr) as unknown as AnyOptimizer;
    case "momentum":
      return fused.momentum(lr, 0.9) as unknown as AnyOptimizer;
  }
  throw new Error(`train: unknown optimizer '${kind}' (adam, sgd, momentum)`);
}

/** Sets the learning rate of a tfjs optimizer (SGD keeps it as a scalar tensor, Adam as a number). */
function setLearningRate(opt: AnyOptimizer, lr: number): void {
  if (opt.learningRate === lr) return;
  const sgd = opt as unknown as { setLearningRate?: (lr: number) => void };
  if (typeof sgd.setLearningRate === "function") sgd.setLearningRate(lr);
  else opt.learningRate = lr;
}

/** Adam's bias-correction powers, which `setWeights` recomputes with `pow` (not bit-exact). */
interface AdamInternals {
  accBeta1?: tf.Variable;
  accBeta2?: tf.Variable;
}

async function saveOptimizer(opt: AnyOptimizer, dir: string): Promise<void> {
  const named = await opt.getWeights();
  const specs = [];
  const parts: Float32Array[] = [];
  for (const { name, tensor } of named) {
    specs.push({ name, shape: tensor.shape, dtype: tensor.dtype });
    parts.push(Float32Array.from(await tensor.data() as Float32Array));
  }
  const internals = opt as unknown as AdamInternals;
  const extra: Record<string, number> = {};
  if (internals.accBeta1 && internals.accBeta2) {
    extra.accBeta1 = (await internals.accBeta1.data())[0];
    extra.accBeta2 = (await internals.accBeta2.data())[0];
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const all = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  // the iteration count is a saved tensor too (tfjs' saveIterations); it is read back from it
  for (const t of named) if (t.name === "iter") t.tensor.dispose();
  await Deno.writeFile(`${dir}/optimizer.bin`, new Uint8Array(all.buffer));
  await Deno.writeTextFile(`${dir}/optimizer.json`, JSON.stringify({ weights: specs, extra }));
}

async function loadOptimizer(opt: AnyOptimizer, dir: string): Promise<void> {
  const meta = JSON.parse(await Deno.readTextFile(`${dir}/optimizer.json`)) as {
    weights: { name: string; shape: number[]; dtype: tf.DataType }[];
    extra: Record<string, number>;
  };
  const bytes = await Deno.readFile(`${dir}/optimizer.bin`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const expected = meta.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  if (all.length !== expected) {
    throw new Error(`train: ${dir}/optimizer.bin holds ${all.length} values, optimizer.json expects ${expected}`);
  }
  let o = 0;
  const named = meta.weights.map((w) => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const tensor = tf.tensor(all.subarray(o, o + n), w.shape, w.dtype);
    o += n;
    return { name: w.name, tensor };
  });
  await opt.setWeights(named);
  tf.dispose(named.map((n) => n.tensor));
  const internals = opt as unknown as AdamInternals;
  if (internals.accBeta1 && internals.accBeta2 && meta.extra.accBeta1 !== undefined) {
    internals.accBeta1.assign(tf.scalar(meta.extra.accBeta1));
    internals.accBeta2.assign(tf.scalar(meta.extra.accBeta2));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function saveCheckpoint(
  model: LayersModel,
  opt: AnyOptimizer | null,
  dir: string,
  sub: "last" | "best",
  state: CheckpointState,
): Promise<void> {
  const tmp = `${dir}/.${sub}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await model.save(fileIO(tmp));
  if (opt) await saveOptimizer(opt, tmp);
  await Deno.writeTextFile(`${tmp}/state.json`, JSON.stringify(state, null, 1));
  await Deno.remove(`${dir}/${sub}`, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, `${dir}/${sub}`);
}

/** Copies the weights of the model saved in `dir` into `model` (same architecture). */
export async function loadWeightsInto(model: LayersModel, dir: string): Promise<void> {
  const saved = await tfl.loadLayersModel(fileIO(dir));
  try {
    const w = saved.getWeights();
    const own = model.getWeights();
    if (w.length !== own.length || w.some((t, i) => t.size !== own[i].size)) {
      throw new Error(`loadWeightsInto: the model in ${dir} does not match (${w.length} vs ${own.length} weights)`);
    }
    model.setWeights(w);
  } finally {
    saved.dispose();
  }
}

/** Reads a checkpoint's `state.json`, or null when `dir` has none. */
export async function readCheckpointState(dir: string): Promise<CheckpointState | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/state.json`)) as CheckpointState;
  } catch {
    return null;
  }
}

function better(monitor: Monitor, a: number, b: number, minDelta: number): boolean {
  return monitor.endsWith("cc") ? a > b + minDelta : a < b - minDelta;
}

/**
 * Trains a logits classifier.
 *
 * @example
 * ```ts
 * import { attentionCnn, batches, clutteredMnist, loadMnist, train } from "../../mod.ts";
 * const ds = clutteredMnist(await loadMnist({ split: "train", limit: 512 }), { seed: 1 });
 * const model = attentionCnn({ attention: "cbam", seed: 1 });
 * const result = await train(model, {
 *   train: (epoch) => batches(ds, { batchSize: 64, shuffle: true, seed: 1, epoch }),
 * }, { epochs: 1, learningRate: 2e-3, onEpochEnd: (log) => console.log(log) });
 * ```
 */
export async function train(model: LayersModel, data: TrainData, options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const seed = options.seed ?? 0;
  const lossFn = options.loss ?? softmaxCrossEntropy;
  const lrOf = typeof options.learningRate === "function"
    ? options.learningRate
    : ((lr: number) => () => lr)(options.learningRate ?? 1e-3);
  const optName = options.optimizer ?? "adam";
  const opt = makeOptimizer(optName, lrOf(0));
  const es = options.earlyStopping;
  const monitor: Monitor = es?.monitor ?? (data.validation ? "valLoss" : "loss");
  if (es && monitor.startsWith("val") && !data.validation) {
    throw new Error(`train: early stopping monitors ${monitor} but there is no validation data`);
  }
  const patience = es?.patience ?? 3;
  const minDelta = es?.minDelta ?? 0;
  const dir = options.checkpointDir;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);

  let history: EpochLog[] = [];
  let best: CheckpointState["best"];
  let start = 0;
  let steps = 0;
  if (options.resume && dir && await exists(`${dir}/last/state.json`)) {
    const state = (await readCheckpointState(`${dir}/last`))!;
    await loadWeightsInto(model, `${dir}/last`);
    // Adam creates its slots on the first step; make them exist before restoring them.
    if (state.steps > 0 && await exists(`${dir}/last/optimizer.json`)) await loadOptimizer(opt, `${dir}/last`);
    history = state.history;
    best = state.best;
    start = state.epochsDone;
    steps = state.steps;
  }
  const resumedFrom = start;
  let bestWeights: Tensor[] | null = null;
  const useBar = options.progress === true || ((options.progress ?? "auto") === "auto" && stdoutIsTerminal());
  const bar: ProgressBar | null = useBar ? terminalProgress() : null;
  let stoppedEarly = history.length > 0 && best !== undefined && best.wait >= patience && !!es;
  let stopSteps = false;

  try {
    for (let epoch = start; epoch < options.epochs && !stoppedEarly && !stopSteps; epoch++) {
      const te = performance.now();
      let lossSum = 0, correct = 0, rows = 0, batch = 0;
      const total = data.trainBatches;
      bar?.start(total ?? 0, { epoch: epoch + 1, epochs: options.epochs, loss: NaN, acc: NaN });
      let lr = lrOf(epoch);
      for (const { xs, ys } of data.train(epoch)) {
        if (options.maxSteps !== undefined && steps >= options.maxSteps) {
          xs.dispose();
          ys.dispose();
          stopSteps = true;
          break;
        }
        lr = lrOf(epoch + (total ? batch / total : 0));
        setLearningRate(opt, lr);
        const [l, c] = withSeededRandom(hashSeed(seed, epoch, batch), () => {
          let count: Tensor | undefined;
          const cost = opt.minimize(
            () => {
              const logits = model.apply(xs, { training: true }) as Tensor;
              count = tf.keep(correctCount(ys, logits));
              return lossFn(ys, logits);
            },
            true,
            vars,
          )!;
          const out = [cost.dataSync()[0], count!.dataSync()[0]];
          cost.dispose();
          count!.dispose();
          return out;
        });
        const n = rowsOf(ys);
        xs.dispose();
        ys.dispose();
        if (!Number.isFinite(l)) throw new Error(`train: the loss became ${l} at epoch ${epoch}, batch ${batch}`);
        lossSum += l * n;
        correct += c;
        rows += n;
        steps++;
        bar?.update(batch + 1, { epoch: epoch + 1, epochs: options.epochs, loss: lossSum / rows, acc: correct / rows });
        await options.onBatchEnd?.({ epoch, batch, batches: total, loss: l, acc: c / n, lr });
        batch++;
      }
      if (stopSteps) {
        bar?.stop();
        break;
      }
      const log: EpochLog = { epoch, loss: lossSum / rows, acc: correct / rows, lr, seconds: 0 };
      if (data.validation) {
        const v = evaluate(model, data.validation(), lossFn);
        log.valLoss = v.loss;
        log.valAcc = v.acc;
      }
      log.seconds = (performance.now() - te) / 1000;
      history.push(log);
      bar?.stop(
        log.valLoss !== undefined
          ? `  val loss ${log.valLoss.toFixed(4)} val acc ${log.valAcc!.toFixed(4)}`
          : undefined,
      );
      let improved = false;
      if (es) {
        const value = log[monitor] as number;
        if (best === undefined || better(monitor, value, best.value, minDelta)) {
          best = { value, epoch, wait: 0 };
          improved = true;
          if (es.restoreBest ?? true) {
            tf.dispose(bestWeights ?? []);
            bestWeights = model.getWeights().map((w) => tf.keep(tf.clone(w)));
          }
        } else {
          best.wait++;
          if (best.wait >= patience) stoppedEarly = true;
        }
      }
      if (dir) {
        const state: CheckpointState = {
          version: 1,
          epochsDone: epoch + 1,
          steps,
          history,
          best,
          seed,
          optimizer: optName,
        };
        await saveCheckpoint(model, opt, dir, "last", state);
        if (improved || !es) await saveCheckpoint(model, null, dir, "best", state);
      }
      await options.onEpochEnd?.(log);
    }
    if (es && (es.restoreBest ?? true) && best) {
      if (bestWeights) model.setWeights(bestWeights);
      else if (dir && await exists(`${dir}/best/model.json`) && best.epoch < history.length - 1) {
        await loadWeightsInto(model, `${dir}/best`);
      }
    }
  } finally {
    tf.dispose(bestWeights ?? []);
    opt.dispose();
  }
  return {
    history,
    stoppedEarly,
    bestEpoch: es && best ? best.epoch : history.length - 1,
    epochs: history.length,
    resumedFrom,
    seconds: (performance.now() - t0) / 1000,
  };
}
