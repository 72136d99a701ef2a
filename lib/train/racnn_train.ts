/**
 * Training, evaluation, saving and loading of a two-scale {@link RACNN} (Fu, Zheng, Mei, "Look
 * Closer to See Better: Recurrent Attention Convolutional Neural Network for Fine-grained Image
 * Recognition", CVPR 2017) on digit sets such as 60x60 cluttered MNIST.
 *
 * The paper's schedule (Sec. 3.4): pre-train the scale-1 CNN; initialise the APN with the square
 * around the highest response of the last conv layer; then alternate, until both converge,
 * between the classification losses (APN fixed) and the pairwise ranking loss (CNNs fixed).
 * {@link trainRacnn} follows it in three phases, with one simplification: the alternation is per
 * batch (a classification step, then a ranking step on the same batch) instead of per converged
 * phase, which a few-minute budget cannot afford.
 *
 * 1. `scale1`: CE of scale 1 only (cnn1, head1); then scale 2 starts from a copy of scale 1's
 *    weights (`shareInit`), as the paper starts every scale from the same pre-trained VGG.
 * 2. `apnInit`: the APN (only) regresses its square (tx, ty, tl) / side onto the square of half
 *    side `initHalfSide` centred on the peak of the channel-summed last feature map of scale 1.
 * 3. `alternate`: per batch, CE1 + CE2 on the CNNs and classifiers, then the ranking loss on the APN.
 *
 * The fused prediction ({@link evaluateRacnn}) averages the two scales' softmax probabilities (the
 * paper concatenates the scales' descriptors into a fused classifier).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { RACNN, type RACNNConfig } from "../modules/racnn_apn.ts";
import { batches, disposeBatch } from "../data/batches.ts";
import type { Box, DigitDataset } from "../data/digits.ts";
import { withSeededRandom } from "../data/rng.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../interop/safetensors.ts";
import { toTensor } from "../interop/raw_tensor.ts";
import { type ProgressBar, stdoutIsTerminal, terminalProgress } from "./progress.ts";
import { type ShippedModelMeta, shippedModelsDir } from "./shipped.ts";
import { cosineSchedule, softmaxCrossEntropy } from "./train.ts";
import type { Scalar, Tensor, Tensor1D, Tensor2D, Tensor4D, Variable } from "../types.ts";

/** Builds an RA-CNN with the same initial weights for the same seed (all parts built). */
export function racnnModel(config: Partial<RACNNConfig> & { imageSize: number }, seed = 0): RACNN {
  return withSeededRandom(seed, () => {
    const m = new RACNN(config);
    m.build();
    return m;
  });
}

/** Options of {@link trainRacnn}. */
export interface RacnnTrainOptions {
  /** Images of phase 1 (scale 1 alone). Default 20000. */
  scale1Images?: number;
  /** Images of phase 2 (APN initialisation). Default 4000. */
  apnInitImages?: number;
  /** Images of phase 3 (alternating classification and ranking steps). Default 20000. */
  alternateImages?: number;
  /** Batch size. Default 64. */
  batchSize?: number;
  /** Peak learning rate of the CNNs (Adam, cosine schedule per phase). Default 3e-3. */
  learningRate?: number;
  /** Learning rate of the APN (Adam). Default 1e-3. */
  apnLearningRate?: number;
  /** Margin of the ranking loss. Default 0.05 (the paper's). */
  margin?: number;
  /** Half side of the APN's initial square, as a fraction of the image side. Default 0.25. */
  initHalfSide?: number;
  /** Start scale 2 (CNN and classifier) from scale 1's weights after phase 1. Default true. */
  shareInit?: boolean;
  /** Seed of the data order. Default 0. */
  seed?: number;
  /** Terminal progress bar: true, false or "auto". Default "auto". */
  progress?: boolean | "auto";
  /** Called after every step. */
  onStep?: (log: { phase: RacnnPhase; step: number; loss: number }) => void;
}

/** A phase of {@link trainRacnn}. */
export type RacnnPhase = "scale1" | "apnInit" | "alternate";

/** One phase's summary. */
export interface RacnnPhaseLog {
  /** The phase. */
  phase: RacnnPhase;
  /** Steps. */
  steps: number;
  /** Mean loss of the first 10% of the steps. */
  firstLoss: number;
  /** Mean loss of the last 10% of the steps. */
  lastLoss: number;
  /** Mean ranking loss of phase 3's APN steps (absent otherwise). */
  rankLoss?: number;
  /** Seconds. */
  seconds: number;
}

const poolOf = (m: RACNN, f: Tensor) => m.config.pool === "max" ? tf.max(f, [1, 2]) : tf.mean(f, [1, 2]);

/** Scale 1 alone: logits [N, K] and the last feature map. */
function scale1(m: RACNN, x: Tensor4D): { logits: Tensor2D; features: Tensor4D } {
  const features = m.cnn1.apply(x) as Tensor4D;
  return { logits: m.head1.apply(poolOf(m, features)) as Tensor2D, features };
}

/** The phase-2 target: the square of half side `half` (pixels) centred on the peak of the summed feature map. */
function peakSquare(features: Tensor4D, imageSize: number, half: number): Tensor2D {
  return tf.tidy(() => {
    const [n, h, w] = features.shape;
    const idx = tf.argMax(tf.reshape(tf.sum(features, 3), [n, h * w]), 1);
    const row = tf.floorDiv(idx, w), col = tf.mod(idx, w);
    const cy = tf.mul(tf.add(tf.cast(row, "float32"), 0.5), imageSize / h);
    const cx = tf.mul(tf.add(tf.cast(col, "float32"), 0.5), imageSize / w);
    const clamp = (t: Tensor) => tf.clipByValue(t, half, imageSize - half);
    return tf.stack([clamp(cx), clamp(cy), tf.fill([n], half)], 1) as Tensor2D;
  });
}

/**
 * Trains an RA-CNN in the three phases of the module doc on `ds` (single-digit set; phases take
 * consecutive samples, so the caller sizes `ds` to at least the sum of the phases' images).
 *
 * @example
 * ```ts
 * import { clutteredMnist, loadMnist, racnnModel, trainRacnn } from "../../mod.ts";
 * const ds = clutteredMnist(await loadMnist({ split: "train", limit: 2000 }), { seed: 1 });
 * const m = racnnModel({ imageSize: 60, filters: [8, 16], zoomSize: 32 }, 1);
 * const logs = await trainRacnn(m, ds, { scale1Images: 256, apnInitImages: 128, alternateImages: 256 });
 * ```
 */
export async function trainRacnn(
  m: RACNN,
  ds: DigitDataset,
  options: RacnnTrainOptions = {},
): Promise<RacnnPhaseLog[]> {
  const bs = options.batchSize ?? 64;
  const sizes: [RacnnPhase, number][] = [
    ["scale1", options.scale1Images ?? 20000],
    ["apnInit", options.apnInitImages ?? 4000],
    ["alternate", options.alternateImages ?? 20000],
  ];
  const needed = sizes.reduce((a, [, n]) => a + n, 0);
  if (ds.size < needed || ds.digits !== 1) {
    throw new Error(
      `trainRacnn: expected a single-digit set of at least ${needed} samples, got ${ds.size} x ${ds.digits}`,
    );
  }
  const s = m.config.imageSize;
  const half = (options.initHalfSide ?? 0.25) * s;
  const margin = options.margin ?? 0.05;
  const useBar = options.progress === true || ((options.progress ?? "auto") === "auto" && stdoutIsTerminal());
  const logs: RacnnPhaseLog[] = [];
  const cls1 = [m.cnn1, m.head1].flatMap((l) => l.trainableWeights).map((w) => w.read() as Variable);
  const clsVars = m.variables("cls");
  const apnVars = m.variables("apn");
  let start = 0;
  for (const [pi, [phase, count]] of sizes.entries()) {
    const t0 = performance.now();
    const total = Math.floor(count / bs);
    const lr = phase === "apnInit" ? () => options.apnLearningRate ?? 1e-3 : cosineSchedule(
      options.learningRate ?? 3e-3,
      1,
      { warmup: phase === "scale1" ? 0.05 : 0 },
    );
    const opt = tf.train.adam(lr(0)) as unknown as tf.Optimizer & { learningRate: number };
    const apnOpt = tf.train.adam(options.apnLearningRate ?? 1e-3);
    const bar: ProgressBar | null = useBar ? terminalProgress() : null;
    bar?.start(total, { epoch: pi + 1, epochs: 3, loss: NaN, acc: NaN });
    const losses: number[] = [];
    let rankSum = 0;
    let step = 0;
    try {
      for (
        const b of batches(ds, {
          batchSize: bs,
          start,
          end: start + total * bs,
          shuffle: true,
          seed: options.seed ?? 0,
        })
      ) {
        opt.learningRate = lr(step / total);
        const x = b.xs;
        const y = tf.tensor1d(b.labels, "int32") as Tensor1D;
        let loss: number;
        if (phase === "scale1") {
          loss = minimizeScalar(opt, cls1, () => {
            const o = scale1(m, x);
            return softmaxCrossEntropy(tf.cast(tf.oneHot(y, m.config.classes), "float32"), o.logits);
          });
        } else if (phase === "apnInit") {
          const f1 = tf.tidy(() => scale1(m, x).features);
          const target = peakSquare(f1, s, half);
          loss = minimizeScalar(opt, apnVars, () => {
            const box = m.apn.attend([f1, x]).maps.box;
            return tf.mean(tf.square(tf.div(tf.sub(box, target), s))) as Scalar;
          });
          tf.dispose([f1, target]);
        } else {
          loss = minimizeScalar(opt, clsVars, () => m.loss(x, y, "cls", margin));
          rankSum += minimizeScalar(apnOpt, apnVars, () => m.loss(x, y, "apn", margin));
        }
        y.dispose();
        disposeBatch(b);
        if (!Number.isFinite(loss)) throw new Error(`trainRacnn: the loss became ${loss} in ${phase}, step ${step}`);
        losses.push(loss);
        step++;
        bar?.update(step, { epoch: pi + 1, epochs: 3, loss, acc: NaN });
        options.onStep?.({ phase, step, loss });
        if (step % 20 === 0) await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      bar?.stop();
      opt.dispose();
      apnOpt.dispose();
    }
    start += count;
    if (phase === "scale1" && (options.shareInit ?? true)) {
      // as the paper starts every scale from the same pre-trained network
      m.cnn2.setWeights(m.cnn1.getWeights());
      m.head2.setWeights(m.head1.getWeights());
    }
    const k = Math.max(1, Math.floor(losses.length / 10));
    const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / Math.max(1, a.length);
    logs.push({
      phase,
      steps: step,
      firstLoss: mean(losses.slice(0, k)),
      lastLoss: mean(losses.slice(-k)),
      ...(phase === "alternate" ? { rankLoss: rankSum / Math.max(1, step) } : {}),
      seconds: (performance.now() - t0) / 1000,
    });
  }
  return logs;
}

/** One optimizer step on `vars`; returns the loss. */
function minimizeScalar(opt: tf.Optimizer, vars: Variable[], f: () => Scalar): number {
  const cost = opt.minimize(f, true, vars)!;
  const v = cost.dataSync()[0];
  cost.dispose();
  return v;
}

/** Test scores of an RA-CNN. */
export interface RacnnEvaluation {
  /** Error of scale 1 (the whole image). */
  error1: number;
  /** Error of scale 2 (the zoomed crop). */
  error2: number;
  /** Error of the fused prediction (mean of the two scales' probabilities). */
  errorFused: number;
  /** Share of images whose crop centre (tx, ty) lies in the digit's box. */
  centreInBox: number;
  /** Mean IoU of the crop square (clipped to the image) with the digit's box. */
  iou: number;
  /** Mean share of the digit's box inside the crop (1: the whole digit is in the crop). */
  coverage: number;
  /** Mean half side tl of the crops, in pixels. */
  meanHalfSide: number;
  /** Images scored. */
  count: number;
}

/** IoU of the square (tx, ty, tl), clipped to an `s x s` image, with a box. */
export function squareIou(tx: number, ty: number, tl: number, box: Box, s: number): number {
  const x0 = Math.max(0, tx - tl), x1 = Math.min(s, tx + tl), y0 = Math.max(0, ty - tl), y1 = Math.min(s, ty + tl);
  const iw = Math.max(0, Math.min(x1, box.x1) - Math.max(x0, box.x0));
  const ih = Math.max(0, Math.min(y1, box.y1) - Math.max(y0, box.y0));
  const inter = iw * ih;
  const union = (x1 - x0) * (y1 - y0) + (box.x1 - box.x0) * (box.y1 - box.y0) - inter;
  return union > 0 ? inter / union : 0;
}

/** Share of the box's area inside the square (tx, ty, tl). */
export function boxCoverage(tx: number, ty: number, tl: number, box: Box): number {
  const iw = Math.max(0, Math.min(tx + tl, box.x1) - Math.max(tx - tl, box.x0));
  const ih = Math.max(0, Math.min(ty + tl, box.y1) - Math.max(ty - tl, box.y0));
  const area = (box.x1 - box.x0) * (box.y1 - box.y0);
  return area > 0 ? (iw * ih) / area : 0;
}

/**
 * Errors of scale 1, scale 2 and the fused prediction, and how well the crops find the digit.
 *
 * @example
 * ```ts
 * import { clutteredMnist, evaluateRacnn, loadMnist, racnnModel } from "../../mod.ts";
 * const test = clutteredMnist(await loadMnist({ split: "test", limit: 100 }), { seed: 12345 });
 * const e = evaluateRacnn(racnnModel({ imageSize: 60 }), test); // e.error1, e.error2, e.iou
 * ```
 */
export function evaluateRacnn(m: RACNN, ds: DigitDataset, options: { batchSize?: number } = {}): RacnnEvaluation {
  let w1 = 0, w2 = 0, wf = 0, inBox = 0, iou = 0, cover = 0, tlSum = 0, count = 0;
  const s = m.config.imageSize;
  for (const b of batches(ds, { batchSize: options.batchSize ?? 250 })) {
    const [p1, p2, pf, box] = tf.tidy(() => {
      const o = m.forward(b.xs);
      const q1 = tf.softmax(o.logits1), q2 = tf.softmax(o.logits2);
      return [
        tf.argMax(q1, 1).dataSync(),
        tf.argMax(q2, 1).dataSync(),
        tf.argMax(tf.add(q1, q2), 1).dataSync(),
        o.box.dataSync(),
      ];
    });
    const n = b.indices.length;
    for (let i = 0; i < n; i++) {
      const y = b.labels[i];
      if (p1[i] !== y) w1++;
      if (p2[i] !== y) w2++;
      if (pf[i] !== y) wf++;
      const [tx, ty, tl] = [box[3 * i], box[3 * i + 1], box[3 * i + 2]];
      const bx = b.boxes[i][0];
      if (tx >= bx.x0 && tx < bx.x1 && ty >= bx.y0 && ty < bx.y1) inBox++;
      iou += squareIou(tx, ty, tl, bx, s);
      cover += boxCoverage(tx, ty, tl, bx);
      tlSum += tl;
    }
    count += n;
    disposeBatch(b);
  }
  return {
    error1: w1 / count,
    error2: w2 / count,
    errorFused: wf / count,
    centreInBox: inBox / count,
    iou: iou / count,
    coverage: cover / count,
    meanHalfSide: tlSum / count,
    count,
  };
}

/** The weights of an RA-CNN by stable names (`cnn1.0`, ..., `apn.3`: part and index). */
function namedWeights(m: RACNN): [string, Variable][] {
  const parts: [string, { trainableWeights: { read(): Tensor }[] }][] = [
    ["cnn1", m.cnn1],
    ["cnn2", m.cnn2],
    ["head1", m.head1],
    ["head2", m.head2],
    ["apn", m.apn],
  ];
  return parts.flatMap(([p, l]) =>
    l.trainableWeights.map((w, i): [string, Variable] => [`${p}.${i}`, w.read() as Variable])
  );
}

/** Writes an RA-CNN's weights to `dir/weights.safetensors` (the config goes into the caller's meta.json). */
export async function saveRacnn(m: RACNN, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensorsFile(`${dir}/weights.safetensors`, Object.fromEntries(namedWeights(m)), {
    format: "attnkit.RACNN",
    config: JSON.stringify(m.config),
  });
}

/** Builds an RA-CNN from `config` and loads the weights saved by {@link saveRacnn} in `dir`. */
export async function loadRacnn(dir: string, config: Partial<RACNNConfig> & { imageSize: number }): Promise<RACNN> {
  const file = await readSafetensorsFile(`${dir}/weights.safetensors`);
  const m = racnnModel(config);
  try {
    for (const [name, v] of namedWeights(m)) {
      const raw = file.tensors.get(name);
      if (!raw || raw.shape.join(",") !== v.shape.join(",")) {
        throw new Error(
          `loadRacnn: ${dir}/weights.safetensors: expected ${name} of shape [${v.shape.join(", ")}], got ${
            raw ? `[${raw.shape.join(", ")}]` : "none"
          }`,
        );
      }
      const t = toTensor(raw);
      v.assign(t);
      t.dispose();
    }
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}

/**
 * Loads the shipped RA-CNN `data/models/racnn_cluttered` (see `deno task experiment:racnn`) and its
 * metadata: `model.forward(images [N, 60, 60, 1] in [0, 1])` gives both scales' logits, the crop and its box.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { loadShippedRacnn } from "../../mod.ts";
 * const { model, meta } = await loadShippedRacnn();
 * const o = model.forward(tf.zeros([1, 60, 60, 1])); // o.logits1, o.logits2, o.zoomed, o.box
 * ```
 */
export async function loadShippedRacnn(
  name = "racnn_cluttered",
): Promise<{ model: RACNN; meta: ShippedModelMeta }> {
  const dir = `${shippedModelsDir()}${name}`;
  let meta: ShippedModelMeta;
  try {
    meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
  } catch {
    throw new Error(`loadShippedRacnn: no shipped model '${name}' in ${shippedModelsDir()}`);
  }
  if (meta.format !== "safetensors" || !meta.config) {
    throw new Error(`loadShippedRacnn: '${name}' is not a safetensors RA-CNN (format ${meta.format ?? "layers"})`);
  }
  return { model: await loadRacnn(dir, meta.config as Partial<RACNNConfig> & { imageSize: number }), meta };
}
