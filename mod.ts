/**
 * attnkit: visual attention mechanisms for TensorFlow.js, in Deno.
 *
 * Every mechanism is an op (a pure function returning `{ output, maps }`), a trainable
 * `tf.layers.Layer` that serialises, a registry entry with its paper, and a PyTorch importer.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { captureAttention, createAttention, initBackend } from "./mod.ts";
 * await initBackend({ quiet: true });
 * const cbam = createAttention("cbam", { reduction: 8 });
 * const x = tf.randomNormal([1, 24, 32, 64]);
 * const cap = captureAttention(() => cbam.apply(x) as tf.Tensor);
 * console.log(cap.maps[cbam.name].spatial.shape); // [1, 24, 32, 1]
 * cap.dispose();
 * ```
 *
 * @module
 */
export * from "./lib/types.ts";
export * from "./lib/runtime/backend.ts";
export * from "./lib/runtime/seed.ts";
export { containGradientErrors } from "./lib/runtime/gradient_errors.ts";
export { registerStableDivGradient, registerZeroGradients, ZERO_GRADIENT_KERNELS } from "./lib/runtime/gradients.ts";
export * from "./lib/runtime/fuse.ts";
export * from "./lib/registry.ts";
export * from "./lib/capture.ts";
export * from "./lib/checks.ts";
export * from "./lib/ops/result.ts";
export * from "./lib/ops/common.ts";
export * from "./lib/ops/adaptive_pool.ts";
export * from "./lib/ops/sequence.ts";
export * from "./lib/ops/glimpse.ts";
export * from "./lib/ops/glimpse_host.ts";
export * from "./lib/ops/window_pool.ts";
export * from "./lib/ops/resize_nearest.ts";
export * from "./lib/ops/conv2d_torch.ts";
export * from "./lib/ops/pyramid.ts";
export * from "./lib/ops/position_attention.ts";
export * from "./lib/ops/memory.ts";
export * from "./lib/ops/blocked_attention.ts";
export * from "./lib/ops/pyramid_sample.ts";
export * from "./lib/ops/conv_bn.ts";
export { AttentionLayer, LayerBase, mergeConfig } from "./lib/modules/base.ts";
export type { AddWeight, AttentionCategory, AttentionEntry, ForwardContext, LayerArgs } from "./lib/modules/base.ts";
export * from "./lib/interop/torch.ts";
export * from "./lib/interop/safetensors.ts";
export { fromTensor, toTensor } from "./lib/interop/raw_tensor.ts";
export * from "./lib/interop/file_io.ts";
export * from "./lib/data/image.ts";
// mechanisms, one line each
export * from "./lib/modules/se.ts";
export * from "./lib/modules/eca.ts";
export * from "./lib/modules/cbam.ts";
export * from "./lib/modules/cbam_simple.ts";
export * from "./lib/modules/scse.ts";
export * from "./lib/modules/blocks.ts";
export * from "./lib/modules/gc.ts";
export * from "./lib/modules/cc.ts";
export * from "./lib/modules/apnb.ts";
export * from "./lib/modules/afnb.ts";
export * from "./lib/modules/ocr.ts";
export * from "./lib/modules/dnl.ts";
export * from "./lib/modules/a2.ts";
export * from "./lib/modules/fca.ts";
export * from "./lib/modules/gsop.ts";
export * from "./lib/modules/rga.ts";
export * from "./lib/modules/danet_cam.ts";
export * from "./lib/modules/danet_pam.ts";
export * from "./lib/modules/nonlocal.ts";
export * from "./lib/modules/sagan.ts";
export * from "./lib/backbones/blocks.ts";
export * from "./lib/backbones/layers.ts";
export * from "./lib/backbones/resnet.ts";
export * from "./lib/backbones/segmentation.ts";
export * from "./lib/backbones/vgg.ts";
export * from "./lib/backbones/zoo.ts";
export * from "./lib/backbones/profile.ts";
export * from "./lib/modules/residual_attention.ts";
export * from "./lib/modules/saliency_itti.ts";
export * from "./lib/modules/se_bottleneck.ts";
export * from "./lib/modules/se_resnet_block.ts";
export * from "./lib/modules/bam.ts";
export * from "./lib/modules/ge.ts";
export * from "./lib/modules/sk.ts";
export * from "./lib/modules/spa.ts";
export * from "./lib/modules/spatial_weights.ts";
export * from "./lib/modules/bahdanau.ts";
export * from "./lib/modules/mha.ts";
export * from "./lib/modules/racnn_apn.ts";
export * from "./lib/modules/ram.ts";
export * from "./lib/modules/sdpa.ts";
export * from "./lib/modules/show_attend_tell.ts";
export * from "./lib/modules/sparse_strided.ts";
export * from "./lib/modules/transformer_encoder.ts";
export * from "./lib/modules/iau.ts";
export * from "./lib/modules/ltpa.ts";
export * from "./lib/modules/pyramid_attention.ts";
export * from "./lib/viz/mod.ts";
export * from "./lib/notebook.ts";
export * from "./lib/profile.ts";
export * from "./lib/data/features.ts";
// data and training
export * from "./lib/data/idx.ts";
export * from "./lib/data/mnist.ts";
export * from "./lib/data/rng.ts";
export * from "./lib/data/digits.ts";
export * from "./lib/data/batches.ts";
export * from "./lib/train/cnn.ts";
export * from "./lib/train/localisation.ts";
export * from "./lib/train/progress.ts";
export * from "./lib/train/train.ts";
export * from "./lib/train/shipped.ts";
export * from "./lib/train/shipped_views.ts";
export * from "./lib/train/coordinate_channels.ts";
export * from "./lib/train/sat_train.ts";
export * from "./lib/train/racnn_train.ts";
export * from "./lib/train/ram_train.ts";
