/**
 * Show, Attend and Tell (Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
 * Visual Attention", ICML 2015) trained to read multi-digit MNIST images left to right.
 *
 * The model ({@link satModel}) is one `tf.LayersModel` with two inputs: the image `[N, H, W, 1]` in
 * [0, 1] (`image`) and the previous tokens, one-hot `[N, T, 11]` (`tokens`: token 10 is the start
 * token, then the digits read so far: teacher forcing). A small CNN (three 3x3 conv + ReLU layers,
 * 2x2 max pools after the first two: `enc_conv1`, `enc_conv2`, `features`) gives the grid of
 * annotation vectors `[N, H/4, W/4, C]` (9x16 cells of 4x4 pixels for 36x64 images), to which
 * {@link CoordinateChannels} (`coords`) append each cell's column and row in [-1, 1], and the
 * {@link ShowAttendTell} layer (`decoder`) attends over it and outputs the logits `[N, T, 11]`.
 * Saved with `fileIO`, it loads with `loadShippedModel` (the decoder is a registered class).
 *
 * Why the coordinates: the attention scores a cell by its content (`w^T tanh(W_a a_i + W_h h)`),
 * and a translation-equivariant CNN gives a digit the same features wherever it stands; without
 * them the first step cannot prefer the left digit (measured: 9% of test images read right after
 * 40,000 pairs, against the result in the README with them).
 *
 * Training ({@link trainSat}) minimises the cross-entropy of every step plus the doubly stochastic
 * penalty of Sec. 4.2.1 (`lambda * mean_i (1 - sum_t alpha_ti)^2`, {@link doublyStochasticPenalty})
 * with Adam and a cosine schedule; every epoch draws new digit pairs. Reading is greedy
 * ({@link readDigits}: `ShowAttendTell.generate`), and {@link evaluateSat} scores whole sequences,
 * single digits and, per step, whether the attention's peak falls in the box of the digit read.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { captureAttention } from "../capture.ts";
import { doublyStochasticPenalty, ShowAttendTell } from "../modules/show_attend_tell.ts";
import { batches, disposeBatch } from "../data/batches.ts";
import type { DigitDataset } from "../data/digits.ts";
import { hashSeed, withSeededRandom } from "../data/rng.ts";
import { CoordinateChannels } from "./coordinate_channels.ts";
import { massInBox, pointingHit } from "./localisation.ts";
import { type ProgressBar, stdoutIsTerminal, terminalProgress } from "./progress.ts";
import { loadShippedModel, type ShippedModelMeta } from "./shipped.ts";
import { cosineSchedule, softmaxCrossEntropy } from "./train.ts";
import type { LayersModel, Scalar, SymbolicTensor, Tensor, Tensor2D, Tensor4D, Variable } from "../types.ts";

/** The start token (the digits are 0..9). */
export const SAT_START = 10;
/** Vocabulary of the reader: ten digits and the start token. */
export const SAT_VOCAB = 11;

/** Options of {@link satModel}. */
export interface SatModelOptions {
  /** Image height. Default 36 (`multiDigitMnist`'s). */
  height?: number;
  /** Image width. Default 64 (two slots of 32). */
  width?: number;
  /** Digits read per image (decoding steps). Default 2. */
  digits?: number;
  /** Channels of the three conv layers of the encoder. Default [16, 32, 64]. */
  filters?: [number, number, number];
  /** Attention MLP size. Default 64. */
  attnDim?: number;
  /** Token embedding size. Default 16. */
  embedDim?: number;
  /** LSTM size. Default 128. */
  decoderDim?: number;
  /** Dropout before the word logits (training only). Default 0.2. */
  dropout?: number;
  /** Seed of the initial weights. Default 0. */
  seed?: number;
}

/**
 * Builds the reader: inputs `[image [N, H, W, 1], tokens [N, T, 11]]`, output logits `[N, T, 11]`;
 * the same initial weights for the same seed.
 *
 * @example
 * ```ts
 * import { satModel } from "./sat_train.ts";
 * const model = satModel({ seed: 1 }); // 36x64 images, two digits
 * model.getLayer("decoder"); // the ShowAttendTell layer
 * ```
 */
export function satModel(options: SatModelOptions = {}): LayersModel {
  const h = options.height ?? 36, w = options.width ?? 64, t = options.digits ?? 2;
  const [f1, f2, f3] = options.filters ?? [16, 32, 64];
  if (!(h >= 4 && w >= 4 && Number.isInteger(t) && t >= 1)) {
    throw new Error(`satModel: expected an image of at least 4x4 and digits >= 1, got ${h}x${w} and ${t}`);
  }
  return withSeededRandom(options.seed ?? 0, () => {
    const image = tfl.input({ shape: [h, w, 1], name: "image" });
    const tokens = tfl.input({ shape: [t, SAT_VOCAB], name: "tokens" });
    const conv = (name: string, filters: number) =>
      tfl.layers.conv2d({
        name,
        filters,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: "heNormal",
      });
    let x = conv("enc_conv1", f1).apply(image) as SymbolicTensor;
    x = tfl.layers.maxPooling2d({ name: "enc_pool1", poolSize: 2 }).apply(x) as SymbolicTensor;
    x = conv("enc_conv2", f2).apply(x) as SymbolicTensor;
    x = tfl.layers.maxPooling2d({ name: "enc_pool2", poolSize: 2 }).apply(x) as SymbolicTensor;
    x = conv("features", f3).apply(x) as SymbolicTensor;
    // the attention scores cells by content; the coordinates let it ask for the left or the right digit
    x = new CoordinateChannels({ name: "coords" }).apply(x) as SymbolicTensor;
    const decoder = new ShowAttendTell({
      name: "decoder",
      vocabSize: SAT_VOCAB,
      attnDim: options.attnDim ?? 64,
      embedDim: options.embedDim ?? 16,
      decoderDim: options.decoderDim ?? 128,
      dropout: options.dropout ?? 0.2,
    });
    const logits = decoder.apply([x, tokens]) as SymbolicTensor;
    return tfl.model({ inputs: [image, tokens], outputs: logits, name: "sat_reader" });
  });
}

/** Teacher-forcing inputs: one-hot `[N, T, 11]` of the start token then the first T-1 labels (labels `N * T`). */
export function teacherTokens(labels: ArrayLike<number>, n: number, steps: number): Tensor {
  if (labels.length !== n * steps) {
    throw new Error(`teacherTokens: expected ${n * steps} labels (${n} x ${steps}), got ${labels.length}`);
  }
  const prev = new Int32Array(n * steps);
  for (let i = 0; i < n; i++) {
    prev[i * steps] = SAT_START;
    for (let s = 1; s < steps; s++) prev[i * steps + s] = labels[i * steps + s - 1];
  }
  return tf.tidy(() => tf.reshape(tf.oneHot(tf.tensor1d(prev, "int32"), SAT_VOCAB), [n, steps, SAT_VOCAB]));
}

/** The decoder layer of a reader. */
function decoderOf(model: LayersModel): ShowAttendTell {
  const d = model.getLayer("decoder");
  if (!(d instanceof ShowAttendTell)) {
    throw new Error(`readDigits: expected a model with a ShowAttendTell layer 'decoder', got ${d?.getClassName()}`);
  }
  return d;
}

const encoders = new WeakMap<LayersModel, LayersModel>();

/** The encoder part of a reader (image -> feature grid), made once per model. */
function encoderOf(model: LayersModel): LayersModel {
  let e = encoders.get(model);
  if (!e) {
    e = tfl.model({ inputs: model.inputs[0], outputs: model.getLayer("coords").output as SymbolicTensor });
    encoders.set(model, e);
  }
  return e;
}

/** What {@link readDigits} gives; the caller disposes the tensors. */
export interface SatReading {
  /** Greedy tokens `[N, T]` (int32). */
  tokens: Tensor2D;
  /** The attention of each step `[N, T, h, w]` over the feature grid. */
  attention: Tensor4D;
}

/**
 * Reads images `[N, H, W, 1]` greedily from the start token, one digit per step.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { readDigits, satModel } from "./sat_train.ts";
 * const model = satModel();
 * const { tokens, attention } = readDigits(model, tf.zeros([1, 36, 64, 1])); // [1, 2], [1, 2, 9, 16]
 * ```
 */
export function readDigits(model: LayersModel, images: Tensor4D): SatReading {
  const steps = (model.inputs[1].shape[1] as number) ?? 2;
  const [, h, w] = model.inputs[0].shape as number[];
  if (images.rank !== 4 || images.shape[1] !== h || images.shape[2] !== w || images.shape[3] !== 1) {
    throw new Error(`readDigits: expected images [N, ${h}, ${w}, 1], got [${images.shape.join(", ")}]`);
  }
  const features = encoderOf(model).predict(images) as Tensor4D;
  try {
    return decoderOf(model).generate(features, SAT_START, steps);
  } finally {
    features.dispose();
  }
}

/** Scores of a reader on a test set. */
export interface SatEvaluation {
  /** Share of images with every digit right (greedy decoding). */
  sequenceAcc: number;
  /** Share of digits right. */
  digitAcc: number;
  /** Per decoding step: accuracy, pointing (the attention's peak cell in the box of that step's digit) and mass in that box. */
  steps: { acc: number; pointing: number; massInBox: number }[];
  /** Images scored. */
  count: number;
}

/**
 * Greedy reading accuracy and attention localisation of a reader on a digit set.
 *
 * @example
 * ```ts
 * import { evaluateSat, loadMnist, multiDigitMnist, satModel } from "../../mod.ts";
 * const test = multiDigitMnist(await loadMnist({ split: "test", limit: 200 }), { digits: 2, count: 64, seed: 1 });
 * const e = evaluateSat(satModel(), test); // e.sequenceAcc, e.steps[0].pointing
 * ```
 */
export function evaluateSat(model: LayersModel, ds: DigitDataset, options: { batchSize?: number } = {}): SatEvaluation {
  const d = ds.digits;
  let seqRight = 0, digitRight = 0, count = 0;
  const steps = Array.from({ length: d }, () => ({ acc: 0, pointing: 0, massInBox: 0 }));
  const opts = { imageHeight: ds.height, imageWidth: ds.width };
  for (const b of batches(ds, { batchSize: options.batchSize ?? 250 })) {
    const r = readDigits(model, b.xs);
    const tok = r.tokens.dataSync();
    const att = r.attention.dataSync();
    const [n, , hh, ww] = r.attention.shape;
    tf.dispose([r.tokens, r.attention]);
    for (let i = 0; i < n; i++) {
      let all = true;
      for (let s = 0; s < d; s++) {
        const ok = tok[i * d + s] === b.labels[i * d + s];
        all &&= ok;
        if (ok) {
          digitRight++;
          steps[s].acc++;
        }
        const map = att.subarray((i * d + s) * hh * ww, (i * d + s + 1) * hh * ww);
        steps[s].pointing += pointingHit(map, hh, ww, b.boxes[i][s], opts);
        steps[s].massInBox += massInBox(map, hh, ww, b.boxes[i][s], { ...opts, baseline: "zero" });
      }
      if (all) seqRight++;
    }
    count += n;
    disposeBatch(b);
  }
  return {
    sequenceAcc: seqRight / count,
    digitAcc: digitRight / (count * d),
    steps: steps.map((s) => ({ acc: s.acc / count, pointing: s.pointing / count, massInBox: s.massInBox / count })),
    count,
  };
}

/** Options of {@link trainSat}. */
export interface SatTrainOptions {
  /** Epochs. Default 2. */
  epochs?: number;
  /** Batch size. Default 64. */
  batchSize?: number;
  /** Peak learning rate of the cosine schedule (Adam). Default 3e-3. */
  learningRate?: number;
  /** Weight lambda of the doubly stochastic penalty. Default 1 (sgrvinod's alpha_c). */
  lambda?: number;
  /** Seed of the dropout of every step. Default 0. */
  seed?: number;
  /** Terminal progress bar: true, false or "auto" (when stdout is a terminal). Default "auto". */
  progress?: boolean | "auto";
  /** Stop after this many steps (for tests). */
  maxSteps?: number;
  /** Called after every batch. */
  onBatchEnd?: (log: { epoch: number; batch: number; loss: number; penalty: number; acc: number }) => void;
}

/** One epoch of {@link trainSat}. */
export interface SatEpochLog {
  /** Epoch, 0-based. */
  epoch: number;
  /** Mean cross-entropy per decoding step. */
  loss: number;
  /** Mean doubly stochastic penalty (lambda included). */
  penalty: number;
  /** Teacher-forced share of sequences fully right. */
  acc: number;
  /** Seconds. */
  seconds: number;
}

/**
 * Trains a reader on the digit sets `train(epoch)` (the same set for the same epoch: the caller
 * seeds them), teacher forcing, cross-entropy + doubly stochastic penalty, Adam with a cosine
 * schedule (10% warm-up). Returns the epoch logs.
 *
 * @example
 * ```ts
 * import { loadMnist, multiDigitMnist, satModel, trainSat } from "../../mod.ts";
 * const src = await loadMnist({ split: "train", limit: 1000 });
 * const model = satModel({ seed: 1 });
 * const logs = await trainSat(model, (e) => multiDigitMnist(src, { digits: 2, count: 256, seed: e }), { epochs: 1 });
 * ```
 */
export async function trainSat(
  model: LayersModel,
  train: (epoch: number) => DigitDataset,
  options: SatTrainOptions = {},
): Promise<SatEpochLog[]> {
  const epochs = options.epochs ?? 2;
  const batchSize = options.batchSize ?? 64;
  const lambda = options.lambda ?? 1;
  const seed = options.seed ?? 0;
  const lrOf = cosineSchedule(options.learningRate ?? 3e-3, epochs, { warmup: Math.min(0.1, epochs / 10) });
  const opt = tf.train.adam(lrOf(0)) as unknown as tf.Optimizer & { learningRate: number };
  const vars = model.trainableWeights.map((w) => w.read() as Variable);
  const useBar = options.progress === true || ((options.progress ?? "auto") === "auto" && stdoutIsTerminal());
  const bar: ProgressBar | null = useBar ? terminalProgress() : null;
  const logs: SatEpochLog[] = [];
  let steps = 0;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const t0 = performance.now();
      const ds = train(epoch);
      const d = ds.digits;
      const total = Math.floor(ds.size / batchSize);
      let lossSum = 0, penSum = 0, right = 0, rows = 0, batch = 0;
      bar?.start(total, { epoch: epoch + 1, epochs, loss: NaN, acc: NaN });
      for (const b of batches(ds, { batchSize, dropRemainder: true })) {
        if (options.maxSteps !== undefined && steps >= options.maxSteps) {
          disposeBatch(b);
          break;
        }
        opt.learningRate = lrOf(epoch + batch / total);
        const n = b.xs.shape[0];
        const tokens = teacherTokens(b.labels, n, d);
        const ys = tf.tidy(() => tf.pad(b.ys, [[0, 0], [0, 0], [0, SAT_VOCAB - 10]]));
        const [l, p, c] = withSeededRandom(hashSeed(seed, epoch, batch), () => {
          let ce: Tensor | undefined, pen: Tensor | undefined, ok: Tensor | undefined;
          const cost = opt.minimize(
            () => {
              const cap = captureAttention(() => model.apply([b.xs, tokens], { training: true }) as Tensor, {
                include: (_layer, map) => map === "attention",
              });
              try {
                const logits = cap.result;
                ce = tf.keep(softmaxCrossEntropy(ys, logits));
                pen = tf.keep(doublyStochasticPenalty(cap.maps.decoder.attention, lambda));
                ok = tf.keep(tf.sum(tf.cast(tf.all(tf.equal(tf.argMax(logits, -1), tf.argMax(ys, -1)), 1), "float32")));
                return tf.add(ce, pen) as Scalar;
              } finally {
                cap.dispose();
              }
            },
            true,
            vars,
          )!;
          const out = [ce!.dataSync()[0], pen!.dataSync()[0], ok!.dataSync()[0]];
          tf.dispose([cost, ce!, pen!, ok!]);
          return out;
        });
        tf.dispose([tokens, ys]);
        disposeBatch(b);
        if (!Number.isFinite(l)) throw new Error(`trainSat: the loss became ${l} at epoch ${epoch}, batch ${batch}`);
        lossSum += l * n;
        penSum += p * n;
        right += c;
        rows += n;
        steps++;
        batch++;
        bar?.update(batch, { epoch: epoch + 1, epochs, loss: lossSum / rows, acc: right / rows });
        options.onBatchEnd?.({ epoch, batch: batch - 1, loss: l, penalty: p, acc: c / n });
        if (batch % 20 === 0) await new Promise((r) => setTimeout(r, 0)); // let timers and output run
      }
      bar?.stop();
      if (rows > 0) {
        logs.push({
          epoch,
          loss: lossSum / rows,
          penalty: penSum / rows,
          acc: right / rows,
          seconds: (performance.now() - t0) / 1000,
        });
      }
      if (options.maxSteps !== undefined && steps >= options.maxSteps) break;
    }
  } finally {
    opt.dispose();
  }
  return logs;
}

/**
 * Loads the shipped reader `data/models/sat_two_digits` (see `deno task experiment:sat`) and its
 * metadata: inputs `[image [N, 36, 64, 1], tokens [N, 2, 11]]`; read with {@link readDigits}.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { loadShippedSat, readDigits } from "../../mod.ts";
 * const { model, meta } = await loadShippedSat();
 * const r = readDigits(model, tf.zeros([1, 36, 64, 1]));
 * ```
 */
export function loadShippedSat(name = "sat_two_digits"): Promise<{ model: LayersModel; meta: ShippedModelMeta }> {
  return loadShippedModel(name);
}
