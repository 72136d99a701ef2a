/**
 * Generic fall-back: run a cpu kernel for a backend that lacks it, copying
 * the inputs to the cpu backend and the outputs back (no engine tensors, so
 * nothing to leak). Slow for big tensors but always correct.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type { KernelBackend, KernelConfig } from "../../types.ts";

/**
 * Kernels never bridged: complex64 tensors (wasm cannot hold them) and canvas
 * drawing.
 */
export const FALLBACK_EXCLUDED: ReadonlySet<string> = new Set([
  "Complex",
  "ComplexAbs",
  "FFT",
  "IFFT",
  "Real",
  "Imag",
  "Draw",
]);

/**
 * The cpu backend instance (initialised on demand), with its one-time
 * "install tfjs-node" console banner switched off.
 *
 * @returns the registered cpu `KernelBackend`.
 */
export function cpuBackend(): KernelBackend {
  const cpu = tf.findBackend("cpu");
  if (cpu == null) throw new Error("attnkit: cpu backend is not registered");
  (cpu as unknown as { firstUse?: boolean }).firstUse = false;
  return cpu;
}

/**
 * Kernel config for `backendName` that runs the cpu kernel `cpuKernel`:
 * inputs are read with `backend.readSync`, written to the cpu backend, the cpu
 * kernel runs on them, and each output is read back and written into
 * `backendName`'s storage. Every cpu-side buffer is disposed.
 *
 * @param cpuKernel the cpu kernel config to bridge.
 * @param backendName target backend (e.g. "wasm").
 * @returns a config for `tf.registerKernel`.
 */
export function cpuFallbackKernel(
  cpuKernel: KernelConfig,
  backendName: string,
): KernelConfig {
  return {
    kernelName: cpuKernel.kernelName,
    backendName,
    kernelFunc: ({ inputs, backend: target, attrs }) => {
      const backend = target as KernelBackend;
      const cpu = cpuBackend();
      const cpuInputs: tf.NamedTensorInfoMap = {};
      const written: tf.DataId[] = [];
      for (const [name, info] of Object.entries(inputs)) {
        if (info == null) continue;
        const values = backend.readSync(info.dataId) as tf.BackendValues;
        const dataId = cpu.write(values, info.shape, info.dtype);
        written.push(dataId);
        cpuInputs[name] = { dataId, shape: info.shape, dtype: info.dtype };
      }
      try {
        const out = cpuKernel.kernelFunc({
          inputs: cpuInputs,
          attrs,
          backend: cpu,
        });
        const outs = Array.isArray(out) ? out : [out];
        const results = outs.map((o) => {
          const values = asDtype(cpu.readSync(o.dataId) as tf.BackendValues, o.dtype);
          const dataId = backend.write(values, o.shape, o.dtype);
          return { dataId, shape: o.shape.slice(), dtype: o.dtype };
        });
        for (const o of outs) cpu.disposeData(o.dataId);
        return Array.isArray(out) ? results : results[0];
      } finally {
        for (const id of written) cpu.disposeData(id);
      }
    },
  };
}

/**
 * `values` in the typed array of `dtype`. A cpu kernel may hold an int32 output in a Float32Array
 * (`MaxPoolWithArgmax`'s indexes); wasm copies the bytes, which turned index 1 into 1065353216.
 */
function asDtype(values: tf.BackendValues, dtype: tf.DataType): tf.BackendValues {
  if (dtype === "int32" && !(values instanceof Int32Array)) return Int32Array.from(values as ArrayLike<number>);
  if (dtype === "float32" && !(values instanceof Float32Array)) return Float32Array.from(values as ArrayLike<number>);
  return values;
}

/**
 * Register a {@link cpuFallbackKernel} on `backendName` for every kernel the
 * cpu backend has and `backendName` lacks (minus {@link FALLBACK_EXCLUDED}).
 * Call it after registering native kernels, so those win.
 *
 * @param backendName target backend (e.g. "wasm").
 * @returns the kernel names that were bridged.
 */
export function registerCpuFallbacks(backendName: string): string[] {
  const bridged: string[] = [];
  for (const k of tf.getKernelsForBackend("cpu")) {
    if (FALLBACK_EXCLUDED.has(k.kernelName)) continue;
    if (tf.getKernel(k.kernelName, backendName) != null) continue;
    tf.registerKernel(cpuFallbackKernel(k, backendName));
    bridged.push(k.kernelName);
  }
  return bridged;
}
