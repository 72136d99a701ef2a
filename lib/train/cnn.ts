/**
 * A small CNN with a plug for attention after each conv stage, for experiments on digit sets.
 *
 * Stage k: `s{k}_conv` (conv, then `s{k}_bn` batch normalisation and `s{k}_relu`; or conv with
 * bias and ReLU when `batchNorm` is off), then `s{k}_att` (the attention layer from
 * `createAttention(name, config)`, when one is asked for), then `s{k}_pool` (2x2 max pool, when the
 * stage pools). The head is a global max pool (`gmp`; or average, `gap`) and a dense layer to
 * logits (`logits`, no softmax). The attention layers' names (`s1_att`, ...) key their maps in a
 * {@link captureAttention}.
 *
 * Mechanisms that take two inputs (a registry entry whose `example.inputs` has two shapes: local
 * features and a global vector, as Learn to Pay Attention) do not fit after a stage; they get the
 * LTPA head instead: the global feature `g = dense(pool(last stage))` (`global`), one attention
 * layer `s{k}_att` per stage in `globalStages` taking `[stage k output, g]`, each giving an
 * attended descriptor, and a dense layer on their concatenation (`logits`). The global vector is
 * passed with the rank of the entry's example (`[N, 1, 1, C]` for rank 4, `[N, C]` for rank 2).
 *
 * @module
 */
import * as tfl from "@tensorflow/tfjs-layers";
import { attentionEntries } from "../registry.ts";
import { withSeededRandom } from "../data/rng.ts";
import type { LayersModel, SymbolicTensor } from "../types.ts";

/** One conv stage. */
export interface CnnStage {
  /** Output channels. */
  filters: number;
  /** Kernel side. Default 3. */
  kernelSize?: number;
  /** Conv stride. Default 1. */
  strides?: number;
  /** 2x2 max pool after the (attention of the) stage. Default true. */
  pool?: boolean;
}

/** Options of {@link attentionCnn}. */
export interface AttentionCnnOptions {
  /** Input shape `[H, W, C]`. Default [60, 60, 1]. */
  inputShape?: [number, number, number];
  /** The conv stages. Default {@link CLUTTERED_STAGES}. */
  stages?: CnnStage[];
  /** Registry name of the attention mechanism, or null/undefined for the plain CNN. */
  attention?: string | null;
  /** Config passed to `createAttention`. */
  attentionConfig?: Record<string, unknown>;
  /** Stages (1-based) that get an attention layer after them. Default: all (LTPA: all but the last). */
  attentionStages?: number[];
  /**
   * Batch normalisation after each conv (conv without bias, BN, ReLU). Default false: on the wasm
   * backend it makes a training step of the three-stage CNN 1.8x slower (2.8 vs 1.5 ms of CPU per
   * 60x60 image), and after 20k cluttered images it had not learnt faster per image (validation
   * accuracy 76.6% against 82.2% without; CBAM 70.1% against 78.4%).
   */
  batchNorm?: boolean;
  /**
   * Global pooling before the classifier: max ("max", default) or average ("avg"). On 60x60
   * cluttered MNIST the max head learns much faster (validation accuracy after one epoch of 60k
   * images: 92.7% against 86.1%): the average mixes the clutter's features into the digit's.
   */
  head?: "avg" | "max";
  /** Number of classes. Default 10. */
  numClasses?: number;
  /** Seed of the initial weights. Default 0. */
  seed?: number;
  /** Model name. */
  name?: string;
}

/**
 * The default stages for 60x60 cluttered MNIST (`--stages 16k5s2,32p,64p,64`): a 5x5 stride-2 conv to
 * 30x30 with 16 channels, a 3x3 conv with 32 channels at 30x30, 2x2 max pool, a 3x3 conv with 64 at
 * 15x15, 2x2 max pool, a 3x3 conv with 64 at 7x7 (61k parameters). A digit (28x28 pixels) spans
 * 14x14 cells of the first two stages and 7x7 of the third.
 *
 * The earlier default, `16k5s2p,32p,64,64` (the same weights, with the pool after the first stage, so
 * stages 2-4 ran at 15x15, 7x7 and 7x7), cost 1.7 ms of CPU per training image against 3.7 ms, but it
 * saw the digit at a quarter of its resolution from its second conv on and stopped at 6.7% test error
 * after 150k images; this one reached 4.9% after 100k (plain CNN, wasm, one thread; README). More
 * channels at the coarse resolution did not do it: `16k5s2p,32p,128,128` (191k parameters, 3.4 ms per
 * image) gave 7.4% after 100k.
 */
export const CLUTTERED_STAGES: readonly CnnStage[] = [
  { filters: 16, kernelSize: 5, strides: 2, pool: false },
  { filters: 32, kernelSize: 3, pool: true },
  { filters: 64, kernelSize: 3, pool: true },
  { filters: 64, kernelSize: 3, pool: false },
];

/**
 * How a registry mechanism plugs into {@link attentionCnn}: after each stage, as the global head
 * (two inputs, LTPA), or not at all ("none": RGB-image ops such as Itti-Koch saliency, and
 * mechanisms whose input is not a feature map: sequences, glimpses).
 */
export type AttentionPlug = "stage" | "global" | "none" | "not registered";

/** Whether `name` is registered and how it plugs in (after each stage, or as the LTPA head). */
export function attentionPlug(name: string): AttentionPlug {
  const entry = attentionEntries().find((e) => e.name === name);
  if (!entry) return "not registered";
  const inputs = entry.example?.inputs ?? [[3, 7, 5, 32]];
  if (inputs[0].length !== 4 || inputs[0][3] === 3) return "none";
  return inputs.length >= 2 ? "global" : "stage";
}

/**
 * Builds the CNN, with the same initial weights for the same seed.
 *
 * @example
 * ```ts
 * import { attentionCnn } from "./cnn.ts";
 * const plain = attentionCnn({ seed: 1 });
 * const cbam = attentionCnn({ attention: "cbam", attentionConfig: { reduction: 8 }, seed: 1 });
 * cbam.getLayer("s2_att"); // the CBAM after stage 2
 * ```
 */
export function attentionCnn(options: AttentionCnnOptions = {}): LayersModel {
  const stages = options.stages ?? CLUTTERED_STAGES;
  const name = options.attention ?? null;
  const plug = name ? attentionPlug(name) : null;
  if (plug === "none") {
    throw new Error(`attentionCnn: attention '${name}' does not take a feature map, so it cannot follow a CNN stage`);
  }
  if (plug === "not registered") {
    throw new Error(`attentionCnn: attention '${name}' is not registered (see listAttention())`);
  }
  const numClasses = options.numClasses ?? 10;
  const bn = options.batchNorm ?? false;
  const all = stages.map((_, i) => i + 1);
  const attStages = options.attentionStages ?? (plug === "global" ? all.slice(0, -1) : all);
  for (const s of attStages) {
    if (!all.includes(s)) {
      throw new Error(`attentionCnn: attentionStages holds ${s}, the stages are 1..${stages.length}`);
    }
  }
  // the entry's own create (what createAttention calls), so that an entry added at run time works too
  const entry = name ? attentionEntries().find((e) => e.name === name)! : null;
  const make = (stage: number) =>
    entry!.create({ ...(options.attentionConfig ?? {}), name: `s${stage}_att` }) as unknown as tfl.layers.Layer;
  return withSeededRandom(options.seed ?? 0, () => {
    const input = tfl.input({ shape: options.inputShape ?? [60, 60, 1], name: "image" });
    let x = input as SymbolicTensor;
    const stageOut: SymbolicTensor[] = [];
    stages.forEach((st, i) => {
      const k = i + 1;
      x = tfl.layers.conv2d({
        name: `s${k}_conv`,
        filters: st.filters,
        kernelSize: st.kernelSize ?? 3,
        strides: st.strides ?? 1,
        padding: "same",
        activation: bn ? "linear" : "relu",
        useBias: !bn,
        kernelInitializer: "heNormal",
      }).apply(x) as SymbolicTensor;
      if (bn) {
        x = tfl.layers.batchNormalization({ name: `s${k}_bn` }).apply(x) as SymbolicTensor;
        x = tfl.layers.reLU({ name: `s${k}_relu` }).apply(x) as SymbolicTensor;
      }
      if (plug === "stage" && attStages.includes(k)) x = make(k).apply(x) as SymbolicTensor;
      stageOut.push(x);
      if (st.pool ?? true) x = tfl.layers.maxPooling2d({ name: `s${k}_pool`, poolSize: 2 }).apply(x) as SymbolicTensor;
    });
    let features = (options.head === "avg"
      ? tfl.layers.globalAveragePooling2d({ name: "gap" })
      : tfl.layers.globalMaxPooling2d({ name: "gmp" })).apply(x) as SymbolicTensor;
    if (plug === "global") {
      const globalRank = entry!.example!.inputs[1].length;
      const channels = stages[stages.length - 1].filters;
      let g = tfl.layers.dense({ name: "global", units: channels, activation: "relu" }).apply(
        features,
      ) as SymbolicTensor;
      if (globalRank === 4) {
        g = tfl.layers.reshape({ name: "global_map", targetShape: [1, 1, channels] }).apply(g) as SymbolicTensor;
      }
      const descriptors = attStages.map((k) => {
        let d = make(k).apply([stageOut[k - 1], g]) as SymbolicTensor;
        if (d.shape.length === 4) {
          d = tfl.layers.globalAveragePooling2d({ name: `s${k}_att_gap` }).apply(d) as SymbolicTensor;
        } else if (d.shape.length !== 2) {
          d = tfl.layers.flatten({ name: `s${k}_att_flat` }).apply(d) as SymbolicTensor;
        }
        return d;
      });
      features = descriptors.length === 1
        ? descriptors[0]
        : tfl.layers.concatenate({ name: "descriptors" }).apply(descriptors) as SymbolicTensor;
    }
    const logits = tfl.layers.dense({ name: "logits", units: numClasses }).apply(features) as SymbolicTensor;
    return tfl.model({ inputs: input, outputs: logits, name: options.name ?? (name ? `cnn_${name}` : "cnn_plain") });
  });
}
