/**
 * The workloads that `bench/torch_compare.ts` runs in attnkit and in PyTorch (bench/torch_bench.py)
 * and that `bench/resnet_bench.ts` runs in attnkit alone: one spec, built on both sides.
 *
 * Mechanisms are described by a reference-fixture module name and a PyTorch config (the
 * constructor arguments of tests/fixtures/make_local_fixtures*.py's modules); attnkit's config comes
 * from the registry entry's own fixture mapping (`entry.fixtures[module](config)`), the same one
 * the fixture tests check, so both sides build the same structure.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getAttentionEntry } from "../../lib/registry.ts";
import type { LayersModel, Tensor, Variable } from "../../lib/types.ts";
import { benchModel } from "./resnet.ts";
import { fuseForInference } from "../../lib/runtime/fuse.ts";
import { momentum } from "../../lib/train/fused_optimizers.ts";

/** A 2-D convolution, no bias, "same" padding, stride 1. */
export interface ConvSpec {
  /** Kind tag. */
  kind: "conv";
  /** Input [N,H,W,C]. */
  input: number[];
  /** Output channels. */
  filters: number;
  /** Square kernel size. */
  kernel: number;
}

/** A ResNet forward (inference) or training step (SGD with momentum, softmax cross-entropy). */
export interface ResNetSpec {
  /** Kind tag. */
  kind: "resnet";
  /** 18 or 50. */
  depth: 18 | 50;
  /** Input [N,H,W,3]. */
  input: number[];
  /** SE in every block, or none. */
  attention: null | "se";
  /** Training step instead of inference. */
  train: boolean;
  /** attnkit side only: fold BatchNorm and fuse activations first ({@link fuseForInference}). */
  fused?: boolean;
}

/** A registered mechanism with its PyTorch twin. */
export interface MechanismSpec {
  /** Kind tag. */
  kind: "mechanism";
  /** Registry name. */
  name: string;
  /** Reference-fixture module name (a key of the entry's `fixtures`). */
  module: string;
  /** PyTorch constructor config, as in the fixture JSON. */
  config: Record<string, unknown>;
  /** Input shapes, NHWC / [N, L, E]. */
  inputs: number[][];
  /** Forward+backward (training mode, gradients of mean(output) for every weight). */
  backward: boolean;
}

/** Any workload. */
export type WorkloadSpec = ConvSpec | ResNetSpec | MechanismSpec;

/** A named workload. */
export interface Workload {
  /** Table label. */
  label: string;
  /** Group for the geometric means. */
  group: "op" | "backbone" | "mechanism forward" | "mechanism backward";
  /** The spec both sides build. */
  spec: WorkloadSpec;
  /** Floating-point operations of one step, when known (for GFLOP/s). */
  flops?: number;
}

const IMG = [8, 32, 32, 64];
const SEQ = [8, 256, 64];

/** The mechanisms with a PyTorch twin: registry name, fixture module, PyTorch config, inputs. */
export const MECHANISM_TWINS: [string, string, Record<string, unknown>, number[][]][] = [
  ["se", "se", { channel: 64, reduction: 16 }, [IMG]],
  ["eca", "eca", { channel: 64, k_size: 3 }, [IMG]],
  ["cbam", "cbam", { gate_channels: 64, reduction_ratio: 16, pool_types: ["avg", "max"], no_spatial: false }, [IMG]],
  ["cbam_simple", "cbam_simple_relu", { channel: 64, ratio: 16 }, [IMG]],
  ["scse", "scse", { ch: 64, re: 16 }, [IMG]],
  ["gc", "gc", { inplanes: 64, ratio: 0.25, planes: 16, pooling_type: "att", fusion_types: ["channel_add"] }, [IMG]],
  ["cc", "cc", { in_dim: 64, recurrence: 2, query_key_channels: 8 }, [IMG]],
  ["apnb", "apnb", {
    in_channels: 64,
    out_channels: 64,
    key_channels: 32,
    value_channels: 32,
    dropout: 0.05,
    sizes: [1],
    norm_type: "batchnorm",
    psp_size: [1, 3, 6, 8],
  }, [IMG]],
  ["afnb", "afnb", {
    low_in_channels: 64,
    high_in_channels: 64,
    out_channels: 64,
    key_channels: 32,
    value_channels: 32,
    dropout: 0.05,
    sizes: [1],
    norm_type: "batchnorm",
    psp_size: [1, 3, 6, 8],
  }, [IMG, IMG]],
  ["ocr", "ocr", { in_channels: 64, key_channels: 32, out_channels: 64, num_classes: 19, scale: 1, dropout: 0.05 }, [
    IMG,
    [8, 32, 32, 19],
  ]],
  ["dnl", "dnl", {
    inplanes: 64,
    planes: 32,
    downsample: false,
    whiten_type: ["channel"],
    temperature: 0.05,
    with_unary: true,
  }, [IMG]],
  ["fca", "fca", { channel: 64, dct_h: 7, dct_w: 7, reduction: 16, freq_sel_method: "top16" }, [IMG]],
  ["a2", "a2_paper", { in_channels: 64, c_m: 32, c_n: 32 }, [IMG]],
  ["gsop", "gsop_attention", { channels: 64, att_dim: 32, DR_stride: 1 }, [IMG]],
  ["gsop_bottleneck", "gsop_bottleneck", {
    inplanes: 64,
    planes: 16,
    stride: 1,
    downsample: null,
    attention: "1",
    att_dim: 32,
    DR_stride: 2,
  }, [IMG]],
  ["rga", "rga", {
    in_channel: 64,
    in_spatial: 1024,
    use_spatial: true,
    use_channel: true,
    cha_ratio: 8,
    spa_ratio: 8,
    down_ratio: 8,
  }, [IMG]],
  ["nonlocal", "nonlocal_embedded", {
    in_channels: 64,
    inter_channels: null,
    sub_sample: true,
    bn_layer: true,
    dimension: 2,
  }, [IMG]],
  ["danet_pam", "danet_pam", { in_dim: 64, query_key_channels: 8 }, [IMG]],
  ["danet_cam", "danet_cam", { in_dim: 64 }, [IMG]],
  ["sagan", "sagan", { in_dim: 64, query_key_channels: 8 }, [IMG]],
  ["se_resnet_block", "se_resnet_block", { inplanes: 64, planes: 64, stride: 1, reduction: 16, downsample: null }, [
    IMG,
  ]],
  ["se_bottleneck", "se_bottleneck", {
    inplanes: 64,
    planes: 16,
    expansion: 4,
    stride: 1,
    reduction: 16,
    downsample: null,
  }, [IMG]],
  ["residual_attention", "residual_attention", {
    in_channels: 64,
    out_channels: 64,
    size1: [32, 32],
    size2: [16, 16],
    size3: [8, 8],
  }, [IMG]],
  ["bam", "bam", { gate_channel: 64, reduction_ratio: 16, dilation_conv_num: 2, dilation_val: 4 }, [IMG]],
  ["sk", "sk", { features: 64, M: 2, G: 32, r: 16, stride: 1, L: 32 }, [IMG]],
  ["spa", "spa_scaled", { in_channel: 64, channel: 64, reduction: 16 }, [IMG]],
  ["ge", "ge", { channels: 64, extent: 4, extra_params: true, use_mlp: true }, [IMG]],
  ["spatial_weights", "spatial_weights", { channels: 64, hidden: 64 }, [IMG]],
  ["sdpa", "sdpa_causal", { num_heads: 4, causal: true }, [SEQ, SEQ, SEQ]],
  ["mha", "mha", {
    embed_dim: 64,
    num_heads: 4,
    dropout: 0,
    bias: true,
    add_bias_kv: false,
    add_zero_attn: false,
    kdim: null,
    vdim: null,
    batch_first: true,
  }, [SEQ, SEQ]],
  ["sparse_strided", "sparse_strided", {
    num_heads: 4,
    seq_len: 256,
    stride: 16,
    local_window: 16,
    pattern_mode: "merged",
    causal: true,
  }, [SEQ, SEQ, SEQ]],
  ["bahdanau", "bahdanau", { query_dim: 64, key_dim: 64, attn_dim: 64 }, [[8, 32, 64], SEQ]],
  ["transformer_encoder", "transformer_encoder", {
    d_model: 64,
    nhead: 4,
    dim_feedforward: 256,
    dropout: 0,
    activation: "relu",
    layer_norm_eps: 1e-5,
    batch_first: true,
    norm_first: false,
  }, [SEQ]],
];

/** Mechanisms without weights: forward only. */
const WEIGHT_FREE = new Set(["sdpa", "sparse_strided"]);

/** Registered mechanisms without a PyTorch twin here, and why. */
export const NO_TWIN: Record<string, string> = {
  saliency_itti: "weight-free saliency model; no PyTorch reference module",
  show_attend_tell: "recurrent caption decoder; not a feature-map workload",
  racnn_apn: "crop-and-zoom on images; not a feature-map workload",
  ram: "glimpse network on images; not a feature-map workload",
};

/** Every workload of the side-by-side, in table order. */
export function allWorkloads(): Workload[] {
  const out: Workload[] = [
    {
      label: "conv 3x3 256->256, 8x28x28",
      group: "op",
      spec: { kind: "conv", input: [8, 28, 28, 256], filters: 256, kernel: 3 },
      flops: 2 * 8 * 28 * 28 * 256 * 256 * 9,
    },
  ];
  for (const [depth, attention] of [[18, null], [50, null], [50, "se"]] as const) {
    const name = `${attention === "se" ? "SE-" : ""}ResNet-${depth}`;
    out.push({
      label: `${name} forward 8x224x224`,
      group: "backbone",
      spec: { kind: "resnet", depth, input: [8, 224, 224, 3], attention, train: false },
    });
    out.push({
      label: `${name} forward 8x224x224, fused`,
      group: "backbone",
      spec: { kind: "resnet", depth, input: [8, 224, 224, 3], attention, train: false, fused: true },
    });
  }
  for (const attention of [null, "se"] as const) {
    out.push({
      label: `${attention === "se" ? "SE-" : ""}ResNet-18 training step 8x64x64`,
      group: "backbone",
      spec: { kind: "resnet", depth: 18, input: [8, 64, 64, 3], attention, train: true },
    });
  }
  for (const backward of [false, true]) {
    for (const [name, module, config, inputs] of MECHANISM_TWINS) {
      if (backward && WEIGHT_FREE.has(name)) continue; // nothing to differentiate
      out.push({
        label: `${name} ${backward ? "forward+backward" : "forward"}`,
        group: backward ? "mechanism backward" : "mechanism forward",
        spec: { kind: "mechanism", name, module, config, inputs, backward },
      });
    }
  }
  return out;
}

/** attnkit's side of a workload: `step()` runs one repetition to completion. */
export interface Runner {
  /** One repetition (waits for the result). */
  step(): Promise<void>;
  /** Output shape (NHWC), for the check against PyTorch's; null for training steps. */
  outShape: number[] | null;
  /** Where the model came from (ResNets: "zoo" or "bench"). */
  source?: string;
  /** Frees everything. */
  dispose(): void;
}

/**
 * Wait for `t`: on wasm and cpu kernels run synchronously, so the result exists when the op
 * returns (reading it back would add a copy, and an `await` about 1 ms, that PyTorch's side
 * does not pay); elsewhere (WebGPU) read it.
 */
async function settle(t: Tensor): Promise<void> {
  const backend = tf.getBackend();
  if (backend !== "wasm" && backend !== "cpu") await t.data();
}

function seeded(shape: number[], seed: number): Tensor {
  return tf.randomNormal(shape, 0, 1, "float32", seed);
}

function variablesOf(layerWeights: { val?: Variable }[]): Variable[] {
  return layerWeights.map((w) => (w as { val: Variable }).val);
}

/**
 * Build attnkit's side of a workload.
 *
 * @param spec the workload.
 * @returns a runner.
 */
export async function attnkitRunner(spec: WorkloadSpec): Promise<Runner> {
  if (spec.kind === "conv") {
    const [, , , c] = spec.input;
    const x = seeded(spec.input, 1) as tf.Tensor4D;
    const w = tf.mul(seeded([spec.kernel, spec.kernel, c, spec.filters], 2), 0.05) as tf.Tensor4D;
    const probe = tf.conv2d(x, w, 1, "same");
    const outShape = probe.shape as number[];
    probe.dispose();
    return {
      outShape,
      async step() {
        const y = tf.conv2d(x, w, 1, "same");
        await settle(y);
        y.dispose();
      },
      dispose: () => tf.dispose([x, w]),
    };
  }
  if (spec.kind === "resnet") {
    const [, h, w, c] = spec.input;
    const { model: built, source } = await benchModel(
      spec.depth,
      [h, w, c],
      spec.attention === "se"
        ? { name: "se", factory: () => getAttentionEntry("se").create({ reduction: 16 }) }
        : undefined,
    );
    const model: LayersModel = spec.fused ? fuseForInference(built) : built;
    const x = seeded(spec.input, 1);
    if (!spec.train) {
      const probe = model.predict(x) as Tensor;
      const outShape = probe.shape as number[];
      probe.dispose();
      return {
        outShape,
        source: spec.fused ? `${source}, fused` : source,
        async step() {
          const y = model.predict(x) as Tensor;
          await settle(y);
          y.dispose();
        },
        dispose: () => {
          tf.dispose(x);
          model.dispose();
          if (model !== built) built.dispose();
        },
      };
    }
    const labels = tf.oneHot(tf.randomUniform([spec.input[0]], 0, 1000, "int32", 3) as tf.Tensor1D, 1000);
    // tfjs's momentum SGD with its update as one SIMD pass per variable on wasm (bit-equal results)
    const optimizer = momentum(0.01, 0.9);
    const vars = variablesOf(model.trainableWeights as unknown as { val: Variable }[]);
    return {
      outShape: null,
      source,
      async step() {
        const cost = optimizer.minimize(
          () => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true }) as Tensor) as tf.Scalar,
          true,
          vars,
        );
        await settle(cost!);
        cost!.dispose();
      },
      dispose: () => {
        tf.dispose([x, labels]);
        optimizer.dispose();
        model.dispose();
      },
    };
  }
  const entry = getAttentionEntry(spec.name);
  const map = entry.fixtures?.[spec.module];
  if (map == null) throw new Error(`${spec.name} has no fixture mapping "${spec.module}"`);
  const layer = entry.create(map(spec.config));
  const xs = spec.inputs.map((s, i) => seeded(s, i + 1));
  const feed = xs.length === 1 ? xs[0] : xs;
  const first = (y: Tensor | Tensor[]) => (Array.isArray(y) ? y[0] : y);
  const probe = layer.apply(feed) as Tensor | Tensor[];
  const outShape = first(probe).shape as number[];
  tf.dispose(probe);
  const vars = variablesOf(layer.trainableWeights as unknown as { val: Variable }[]);
  return {
    outShape,
    async step() {
      if (!spec.backward) {
        const y = layer.apply(feed) as Tensor | Tensor[];
        await settle(first(y));
        tf.dispose(y);
        return;
      }
      const { value, grads } = tf.variableGrads(
        () => tf.mean(first(layer.apply(feed, { training: true }) as Tensor | Tensor[])) as tf.Scalar,
        vars,
      );
      await Promise.all(Object.values(grads).map(settle));
      tf.dispose([value, grads]);
    },
    dispose: () => {
      tf.dispose(xs);
      layer.dispose();
    },
  };
}
