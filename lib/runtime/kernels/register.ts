/**
 * Registration of the kernels training needs (see {@link registerTrainingKernels}).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { conv2dBackpropFilterKernel } from "./conv2d_backprop_filter.ts";
import { conv2dBackpropInputKernel } from "./conv2d_backprop_input.ts";
import { depthwiseBackpropFilterKernel, depthwiseBackpropInputKernel } from "./depthwise_backprop.ts";
import { cpuFallbackKernel, registerCpuFallbacks } from "./cpu_fallback.ts";
import { resizeBilinearGradCpuKernel, resizeBilinearGradWasmKernel } from "./resize_bilinear_grad.ts";
import { wasmBatchMatMulKernel } from "./batch_matmul.ts";
import { fusedBatchNormGrad } from "./batch_norm_grad.ts";
import { minMaxGrad } from "./min_max_grad.ts";
import { maxPoolGrad2dWasmKernel, maxPoolGradWasmKernel } from "./max_pool_grad.ts";
import { avgPoolGrad } from "./avg_pool_grad.ts";
import { wasmIdentityKernel, wasmSliceKernel } from "./slice.ts";
import { wasmHeapReduceKernel } from "./reduce_heap.ts";
import { wasmGemmConv2DKernel } from "./conv2d_gemm.ts";
import type { KernelConfig } from "../../types.ts";

/** What {@link registerTrainingKernels} did (kernel names per action). */
export interface TrainingKernelReport {
  /** Kernels newly registered (or wrapped, or replacing wasm's own loop: `Conv2DBackpropInput`) on wasm. */
  wasm: string[];
  /** cpu kernels replaced by the faster forward-op versions. */
  cpuOverrides: string[];
  /** Kernels bridged to the cpu implementation on wasm. */
  wasmFallbacks: string[];
}

const ours = new WeakSet<tf.KernelFunc>();
const ourGradients = new WeakSet<tf.GradConfig["gradFunc"]>();
const originals = new Map<string, KernelConfig>();
/** The wasm convolutions already replaced by conv2d_gemm.ts's kernel. */
const gemmConvs = new Set<string>();

/** Register `config` unless `backendName` already has that kernel. */
function addIfMissing(config: KernelConfig, done: string[]): void {
  if (tf.getKernel(config.kernelName, config.backendName) != null) return;
  ours.add(config.kernelFunc);
  tf.registerKernel(config);
  done.push(config.kernelName);
}

/** Replace a registered gradient by one built from it (`make(original)`), once. */
function replaceGradient(kernelName: string, make: (original: tf.GradConfig) => tf.GradConfig): void {
  const existing = tf.getGradient(kernelName);
  if (existing == null || ourGradients.has(existing.gradFunc)) return;
  const config = make(existing);
  ourGradients.add(config.gradFunc);
  tf.registerGradient(config);
}

/** Replace a wasm kernel by one built from it (`make(original)`), once. */
function replaceWasm(kernelName: string, make: (original: KernelConfig) => KernelConfig, done: string[]): void {
  const existing = tf.getKernel(kernelName, "wasm");
  if (existing == null || ours.has(existing.kernelFunc)) return;
  const config = make(existing);
  tf.unregisterKernel(kernelName, "wasm");
  ours.add(config.kernelFunc);
  tf.registerKernel(config);
  done.push(kernelName);
}

/** Replace a cpu kernel by `config`, keeping the original for reference. */
function override(config: KernelConfig, done: string[]): void {
  const existing = tf.getKernel(config.kernelName, config.backendName);
  if (existing != null && ours.has(existing.kernelFunc)) return;
  if (existing != null) {
    // cpu originals by name (originalCpuKernel), others by backend and name
    originals.set(
      config.backendName === "cpu" ? config.kernelName : `${config.backendName}:${config.kernelName}`,
      existing,
    );
    tf.unregisterKernel(config.kernelName, config.backendName);
  }
  ours.add(config.kernelFunc);
  tf.registerKernel(config);
  done.push(config.kernelName);
}

/**
 * Register the kernels that training needs and the backends lack. Idempotent:
 * a second call registers nothing new (call it again after loading wasm).
 *
 * - wasm (only when `@tensorflow/tfjs-backend-wasm` is loaded): `BatchMatMul` replaced by one
 *   that runs batched and transposed products as XNNPACK 1x1 convolutions (tfjs's own runs
 *   them as a scalar loop, 8-11x slower; see `batch_matmul.ts`), `Conv2DBackpropInput` (NHWC)
 *   replaced by one forward conv of the dilated gradient (tfjs's is a scalar loop: half of a
 *   ResNet training step), `Sum` / `Mean` over a block of axes before the last one as one pass
 *   over the wasm heap, bit-equal to tfjs's (which transposes the whole tensor first; see
 *   `reduce_heap.ts`; an earlier XNNPACK-pooling version lost NaN and was removed),
 *   `Conv2DBackpropFilter`, `DepthwiseConv2dNativeBackpropFilter` and
 *   `DepthwiseConv2dNativeBackpropInput` as single forward convs, wasm's own
 *   `Conv2DBackpropInput` (a plain loop) replaced by one forward conv too, then a
 *   cpu fall-back for every other kernel the cpu backend has and wasm lacks
 *   (`UnsortedSegmentSum`, `Einsum`, ...; not complex64 ones), `MaxPoolGrad` replaced by one pass
 *   over the wasm heap and `MaxPool3DGrad` wrapped, so that windows of non-positive values keep
 *   their gradient (see `max_pool_grad.ts`),
 *   `MaxPool3D` and `MaxPoolWithArgmax` bridged to cpu (wasm's give 2^-126 for such windows),
 *   `Slice` replaced by one memmove per contiguous run inside the heap (tfjs's copies the whole
 *   input out of the heap first) and `Identity` by one that shares its input's storage (tfjs's
 *   copies it; see `slice.ts`), and `Conv2D` / `FusedConv2D` (stride 1, no bias or activation)
 *   with few output positions per output channel as `W^T cols^T`, which packs the small im2col
 *   matrix instead of re-packing the new filter of every training step (see `conv2d_gemm.ts`).
 * - every backend: the `FusedBatchNorm` gradient replaced by one with a third of the full-size
 *   passes (tfjs-core's tiles the variance to the input's shape; see `batch_norm_grad.ts`), and
 *   the `Max` / `Min` gradients without a broadcast `equal` (see `min_max_grad.ts`), and the
 *   `AvgPool` gradient made exact where windows overlap the padding (see `avg_pool_grad.ts`).
 * - cpu: `Conv2DBackpropFilter` (30-70x faster than the naive loop) and
 *   `DepthwiseConv2dNativeBackpropFilter` (3-5x) replaced by the same
 *   forward-conv versions; `ResizeBilinearGrad` replaced by a correct one
 *   (tfjs' labels non-square results with H and W swapped and ignores
 *   `halfPixelCenters`, see `./resize_bilinear_grad.ts`).
 * - wasm: `ResizeBilinearGrad` with `halfPixelCenters` runs that cpu kernel
 *   (the native one ignores the attribute).
 *
 * @returns the kernel names registered by this call.
 */
export function registerTrainingKernels(): TrainingKernelReport {
  const report: TrainingKernelReport = {
    wasm: [],
    cpuOverrides: [],
    wasmFallbacks: [],
  };
  replaceGradient("FusedBatchNorm", fusedBatchNormGrad);
  replaceGradient("Max", () => minMaxGrad("Max"));
  replaceGradient("Min", () => minMaxGrad("Min"));
  replaceGradient("AvgPool", avgPoolGrad);
  override(conv2dBackpropFilterKernel("cpu"), report.cpuOverrides);
  override(depthwiseBackpropFilterKernel("cpu"), report.cpuOverrides);
  override(resizeBilinearGradCpuKernel(), report.cpuOverrides);
  if (tf.getKernelsForBackend("wasm").length > 0) {
    const native = tf.getKernel(tf.ResizeBilinearGrad, "wasm");
    if (native != null && !ours.has(native.kernelFunc)) {
      const fixed = resizeBilinearGradWasmKernel(native);
      tf.unregisterKernel(tf.ResizeBilinearGrad, "wasm");
      ours.add(fixed.kernelFunc);
      tf.registerKernel(fixed);
      report.wasm.push(tf.ResizeBilinearGrad);
    }
    addIfMissing(conv2dBackpropFilterKernel("wasm"), report.wasm);
    addIfMissing(depthwiseBackpropFilterKernel("wasm"), report.wasm);
    addIfMissing(depthwiseBackpropInputKernel("wasm"), report.wasm);
    replaceWasm("BatchMatMul", wasmBatchMatMulKernel, report.wasm);
    // tfjs's Slice copies its whole input out of the heap first, its Identity copies it (slice.ts)
    replaceWasm("Slice", wasmSliceKernel, report.wasm);
    replaceWasm("Identity", wasmIdentityKernel, report.wasm);
    // wasm's own max-pool gradients drop the windows whose maximum is not positive (max_pool_grad.ts)
    replaceWasm("MaxPoolGrad", maxPoolGrad2dWasmKernel, report.wasm);
    replaceWasm("MaxPool3DGrad", maxPoolGradWasmKernel, report.wasm);
    // and MaxPool3D / MaxPoolWithArgmax (not XNNPACK's MaxPool) return 2^-126 for such windows: cpu's
    for (const name of ["MaxPool3D", "MaxPoolWithArgmax"]) {
      const cpu = tf.getKernel(name, "cpu");
      if (cpu != null) replaceWasm(name, () => cpuFallbackKernel(cpu, "wasm"), report.wasm);
    }
    // convolutions with few positions and a large filter as a product that does not re-pack it (conv2d_gemm.ts)
    // (once: installLazyFusedConvGradients wraps FusedConv2D again after this, hiding ours)
    for (const name of ["FusedConv2D", "Conv2D"]) {
      if (gemmConvs.has(name) || tf.getKernel(name, "wasm") == null) continue;
      replaceWasm(name, wasmGemmConv2DKernel, report.wasm);
      gemmConvs.add(name);
    }
    // Sum / Mean over a block of axes before the last one: one heap pass, bit-equal (reduce_heap.ts)
    replaceWasm("Sum", (native) => wasmHeapReduceKernel("Sum", native), report.wasm);
    replaceWasm("Mean", (native) => wasmHeapReduceKernel("Mean", native), report.wasm);
    // (Reductions as XNNPACK pooling in place, tried before, lost NaN: a NaN input gave finite outputs in SK.)
    const own = tf.getKernel(tf.Conv2DBackpropInput, "wasm");
    if (own == null || !ours.has(own.kernelFunc)) {
      override(conv2dBackpropInputKernel("wasm", own ?? undefined), report.wasm);
    }
    report.wasmFallbacks = registerCpuFallbacks("wasm");
  }
  return report;
}

/**
 * The cpu kernel that {@link registerTrainingKernels} replaced (the tfjs
 * original), e.g. to compare results or time it.
 *
 * @param kernelName e.g. "Conv2DBackpropFilter".
 * @returns its original cpu config, or `undefined` if it was not replaced.
 */
export function originalCpuKernel(
  kernelName: string,
): KernelConfig | undefined {
  return originals.get(kernelName);
}
