/**
 * RA-CNN's attention proposal network (APN) with the boxcar crop-and-zoom, and a two-scale RA-CNN.
 *
 * Fu, Zheng, Mei, "Look Closer to See Better: Recurrent Attention Convolutional Neural Network
 * for Fine-grained Image Recognition", CVPR 2017, Sec. 3.2-3.3. From the conv features of one scale
 * the APN predicts a square (tx, ty, tl): centre and half side, in pixels of that scale's image.
 * The region is cut out differentiably: the boxcar mask M(x, y) = [h(x - tx_tl) - h(x - tx_br)]
 * [h(y - ty_tl) - h(y - ty_br)] with h the logistic of steepness k = 10, X_att = X * M, then
 * bilinear interpolation zooms the square to the next scale's input size.
 *
 * Layer inputs `[features [N, h, w, C], image [N, H, W, Ci]]`; output the zoomed region
 * [N, Z, Z, Ci] (Z = `outputSize`, default the image's size). The APN is the reference code's:
 * flatten (PyTorch's NCHW order), Linear(h*w*C, hidden), tanh, Linear(hidden, 3), sigmoid, times the
 * image side (state_dict keys `apn.0.*`, `apn.2.*`, as jeong-tae/RACNN-pytorch `apn1`). Then the
 * reference code's constraints: tl >= `minHalfSide` * side (1/3: the region keeps at least 2/3 of
 * the side) and the square inside the image (a half side over half the image's side keeps the whole
 * side: the crop bounds are clipped to the image, as the reference's).
 *
 * Paper vs code: the paper's equations are continuous in (tx, ty, tl) and derive the gradient
 * from the mask; the PyTorch re-implementations crop at int() bounds (so the crop itself passes no
 * gradient) and hand-code the mask's gradient. `crop: "continuous"` (default) follows the paper:
 * the output is a smooth function of the box, and the gradient flows through the mask and the
 * sampling positions; `crop: "integer"` reproduces the reference forward, with a straight-through
 * gradient on the bounds. Coordinates: tx along the width (x), ty along the height (y).
 *
 * Maps: `region` [N, H, W, 1] the boxcar mask on the image (not `spatial`: it lives on the image, not on the features); `box` [N, 3] (tx, ty, tl) in pixels.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { checkFeatureMap, fmtShape } from "../checks.ts";
import { linear } from "../ops/common.ts";
import { boxcarCrop } from "../ops/glimpse.ts";
import { isCapturing, recordAttention } from "../capture.ts";
import type { TorchParam } from "../interop/torch.ts";
import { type AttentionEntry, AttentionLayer, type ForwardContext, type LayerArgs, torchDefaultInit } from "./base.ts";
import { type AttentionResult, tidyAttention } from "../ops/result.ts";
import type {
  Layer,
  LayerVariable,
  Scalar,
  Sequential,
  Shape,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor4D,
  Variable,
} from "../types.ts";

/** Weights of the APN: two dense layers. */
export interface APNWeights {
  /** Kernel [h*w*C, hidden] (rows in PyTorch's NCHW flatten order). */
  w1: Tensor;
  /** Bias [hidden]. */
  b1: Tensor;
  /** Kernel [hidden, 3]. */
  w2: Tensor;
  /** Bias [3]. */
  b2: Tensor;
}

/** Options of the APN op. */
export interface APNOptions {
  /** Output side Z (square); default the image's [H, W]. */
  outSize?: [number, number];
  /** Smallest half side, as a fraction of the image's shorter side. Default 1/3 (the reference code). */
  minHalfSide?: number;
  /** Steepness of the boxcar. Default 10. */
  steepness?: number;
  /** "continuous" (paper, default) or "integer" (reference code) crop bounds. */
  crop?: "continuous" | "integer";
}

/** The APN proposal: features [N, h, w, C] -> box [N, 3] (tx, ty, tl) in pixels of an [H, W] image, constrained. */
export function apnBox(
  features: Tensor4D,
  w: APNWeights,
  imageSize: [number, number],
  minHalfSide = 1 / 3,
): Tensor2D {
  return tf.tidy(() => {
    const n = features.shape[0];
    const flat = tf.reshape(tf.transpose(features, [0, 3, 1, 2]), [n, -1]); // PyTorch's view(N, -1) of NCHW
    const u = tf.sigmoid(linear(tf.tanh(linear(flat, w.w1, w.b1)), w.w2, w.b2)); // [N, 3] in (0, 1)
    const [h, wd] = imageSize;
    const side = Math.min(h, wd);
    const col = (i: number) => tf.reshape(tf.slice(u, [0, i], [n, 1]), [n]);
    const tl = tf.maximum(tf.mul(col(2), side), minHalfSide * side);
    const clampCentre = (t: Tensor, size: number) => tf.minimum(tf.maximum(t, tl), tf.sub(size, tl));
    const tx = clampCentre(tf.mul(col(0), wd), wd);
    const ty = clampCentre(tf.mul(col(1), h), h);
    return tf.stack([tx, ty, tl], 1) as Tensor2D;
  });
}

/**
 * The APN crop op: features [N, h, w, C], image [N, H, W, Ci] ->
 * { output: the zoomed square [N, Zy, Zx, Ci], maps: { region [N, H, W, 1], box [N, 3] } }.
 */
export function attentionProposalCrop(
  features: Tensor4D,
  image: Tensor4D,
  w: APNWeights,
  opts: APNOptions = {},
): AttentionResult {
  return tidyAttention(() => {
    const [, h, wd] = image.shape;
    const box = apnBox(features, w, [h, wd], opts.minHalfSide);
    const { zoomed, mask } = boxcarCrop(image, box, {
      outSize: opts.outSize ?? [h, wd],
      steepness: opts.steepness,
      crop: opts.crop,
    });
    return { output: zoomed, maps: { region: mask, box } };
  });
}

/** Config of {@link AttentionProposalCrop}. */
export interface APNConfig {
  /** Hidden width of the APN. Default 1024 (the reference code). */
  hidden: number;
  /** Side of the zoomed output; null = the image's size. Default null. */
  outputSize: number | null;
  /** Smallest half side as a fraction of the image side. Default 1/3 (the reference code). */
  minHalfSide: number;
  /** Steepness k of the boxcar. Default 10 (the paper's). */
  steepness: number;
  /** "continuous" (the paper's equations, default) or "integer" (the reference code's crop). */
  crop: "continuous" | "integer";
}

const DEFAULTS: APNConfig = { hidden: 1024, outputSize: null, minHalfSide: 1 / 3, steepness: 10, crop: "continuous" };

/**
 * RA-CNN attention proposal + crop-and-zoom layer (Fu et al., CVPR 2017): inputs
 * `[features [N,h,w,C], image [N,H,W,Ci]]`, output the zoomed region [N, Z, Z, Ci].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { AttentionProposalCrop } from "./racnn_apn.ts";
 * const apn = new AttentionProposalCrop({ hidden: 64, outputSize: 32 });
 * const zoomed = apn.apply([tf.ones([2, 4, 4, 16]), tf.ones([2, 48, 48, 1])]) as Tensor; // [2, 32, 32, 1]
 * ```
 */
export class AttentionProposalCrop extends AttentionLayer<APNConfig> {
  /** Serialisation name. */
  static className = "attnkit.AttentionProposalCrop";
  private w1!: LayerVariable;
  private b1!: LayerVariable;
  private w2!: LayerVariable;
  private b2!: LayerVariable;
  private imageChannels = 0;

  /** Creates the layer: `config` holds its options (defaults fill the rest) and the layer arguments. */
  constructor(config: Partial<APNConfig> & LayerArgs = {}) {
    super(DEFAULTS, config);
    const c = this.config;
    if (!(Number.isInteger(c.hidden) && c.hidden >= 1)) {
      throw new Error(`${this.name}: expected a positive hidden, got ${c.hidden}`);
    }
    if (c.outputSize !== null && !(Number.isInteger(c.outputSize) && c.outputSize >= 2)) {
      throw new Error(`${this.name}: expected outputSize >= 2 or null, got ${c.outputSize}`);
    }
    if (!(c.minHalfSide > 0 && c.minHalfSide <= 0.5)) {
      throw new Error(`${this.name}: expected minHalfSide in (0, 0.5], got ${c.minHalfSide}`);
    }
    if (c.crop !== "continuous" && c.crop !== "integer") {
      throw new Error(`${this.name}: expected crop continuous or integer, got ${JSON.stringify(c.crop)}`);
    }
  }

  /** Creates this layer's weights for `channels` input channels. */
  protected createWeights(c: number, shape: number[], all: number[][]): void {
    const image = all[1];
    if (all.length !== 2 || image.length !== 4) {
      throw new Error(
        `${this.name}: expected inputs [features [N,h,w,C], image [N,H,W,C]], got ${all.map(fmtShape).join(", ")}`,
      );
    }
    const [, h, w] = shape;
    if (!(h > 0 && w > 0)) throw new Error(`${this.name}: expected a known feature size, got ${fmtShape(shape)}`);
    this.imageChannels = image[3];
    const hid = this.config.hidden;
    const zeros = tfl.initializers.zeros();
    this.w1 = this.weight("apn0_kernel", [h * w * c, hid], torchDefaultInit());
    this.b1 = this.weight("apn0_bias", [hid], zeros);
    // near-zero last layer and a bias that puts the first proposal at the centred square of half
    // side 0.4 x the shorter side: inside every constraint (so tx, ty and tl all get gradients), and
    // early updates move it by a fraction of a pixel
    const small = tfl.initializers.randomUniform({ minval: -0.01, maxval: 0.01 });
    this.w2 = this.weight("apn2_kernel", [hid, 3], small);
    this.b2 = this.weight("apn2_bias", [3], zeros);
    tf.tidy(() => {
      this.b2.write(tf.tensor1d([0, 0, Math.log(0.4 / 0.6)]));
    });
  }

  /** Checks what the generic input checks do not (throws an Error naming the layer). */
  protected override validate(x: Tensor, all: Tensor[]): void {
    const feat = this.w1.shape[0] as number;
    if ((x.shape[1] as number) * (x.shape[2] as number) * this.channels !== feat) {
      throw new Error(`${this.name}: expected features of ${feat} values per sample, got shape ${fmtShape(x.shape)}`);
    }
    if (!all[1]) throw new Error(`${this.name}: expected an image as the second input, got none`);
    checkFeatureMap(this.name, all[1], { channels: this.imageChannels });
    if (all[1].shape[0] !== x.shape[0]) {
      throw new Error(`${this.name}: expected the image's batch to be ${x.shape[0]}, got ${fmtShape(all[1].shape)}`);
    }
  }

  /** The attention op on a validated input, with this layer's weights. */
  protected forward(x: Tensor, ctx: ForwardContext): AttentionResult {
    const c = this.config;
    return attentionProposalCrop(x as Tensor4D, ctx.inputs[1] as Tensor4D, {
      w1: this.w1.read(),
      b1: this.b1.read(),
      w2: this.w2.read(),
      b2: this.b2.read(),
    }, {
      outSize: c.outputSize ? [c.outputSize, c.outputSize] : undefined,
      minHalfSide: c.minHalfSide,
      steepness: c.steepness,
      crop: c.crop,
    });
  }

  /** The output shape for an input shape. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const image = (inputShape as Shape[])[1];
    const z = this.config.outputSize;
    return [image[0], z ?? image[1], z ?? image[2], image[3]];
  }

  /** The PyTorch state_dict entries of this layer, with their layouts. */
  torchParams(): TorchParam[] {
    return [
      { name: "apn.0.weight", variable: this.w1, layout: "linear" },
      { name: "apn.0.bias", variable: this.b1, layout: "identity" },
      { name: "apn.2.weight", variable: this.w2, layout: "linear" },
      { name: "apn.2.bias", variable: this.b2, layout: "identity" },
    ];
  }
}
tf.serialization.registerClass(AttentionProposalCrop);

/**
 * Pairwise ranking loss between two scales (Fu et al., Eq. 6): mean over the batch of
 * max(0, p1[y] - p2[y] + margin), p the softmax probability of the true class; it pushes the finer
 * scale to be more confident than the coarser one. Margin 0.05 in the paper.
 */
export function rankingLoss(logits1: Tensor, logits2: Tensor, labels: Tensor, margin = 0.05): Scalar {
  return tf.tidy(() => {
    const k = logits1.shape[1] as number;
    const onehot = tf.oneHot(tf.cast(labels, "int32"), k);
    const p1 = tf.sum(tf.mul(tf.softmax(logits1), onehot), 1);
    const p2 = tf.sum(tf.mul(tf.softmax(logits2), onehot), 1);
    return tf.mean(tf.relu(tf.add(tf.sub(p1, p2), margin))) as Scalar;
  });
}

/** Config of {@link RACNN}. */
export interface RACNNConfig {
  /** Image side S (square, e.g. 60 for cluttered MNIST). */
  imageSize: number;
  /** Image channels. Default 1. */
  channels: number;
  /** Classes. Default 10. */
  classes: number;
  /** Filters of the 3x3 conv layers of each scale's CNN (each followed by ReLU and a 2x2 max pool). Default [16, 32]. */
  filters: number[];
  /** Hidden width of the APN. Default 64. */
  apnHidden: number;
  /** Side of the zoomed second-scale input. Default `imageSize`. */
  zoomSize: number | null;
  /** Smallest half side of the APN's square, as a fraction of the image side. Default 1/3 (the reference code). */
  minHalfSide: number;
  /** Global pooling of each scale's features before its classifier: "avg" (default) or "max". */
  pool: "avg" | "max";
}

/** What {@link RACNN.forward} gives. */
export interface RACNNOutput {
  /** Class logits of scale 1 [N, K]. */
  logits1: Tensor2D;
  /** Class logits of scale 2 (the zoomed region) [N, K]. */
  logits2: Tensor2D;
  /** The zoomed region [N, Z, Z, C]. */
  zoomed: Tensor4D;
  /** The boxcar mask [N, S, S, 1]. */
  mask: Tensor4D;
  /** (tx, ty, tl) [N, 3]. */
  box: Tensor2D;
}

/**
 * A two-scale RA-CNN (Fu et al., CVPR 2017) for small images such as cluttered MNIST: scale 1 is a
 * small CNN (conv-ReLU-maxpool blocks, two by default) with a linear classifier on its pooled features; its
 * APN picks a square that is zoomed to scale 2, another CNN + classifier. Losses: cross-entropy at
 * each scale plus the pairwise ranking loss; the paper alternates classifier and APN updates
 * ({@link RACNN.loss} with `phase`).
 */
export class RACNN {
  /** The config, defaults merged. */
  readonly config: RACNNConfig;
  /** Scale-1 CNN. */
  readonly cnn1: Sequential;
  /** Scale-2 CNN. */
  readonly cnn2: Sequential;
  /** Scale-1 classifier. */
  readonly head1: Layer;
  /** Scale-2 classifier. */
  readonly head2: Layer;
  /** The APN and crop-and-zoom. */
  readonly apn: AttentionProposalCrop;

  /** Creates the layer: `config` holds its options (defaults fill the rest) and the layer arguments. */
  constructor(config: Partial<RACNNConfig> & { imageSize: number }) {
    this.config = {
      channels: 1,
      classes: 10,
      filters: [16, 32],
      apnHidden: 64,
      zoomSize: null,
      minHalfSide: 1 / 3,
      pool: "avg",
      ...config,
    };
    const c = this.config;
    if (!(c.filters.length >= 1 && c.filters.every((f) => Number.isInteger(f) && f >= 1))) {
      throw new Error(`RACNN: expected filters to be positive integers, got [${c.filters.join(", ")}]`);
    }
    // one conv 3x3 (same) + ReLU + 2x2 max pool block per entry of filters
    const cnn = (size: number) =>
      tfl.sequential({
        layers: c.filters.flatMap((filters, i) => [
          tfl.layers.conv2d({
            ...(i === 0 ? { inputShape: [size, size, c.channels] } : {}),
            filters,
            kernelSize: 3,
            padding: "same",
            activation: "relu",
            kernelInitializer: "heNormal", // ReLU layers: He init (Glorot's starts several times slower here)
          }),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
        ]),
      });
    const zoom = c.zoomSize ?? c.imageSize;
    this.cnn1 = cnn(c.imageSize);
    this.cnn2 = cnn(zoom);
    this.head1 = tfl.layers.dense({ units: c.classes });
    this.head2 = tfl.layers.dense({ units: c.classes });
    this.apn = new AttentionProposalCrop({ hidden: c.apnHidden, outputSize: zoom, minHalfSide: c.minHalfSide });
  }

  /** Both scales on images [N, S, S, C]. Not tidied when called inside a tidy; the caller disposes. */
  forward(images: Tensor4D): RACNNOutput {
    const pool = (f: Tensor) => this.config.pool === "max" ? tf.max(f, [1, 2]) : tf.mean(f, [1, 2]);
    return tf.tidy(() => {
      const f1 = this.cnn1.apply(images) as Tensor4D;
      const logits1 = this.head1.apply(pool(f1)) as Tensor2D;
      const r = this.apn.attend([f1, images]);
      if (isCapturing()) recordAttention(this.apn.name, r.maps);
      const zoomed = r.output as Tensor4D;
      const f2 = this.cnn2.apply(zoomed) as Tensor4D;
      const logits2 = this.head2.apply(pool(f2)) as Tensor2D;
      return { logits1, logits2, zoomed, mask: r.maps.region as Tensor4D, box: r.maps.box as Tensor2D };
    }) as unknown as RACNNOutput;
  }

  /**
   * The training loss on images [N, S, S, C] and labels [N]: "joint" = CE1 + CE2 + rank; "cls" = CE1 + CE2
   * (the paper's classification phase); "apn" = rank (its APN phase). Call inside `tf.variableGrads` or
   * an optimizer's `minimize` with {@link RACNN.variables} of that phase.
   */
  loss(images: Tensor4D, labels: Tensor1D, phase: "joint" | "cls" | "apn" = "joint", margin = 0.05): Scalar {
    return tf.tidy(() => {
      const o = this.forward(images);
      const y = tf.oneHot(tf.cast(labels, "int32"), this.config.classes);
      const ce = tf.add(tf.losses.softmaxCrossEntropy(y, o.logits1), tf.losses.softmaxCrossEntropy(y, o.logits2));
      const rank = rankingLoss(o.logits1, o.logits2, labels, margin);
      return (phase === "cls" ? ce : phase === "apn" ? rank : tf.add(ce, rank)) as Scalar;
    });
  }

  /** Builds every part (one forward pass on zeros). */
  build(): void {
    const c = this.config;
    tf.dispose(Object.values(this.forward(tf.zeros([1, c.imageSize, c.imageSize, c.channels]))));
  }

  /** The trainable variables of a phase: "cls" the CNNs and classifiers, "apn" the APN, "joint" all. */
  variables(phase: "joint" | "cls" | "apn" = "joint"): Variable[] {
    const cls = [this.cnn1, this.cnn2, this.head1, this.head2].flatMap((l) => l.trainableWeights);
    const apn = this.apn.trainableWeights;
    const ws = phase === "cls" ? cls : phase === "apn" ? apn : [...cls, ...apn];
    return ws.map((w) => (w as unknown as { val: Variable }).val);
  }

  /** Frees every weight. */
  dispose(): void {
    this.cnn1.dispose();
    this.cnn2.dispose();
    this.head1.dispose();
    this.head2.dispose();
    this.apn.dispose();
  }
}

/** Registry entry of the RA-CNN APN crop layer. */
export const racnnApnEntry: AttentionEntry = {
  name: "racnn_apn",
  title: "RA-CNN attention proposal network with boxcar crop-and-zoom",
  paper: "Fu, Zheng, Mei: Look Closer to See Better: Recurrent Attention CNN for Fine-grained Image Recognition",
  venue: "CVPR",
  year: 2017,
  category: "recurrent",
  seeds: ["jeong-tae/RACNN-pytorch:models/RACNN.py:RACNN.apn1 + AttentionCropFunction"],
  example: { inputs: [[3, 2, 3, 8], [3, 21, 23, 4]], config: { hidden: 8, outputSize: 12 } },
  create: (config = {}) => new AttentionProposalCrop(config),
  fixtures: {
    racnn_apn: (t) => ({
      hidden: t.hidden,
      outputSize: t.out_size,
      minHalfSide: t.min_half_side ?? 1 / 3,
      steepness: t.k ?? 10,
      crop: t.crop ?? "integer",
    }),
  },
  fixtureMaps: { attn: "region", box: "box" },
};
