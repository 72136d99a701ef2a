/**
 * Recurrent Models of Visual Attention (RAM): a glimpse sensor, a glimpse network, a recurrent
 * core, a Gaussian location policy trained with REINFORCE and a baseline.
 *
 * Mnih, Heess, Graves, Kavukcuoglu, "Recurrent Models of Visual Attention", NeurIPS 2014
 * (arXiv:1406.6247). At step t the retina takes k patches of sides g, g*s, ... around l_{t-1}, each
 * averaged down to g x g (the multi-resolution glimpse rho(x, l)); the glimpse network mixes "what"
 * and "where": g_t = relu(fc3(relu(fc1(rho))) + fc4(relu(fc2(l)))); the core is h_t =
 * relu(i2h(g_t) + h2h(h_{t-1})); the location network emits mu_t = tanh(fc_lt(relu(fc(h_t)))) and
 * samples l_t ~ N(mu_t, std^2) (clamped to [-1, 1]); after T glimpses the action network gives
 * log-probabilities of the classes. The location policy cannot be trained by backpropagation (the
 * glimpse is a hard crop): REINFORCE with the reward R = 1 for a correct classification, minus a
 * learned baseline b_t = fc(h_t) (variance reduction), maximises E[R]; the hybrid loss is
 * NLL(action) + MSE(b_t, R) - mean_n sum_t log pi(l_t) (R - b_t) (see {@link ramLosses}).
 *
 * Reference code: kevinzakka/recurrent-visual-attention (`modules.py`, `model.py`, `trainer.py`):
 * layer names and state_dict keys (`sensor.fc1..fc4`, `rnn.i2h`, `rnn.h2h`, `locator.fc`,
 * `locator.fc_lt`, `classifier.fc`, `baseliner.fc`), the retina's geometry (centre pixel
 * floor((l + 1) / 2 * side), zero padding, average pooling), the location network reading a
 * detached h_t, the baseline reading a detached h_t. Locations are (x, y) in [-1, 1], x along the
 * width. Defaults: kevinzakka's MNIST config (g = 8, one scale, 6 glimpses, std 0.05 ... see
 * {@link RAMConfig}); the paper's 60x60 translated MNIST used 8 glimpses of 12x12 at 3 scales.
 * Inference here is deterministic (l_0 = the centre, l_t = mu_t); training samples (l_0 uniform in
 * [-1, 1]^2 as the reference, l_t ~ N(mu_t, std^2)).
 *
 * Registry entry `ram`: the glimpse network {@link GlimpseNetwork} (inputs `[images, locations]`,
 * output g_t [N, hG + hL]), the part of RAM that is a differentiable layer. The whole model is
 * {@link RecurrentAttentionModel} (a layer too: images -> log-probabilities; losses with
 * {@link RecurrentAttentionModel.hybridLoss}), outside the registry because its location and baseline
 * networks learn from REINFORCE, not from the output's gradient.
 *
 * Maps: GlimpseNetwork: `spatial` [N, H, W, 1] the retina's footprint (how many scales see each
 * pixel), `glimpse` [N, g, g, k*C] the patches. RecurrentAttentionModel: `spatial` the footprints
 * summed over the glimpses, `locations` [N, T, 2] the glimpse centres l_0 .. l_{T-1}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { checkFeatureMap, fmtShape } from "../checks.ts";
import { linear } from "../ops/common.ts";
import { type GlimpseOptions, glimpseSensor, stopGradient } from "../ops/glimpse.ts";
import type { TorchParam } from "../interop/torch.ts";
import { type AttentionEntry, AttentionLayer, type ForwardContext, type LayerArgs, torchDefaultInit } from "./base.ts";
import { type AttentionResult, tidyAttention } from "../ops/result.ts";
import type { Dense } from "./show_attend_tell.ts";
import type {
  LayerVariable,
  Scalar,
  Shape,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor3D,
  Tensor4D,
  TensorContainer,
} from "../types.ts";

export type { Dense };

/** Weights of the glimpse network (dense kernels [in, out]). */
export interface GlimpseWeights {
  /** Glimpse -> h_g; rows in PyTorch's flatten order [k*C, g, g]. */
  fc1: Dense;
  /** Location -> h_l. */
  fc2: Dense;
  /** "What": h_g -> h_g + h_l. */
  fc3: Dense;
  /** "Where": h_l -> h_g + h_l. */
  fc4: Dense;
}

const dense = (x: Tensor, d: Dense) => linear(x, d.kernel, d.bias);

/** The glimpse network op: images [N, H, W, C], loc [N, 2] -> { output g_t [N, hG + hL], maps: spatial, glimpse }. */
export function glimpseNetwork(
  images: Tensor4D,
  loc: Tensor2D,
  w: GlimpseWeights,
  o: GlimpseOptions,
): AttentionResult {
  return tidyAttention(() => {
    const n = images.shape[0];
    const { patches, footprint } = glimpseSensor(images, loc, o);
    const phi = tf.reshape(tf.transpose(patches, [0, 3, 1, 2]), [n, -1]); // PyTorch's [k*C, g, g] order
    const what = dense(tf.relu(dense(phi, w.fc1)), w.fc3);
    const where = dense(tf.relu(dense(loc, w.fc2)), w.fc4);
    return { output: tf.relu(tf.add(what, where)), maps: { spatial: footprint, glimpse: patches } };
  });
}

/** Config of {@link GlimpseNetwork}. */
export interface GlimpseNetworkConfig {
  /** Patch side g after down-sampling. Default 8 (kevinzakka; the paper's 60x60 task: 12). */
  glimpseSize: number;
  /** Number of scales k. Default 1 (kevinzakka; the paper's 60x60 task: 3). */
  scales: number;
  /** Side ratio s of successive scales. Default 2. */
  scaleFactor: number;
  /** Width h_g of the "what" path. Default 128. */
  hG: number;
  /** Width h_l of the "where" path. Default 128. */
  hL: number;
}

const GLIMPSE_DEFAULTS: GlimpseNetworkConfig = { glimpseSize: 8, scales: 1, scaleFactor: 2, hG: 128, hL: 128 };

function checkGlimpseConfig(layer: string, c: GlimpseNetworkConfig): void {
  for (const k of ["glimpseSize", "scales", "scaleFactor", "hG", "hL"] as const) {
    if (!(Number.isInteger(c[k]) && c[k] >= 1)) {
      throw new Error(`${layer}: expected a positive integer ${k}, got ${c[k]}`);
    }
  }
}

/** Creates the glimpse network's weights with `add` (name, shape, whether a bias). */
function addGlimpseWeights(
  add: (name: string, shape: number[], bias?: boolean) => LayerVariable,
  c: GlimpseNetworkConfig,
  channels: number,
): Record<string, LayerVariable> {
  const d = c.scales * c.glimpseSize * c.glimpseSize * channels;
  const h = c.hG + c.hL;
  return {
    fc1K: add("fc1_kernel", [d, c.hG]),
    fc1B: add("fc1_bias", [c.hG], true),
    fc2K: add("fc2_kernel", [2, c.hL]),
    fc2B: add("fc2_bias", [c.hL], true),
    fc3K: add("fc3_kernel", [c.hG, h]),
    fc3B: add("fc3_bias", [h], true),
    fc4K: add("fc4_kernel", [c.hL, h]),
    fc4B: add("fc4_bias", [h], true),
  };
}

function glimpseWeightsOf(v: Record<string, LayerVariable>): GlimpseWeights {
  const d = (k: string): Dense => ({ kernel: v[`${k}K`].read(), bias: v[`${k}B`].read() });
  return { fc1: d("fc1"), fc2: d("fc2"), fc3: d("fc3"), fc4: d("fc4") };
}

function glimpseParams(v: Record<string, LayerVariable>, prefix: string): TorchParam[] {
  return ["fc1", "fc2", "fc3", "fc4"].flatMap((k) => [
    { name: `${prefix}${k}.weight`, variable: v[`${k}K`], layout: "linear" as const },
    { name: `${prefix}${k}.bias`, variable: v[`${k}B`], layout: "identity" as const },
  ]);
}

/** Checks images [N, H, W, C] and locations [N, 2] of a glimpse layer. */
function checkLocations(layer: string, x: Tensor, loc: Tensor | undefined): void {
  if (!loc || loc.rank !== 2 || loc.shape[0] !== x.shape[0] || loc.shape[1] !== 2 || loc.dtype !== "float32") {
    throw new Error(
      `${layer}: expected float32 locations [${x.shape[0]},2] (x, y in [-1, 1]), got ${
        loc ? `${loc.dtype} ${fmtShape(loc.shape)}` : "none"
      }`,
    );
  }
}

/**
 * RAM's glimpse network (Mnih et al., NeurIPS 2014) as a layer: inputs `[images [N,H,W,C],
 * locations [N,2]]`, output g_t [N, hG + hL].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { GlimpseNetwork } from "./ram.ts";
 * const net = new GlimpseNetwork({ glimpseSize: 6, scales: 2, hG: 32, hL: 16 });
 * const g = net.apply([tf.ones([2, 28, 28, 1]), tf.zeros([2, 2])]) as Tensor; // [2, 48]
 * ```
 */
export class GlimpseNetwork extends AttentionLayer<GlimpseNetworkConfig> {
  /** Serialisation name. */
  static className = "attnkit.GlimpseNetwork";
  private v!: Record<string, LayerVariable>;

  /** Creates the layer: `config` holds its options (defaults fill the rest) and the layer arguments. */
  constructor(config: Partial<GlimpseNetworkConfig> & LayerArgs = {}) {
    super(GLIMPSE_DEFAULTS, config);
    checkGlimpseConfig(this.name, this.config);
  }

  /** Creates this layer's weights for `channels` input channels. */
  protected createWeights(c: number, _shape: number[], all: number[][]): void {
    if (all.length !== 2 || all[1].length !== 2 || all[1][1] !== 2) {
      throw new Error(
        `${this.name}: expected inputs [images [N,H,W,C], locations [N,2]], got ${all.map(fmtShape).join(", ")}`,
      );
    }
    const z = tfl.initializers.zeros();
    this.v = addGlimpseWeights(
      (name, shape, bias) => this.weight(name, shape, bias ? z : torchDefaultInit()),
      this.config,
      c,
    );
  }

  /** Checks what the generic input checks do not (throws an Error naming the layer). */
  protected override validate(x: Tensor, all: Tensor[]): void {
    checkLocations(this.name, x, all[1]);
  }

  /** The attention op on a validated input, with this layer's weights. */
  protected forward(x: Tensor, ctx: ForwardContext): AttentionResult {
    const c = this.config;
    return glimpseNetwork(x as Tensor4D, ctx.inputs[1] as Tensor2D, glimpseWeightsOf(this.v), {
      size: c.glimpseSize,
      scales: c.scales,
      scaleFactor: c.scaleFactor,
    });
  }

  /** The output shape for an input shape. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [(inputShape as Shape[])[0][0], this.config.hG + this.config.hL];
  }

  /** The PyTorch state_dict entries of this layer, with their layouts. */
  torchParams(): TorchParam[] {
    return glimpseParams(this.v, "");
  }
}
tf.serialization.registerClass(GlimpseNetwork);

/** Log-density of l under N(mu, std^2 I), summed over the last axis (PyTorch `Normal.log_prob(...).sum(1)`). */
export function gaussianLogProb(l: Tensor, mu: Tensor, std: number): Tensor {
  return tf.tidy(() => {
    const z = tf.div(tf.sub(l, mu), std);
    return tf.sum(tf.sub(tf.mul(tf.square(z), -0.5), Math.log(std) + 0.5 * Math.log(2 * Math.PI)), -1);
  });
}

/**
 * The REINFORCE term with a baseline: mean over the batch of sum_t -log pi_t (R - b_t), the
 * baseline detached (it only lowers the variance; it learns from its own MSE). logPi, baseline
 * [N, T]; reward [N] or [N, T]. Its gradient moves each mu_t towards the sampled l_t when the
 * reward beat the baseline, away from it otherwise.
 */
export function reinforceLoss(logPi: Tensor, reward: Tensor, baseline: Tensor): Scalar {
  return tf.tidy(() => {
    const r = reward.rank === 1 ? tf.expandDims(reward, 1) : reward;
    const advantage = tf.sub(r, stopGradient(baseline));
    return tf.mean(tf.sum(tf.mul(tf.neg(logPi), advantage), 1)) as Scalar;
  });
}

/** Weights of the whole RAM. */
export interface RAMWeights {
  /** Glimpse network. */
  sensor: GlimpseWeights;
  /** Core input -> hidden. */
  i2h: Dense;
  /** Core hidden -> hidden. */
  h2h: Dense;
  /** Location network hidden layer (hidden -> hidden/2). */
  locFc: Dense;
  /** Location network output (hidden/2 -> 2). */
  locOut: Dense;
  /** Action network (hidden -> classes). */
  classifier: Dense;
  /** Baseline network (hidden -> 1). */
  baseline: Dense;
}

/** Options of {@link ramUnroll}. */
export interface RAMOptions {
  /** Number of glimpses T. */
  glimpses: number;
  /** Retina geometry. */
  glimpse: GlimpseOptions;
  /** Standard deviation of the location policy. */
  std: number;
  /** Sample the locations (training) or take the means (inference). */
  sample: boolean;
  /** First location [N, 2]; default uniform in [-1, 1]^2 when sampling, the centre otherwise. */
  initialLocation?: Tensor2D;
}

/** What {@link ramUnroll} gives (all [N, ...]). */
export interface RAMRollout {
  /** Class log-probabilities [N, K]. */
  logProbs: Tensor2D;
  /** Glimpse centres l_0 .. l_{T-1} [N, T, 2]. */
  locations: Tensor3D;
  /** log pi(l_t | mu_t) of the locations the policy chose after each glimpse [N, T]. */
  logPi: Tensor2D;
  /** Baselines b_t [N, T]. */
  baselines: Tensor2D;
  /** Sum of the retina footprints [N, H, W, 1]. */
  footprint: Tensor4D;
}

/** Runs RAM for T glimpses on images [N, H, W, C]. Not tidied (call inside a tidy or variableGrads). */
export function ramUnroll(images: Tensor4D, w: RAMWeights, o: RAMOptions): RAMRollout {
  const n = images.shape[0];
  const hidden = w.h2h.kernel.shape[0] as number;
  let l: Tensor = o.initialLocation ?? (o.sample ? tf.randomUniform([n, 2], -1, 1) : tf.zeros([n, 2]));
  let h: Tensor = tf.zeros([n, hidden]);
  const locs: Tensor[] = [];
  const logPi: Tensor[] = [];
  const bases: Tensor[] = [];
  let footprint: Tensor = tf.zeros([...images.shape.slice(0, 3), 1]);
  for (let t = 0; t < o.glimpses; t++) {
    const g = glimpseNetwork(images, l as Tensor2D, w.sensor, o.glimpse);
    footprint = tf.add(footprint, g.maps.spatial);
    tf.dispose(g.maps.glimpse);
    locs.push(l);
    h = tf.relu(tf.add(dense(g.output, w.i2h), dense(h, w.h2h)));
    const hd = stopGradient(h);
    const mu = tf.tanh(dense(tf.relu(dense(hd, w.locFc)), w.locOut));
    const next = o.sample ? stopGradient(tf.add(mu, tf.mul(tf.randomNormal(mu.shape), o.std))) : mu;
    logPi.push(gaussianLogProb(next, mu, o.std));
    l = tf.clipByValue(next, -1, 1);
    bases.push(tf.reshape(dense(hd, w.baseline), [n]));
  }
  return {
    logProbs: tf.logSoftmax(dense(h, w.classifier)) as Tensor2D,
    locations: tf.stack(locs, 1) as Tensor3D,
    logPi: tf.stack(logPi, 1) as Tensor2D,
    baselines: tf.stack(bases, 1) as Tensor2D,
    footprint: footprint as Tensor4D,
  };
}

/** The parts of RAM's hybrid loss (scalars) and the reward. */
export interface RAMLosses {
  /** action + baseline + reinforceWeight * reinforce. */
  loss: Scalar;
  /** NLL of the true class. */
  action: Scalar;
  /** MSE of the baselines to the reward. */
  baseline: Scalar;
  /** The REINFORCE term ({@link reinforceLoss}). */
  reinforce: Scalar;
  /** R [N]: 1 where the classification was right. */
  reward: Tensor1D;
}

/** RAM's hybrid loss (kevinzakka `trainer.py`) from a rollout and labels [N]. */
export function ramLosses(r: RAMRollout, labels: Tensor, reinforceWeight = 1): RAMLosses {
  return tf.tidy(() => {
    const k = r.logProbs.shape[1];
    const y = tf.cast(labels, "int32");
    const action = tf.neg(tf.mean(tf.sum(tf.mul(r.logProbs, tf.oneHot(y, k)), 1))) as Scalar;
    // R read back from the device: a constant, off the gradient tape (argMax and equal have no gradient)
    const hit = tf.tidy(() => tf.equal(tf.argMax(r.logProbs, 1), y)).dataSync();
    const reward = tf.tensor1d(Float32Array.from(hit, Number));
    const rt = tf.tile(tf.expandDims(reward, 1), [1, r.baselines.shape[1]]);
    const baseline = tf.mean(tf.square(tf.sub(r.baselines, rt))) as Scalar;
    const reinforce = reinforceLoss(r.logPi, reward, r.baselines);
    const loss = tf.addN([action, baseline, tf.mul(reinforce, reinforceWeight)]) as Scalar;
    return { loss, action, baseline, reinforce, reward };
  }) as unknown as RAMLosses;
}

/** Config of {@link RecurrentAttentionModel}. */
export interface RAMConfig extends GlimpseNetworkConfig {
  /** Classes. Default 10. */
  classes: number;
  /** Glimpses T. Default 6 (kevinzakka; the paper's 60x60 task: 8). */
  glimpses: number;
  /** Core RNN width. Default 256. */
  hidden: number;
  /** Standard deviation of the location policy. Default 0.05 (kevinzakka). */
  std: number;
}

const RAM_DEFAULTS: RAMConfig = { ...GLIMPSE_DEFAULTS, classes: 10, glimpses: 6, hidden: 256, std: 0.05 };

/**
 * The whole Recurrent Attention Model (Mnih et al., NeurIPS 2014): images [N, H, W, C] ->
 * class log-probabilities [N, K]. Train with {@link RecurrentAttentionModel.hybridLoss}.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { RecurrentAttentionModel } from "./ram.ts";
 * const ram = new RecurrentAttentionModel({ glimpseSize: 6, scales: 2, glimpses: 4, hidden: 64, hG: 32, hL: 32 });
 * const logp = ram.apply(tf.zeros([2, 28, 28, 1])) as Tensor; // [2, 10]
 * ```
 */
export class RecurrentAttentionModel extends AttentionLayer<RAMConfig> {
  /** Serialisation name. */
  static className = "attnkit.RecurrentAttentionModel";
  private v!: Record<string, LayerVariable>;

  /** Creates the layer: `config` holds its options (defaults fill the rest) and the layer arguments. */
  constructor(config: Partial<RAMConfig> & LayerArgs = {}) {
    super(RAM_DEFAULTS, config);
    const c = this.config;
    checkGlimpseConfig(this.name, c);
    for (const k of ["classes", "glimpses", "hidden"] as const) {
      if (!(Number.isInteger(c[k]) && c[k] >= 1)) {
        throw new Error(`${this.name}: expected a positive integer ${k}, got ${c[k]}`);
      }
    }
    if (!(c.std > 0)) throw new Error(`${this.name}: expected a positive std, got ${c.std}`);
  }

  /** Creates this layer's weights for `channels` input channels. */
  protected createWeights(ch: number): void {
    const c = this.config;
    const z = tfl.initializers.zeros();
    const add = (name: string, shape: number[], bias?: boolean) =>
      this.weight(name, shape, bias ? z : torchDefaultInit());
    const h = c.hidden;
    this.v = {
      ...addGlimpseWeights((name, shape, bias) => add(`sensor_${name}`, shape, bias), c, ch),
      i2hK: add("rnn_i2h_kernel", [c.hG + c.hL, h]),
      i2hB: add("rnn_i2h_bias", [h], true),
      h2hK: add("rnn_h2h_kernel", [h, h]),
      h2hB: add("rnn_h2h_bias", [h], true),
      locFcK: add("locator_fc_kernel", [h, Math.floor(h / 2)]),
      locFcB: add("locator_fc_bias", [Math.floor(h / 2)], true),
      locOutK: add("locator_fc_lt_kernel", [Math.floor(h / 2), 2]),
      locOutB: add("locator_fc_lt_bias", [2], true),
      clsK: add("classifier_fc_kernel", [h, c.classes]),
      clsB: add("classifier_fc_bias", [c.classes], true),
      baseK: add("baseliner_fc_kernel", [h, 1]),
      baseB: add("baseliner_fc_bias", [1], true),
    };
  }

  /** Reads the variables into the op's weights (for {@link ramUnroll} or a custom rollout; build the layer first). */
  ramWeights(): RAMWeights {
    const d = (k: string): Dense => ({ kernel: this.v[`${k}K`].read(), bias: this.v[`${k}B`].read() });
    return {
      sensor: glimpseWeightsOf(this.v),
      i2h: d("i2h"),
      h2h: d("h2h"),
      locFc: d("locFc"),
      locOut: d("locOut"),
      classifier: d("cls"),
      baseline: d("base"),
    };
  }

  /** The op's options from the config: sampling (training) or the mean path, and the first location. */
  private options(sample: boolean, initialLocation?: Tensor2D): RAMOptions {
    const c = this.config;
    return {
      glimpses: c.glimpses,
      glimpse: { size: c.glimpseSize, scales: c.scales, scaleFactor: c.scaleFactor },
      std: c.std,
      sample,
      initialLocation,
    };
  }

  /** The attention op on a validated input, with this layer's weights. */
  protected forward(x: Tensor, ctx: ForwardContext): AttentionResult {
    return tidyAttention(() => {
      const r = ramUnroll(x as Tensor4D, this.ramWeights(), this.options(ctx.training));
      return { output: r.logProbs, maps: { spatial: r.footprint, locations: r.locations } };
    });
  }

  /**
   * A rollout on images [N, H, W, C] (sampled locations unless `sample` is false). Builds the layer
   * on first use. Call inside a tidy / `variableGrads` / `minimize`.
   */
  rollout(images: Tensor4D, opts: { sample?: boolean; initialLocation?: Tensor2D } = {}): RAMRollout {
    if (!this.built) this.build(images.shape);
    checkFeatureMap(this.name, images, { channels: this.channels });
    return ramUnroll(images, this.ramWeights(), this.options(opts.sample ?? true, opts.initialLocation));
  }

  /** The hybrid loss on images [N, H, W, C] and labels [N], sampling the locations (training). */
  hybridLoss(images: Tensor4D, labels: Tensor, reinforceWeight = 1): RAMLosses {
    return tf.tidy(() =>
      ramLosses(this.rollout(images), labels, reinforceWeight) as unknown as TensorContainer
    ) as unknown as RAMLosses;
  }

  /** The output shape for an input shape. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [(inputShape as Shape)[0], this.config.classes];
  }

  /** The PyTorch state_dict entries of this layer, with their layouts. */
  torchParams(): TorchParam[] {
    const v = this.v;
    const lin = (name: string, k: string): TorchParam[] => [
      { name: `${name}.weight`, variable: v[`${k}K`], layout: "linear" },
      { name: `${name}.bias`, variable: v[`${k}B`], layout: "identity" },
    ];
    return [
      ...glimpseParams(v, "sensor."),
      ...lin("rnn.i2h", "i2h"),
      ...lin("rnn.h2h", "h2h"),
      ...lin("locator.fc", "locFc"),
      ...lin("locator.fc_lt", "locOut"),
      ...lin("classifier.fc", "cls"),
      ...lin("baseliner.fc", "base"),
    ];
  }
}
tf.serialization.registerClass(RecurrentAttentionModel);

/** Registry entry of RAM (its glimpse network; the whole model is {@link RecurrentAttentionModel}). */
export const ramEntry: AttentionEntry = {
  name: "ram",
  title: "RAM glimpse network (multi-resolution retina, what and where)",
  paper: "Mnih, Heess, Graves, Kavukcuoglu: Recurrent Models of Visual Attention",
  venue: "NeurIPS",
  year: 2014,
  category: "recurrent",
  seeds: ["kevinzakka/recurrent-visual-attention:modules.py:GlimpseNetwork+Retina"],
  example: { inputs: [[3, 21, 17, 4], [3, 2]], config: { glimpseSize: 4, scales: 3, hG: 16, hL: 8 } },
  create: (config = {}) => new GlimpseNetwork(config),
  fixtures: {
    ram_glimpse: (t) => ({ glimpseSize: t.g, scales: t.k, scaleFactor: t.s, hG: t.h_g, hL: t.h_l }),
  },
  fixtureMaps: { attn: "spatial" },
};
