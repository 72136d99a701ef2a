/**
 * Input gradients of fused convolutions only when something needs them.
 *
 * tfjs-layers' Conv2D runs `tf.fused.conv2d`, whose gradient is a `customGrad` that computes the
 * gradients of the input, the filter and the bias all at once, eagerly, even when the tape asks for
 * the filter's alone. The first convolution of a network gets the image as its input, which no
 * variable depends on, so every training step computed the image's gradient and threw it away: in
 * a ResNet-18 step at 8x64x64 on wasm that is the stem's 7x7 stride-2 `Conv2DBackpropInput`, about
 * 18% of the step's CPU time. PyTorch skips it (the image does not require grad).
 *
 * {@link installLazyFusedConvGradients} records the attributes of every `FusedConv2D` kernel call
 * (strides, padding, ...) by its output, and replaces the tape node's gradient of such a call
 * by one with a closure per input, as tfjs's registered gradients are: the tape calls only those
 * whose input is a function of the differentiated variables. The gradients themselves are
 * tfjs-core's (`conv2DBackpropInput`, `conv2DBackpropFilter`, the bias' sum). Calls whose
 * attributes were not recorded (a backend registered later), NCHW, dilations, non-linear
 * activations and rank-3 inputs keep tfjs's gradient.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor4D } from "../types.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** What the gradient needs of a `FusedConv2D` call. */
interface ConvAttrs {
  strides: number | [number, number];
  pad: "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: string;
  dilations: number | [number, number];
  dimRoundingMode?: "floor" | "round" | "ceil";
  activation?: string;
}

/** `FusedConv2D` attributes by the output's data id (a backend object; weak, so freed with it). */
const attrsByOutput = new WeakMap<object, ConvAttrs>();
const wrapped = new WeakSet<tf.KernelFunc>();
let patched = false;
let enabled = true;

/** The op scope tfjs-core's `fused.conv2d` runs in (`op({ fusedConv2d_ })`). */
const FUSED_CONV_SCOPE = "fusedConv2d__op";

function lazyGradient(attrs: ConvAttrs) {
  return (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [filter, x, , bias] = saved as [Tensor4D, Tensor4D, Tensor, Tensor | undefined];
    const g = dy as Tensor4D;
    const grads: Record<string, () => Tensor> = {
      0: () => tf.conv2dTranspose(g, filter, x.shape, attrs.strides, attrs.pad, attrs.dimRoundingMode),
      1: () =>
        tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy: g }, {
          strides: attrs.strides,
          pad: attrs.pad,
          dataFormat: "NHWC",
          dimRoundingMode: attrs.dimRoundingMode,
          filterShape: filter.shape,
        } as Any) as Tensor,
    };
    if (bias != null) {
      grads[2] = () => {
        const axes = tf.backend_util.getReductionAxes(bias.shape, g.shape);
        return tf.reshape(axes.length > 0 ? tf.sum(g, axes) : g, bias.shape);
      };
    }
    return grads;
  };
}

const isOne = (v: number | [number, number]) => (Array.isArray(v) ? v.every((d) => d === 1) : v === 1);

/**
 * Record `FusedConv2D` attributes on every backend registered now, and give the tape nodes of
 * `tf.fused.conv2d` per-input gradients (see the module's comment). Idempotent.
 */
export function installLazyFusedConvGradients(): void {
  for (const backendName of Object.keys((tf.engine() as Any).registryFactory)) {
    const config = tf.getKernel(tf.FusedConv2D, backendName);
    if (config == null || wrapped.has(config.kernelFunc)) continue;
    const inner = config.kernelFunc;
    const kernelFunc: tf.KernelFunc = (args) => {
      const out = inner(args);
      const info = (Array.isArray(out) ? out[0] : out) as tf.TensorInfo;
      attrsByOutput.set(info.dataId, args.attrs as unknown as ConvAttrs);
      return out;
    };
    wrapped.add(kernelFunc);
    tf.unregisterKernel(tf.FusedConv2D, backendName);
    tf.registerKernel({ ...config, kernelFunc });
  }
  if (patched) return;
  patched = true;
  const engine = tf.engine() as Any;
  const addTapeNode = engine.addTapeNode;
  engine.addTapeNode = function (
    kernelName: string,
    inputs: Record<string, Tensor>,
    outputs: Tensor[],
    gradientsFunc: unknown,
    saved: Tensor[],
    attrs: unknown,
  ) {
    if (enabled && kernelName === FUSED_CONV_SCOPE && outputs.length === 1 && outputs[0].rank === 4) {
      const a = attrsByOutput.get(outputs[0].dataId);
      if (
        a != null && a.dataFormat === "NHWC" && isOne(a.dilations) && (a.activation ?? "linear") === "linear" &&
        saved?.[1]?.rank === 4
      ) {
        gradientsFunc = lazyGradient(a);
      }
    }
    return addTapeNode.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
  };
}

/**
 * Turn the per-input gradients of {@link installLazyFusedConvGradients} off (tfjs's eager
 * gradient) or back on, e.g. to compare the two. Affects tape nodes recorded afterwards.
 *
 * @param on true (the default after installing) or false.
 */
export function setLazyFusedConvGradients(on: boolean): void {
  enabled = on;
}
