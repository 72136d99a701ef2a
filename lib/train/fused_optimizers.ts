/**
 * Momentum SGD (Qian 1999, "On the momentum term in gradient descent learning algorithms"; tfjs's
 * `MomentumOptimizer`) and Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization";
 * tfjs's `AdamOptimizer`) whose update is one SIMD pass per variable on the wasm backend.
 *
 * tfjs's optimizers update each variable with whole-tensor ops: momentum SGD runs 4 (`m * v`,
 * `+ g`, `* -lr`, `+ w`), Adam 12, each reading and writing the whole variable (ResNet-18's 62
 * variables, 11.7M weights: 35 ms of CPU time per momentum update on one thread, 120 ms per Adam
 * update). On wasm these classes compute the new value and slots of a variable in one pass
 * (`lib/runtime/kernels/simd_loops.ts`) with the same float32 operations in the same order as
 * tfjs's ops, so the weights and slots are bit-equal to tfjs's. Elsewhere (cpu, webgpu), for
 * Nesterov's momentum, and for non-float32 variables, the update is tfjs's own ops.
 *
 * The classes keep tfjs's slots, slot names and `className`, so `getWeights` / `setWeights`,
 * checkpoints and serialisation are unchanged.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { adamUpdate, momentumUpdate } from "../runtime/kernels/simd_loops.ts";
import type { Tensor, Variable } from "../types.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** A named tensor, as `applyGradients` takes them. */
type NamedTensor = { name: string; tensor: Tensor };

const fr = Math.fround;

/** The variables and gradients of an `applyGradients` argument, in its order. */
function pairs(grads: tf.NamedTensorMap | NamedTensor[]): { name: string; grad: Tensor | undefined }[] {
  return Array.isArray(grads)
    ? grads.map((g) => ({ name: g.name, grad: g.tensor }))
    : Object.keys(grads).map((name) => ({ name, grad: grads[name] }));
}

/** The registered variable `name` (as tfjs's optimizers find it). */
function variableNamed(name: string): Variable {
  const v = (tf.engine() as Any).registeredVariables[name] as Variable | undefined;
  if (v == null) throw new Error(`optimizer: no variable named '${name}' is registered`);
  return v;
}

/**
 * tfjs's `MomentumOptimizer` (`v = m * v + g`; `w = w + (-lr) * v`) with the update as one SIMD
 * pass per variable on wasm (Nesterov's variant: tfjs's ops).
 */
export class FusedMomentumOptimizer extends tf.MomentumOptimizer {
  /** Updates each variable and its accumulation (see the module documentation). */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const self = this as Any;
    const c = fr(-this.learningRate);
    // tfjs multiplies by the scalar made at construction (setMomentum does not change it)
    const m = (self.m as Tensor).dataSync()[0];
    const nesterov = self.useNesterov as boolean;
    pairs(variableGradients).forEach(({ name, grad }, i) => {
      const value = variableNamed(name);
      if (self.accumulations[i] == null) {
        self.accumulations[i] = {
          originalName: `${name}/momentum`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      }
      if (grad == null) return;
      const accumulation = self.accumulations[i].variable as Variable;
      tf.tidy(() => {
        const fused = nesterov ? undefined : momentumUpdate(value, accumulation, grad, m, c);
        if (fused != null) {
          value.assign(fused[0]);
          accumulation.assign(fused[1]);
          return;
        }
        const newAccumulation = tf.add(tf.mul(self.m, accumulation), grad);
        const newValue = nesterov
          ? tf.add(tf.mul(self.c, tf.add(grad, tf.mul(newAccumulation, self.m))), value)
          : tf.add(tf.mul(self.c, newAccumulation), value);
        accumulation.assign(newAccumulation);
        value.assign(newValue);
      });
    });
    self.incrementIterations();
  }
}

/**
 * tfjs's `AdamOptimizer` with the update as one SIMD pass per variable on wasm:
 * `m = m * b1 + g * (1 - b1)`, `v = v * b2 + g^2 * (1 - b2)`,
 * `w = w + (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) * (-lr)`, rounded as tfjs's ops round.
 */
export class FusedAdamOptimizer extends tf.AdamOptimizer {
  /** Updates each variable and its two moments (see the module documentation). */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const self = this as Any;
    tf.tidy(() => {
      const oneMinusAccBeta1 = tf.sub(1, self.accBeta1);
      const oneMinusAccBeta2 = tf.sub(1, self.accBeta2);
      const constants = {
        b1: fr(this.beta1),
        c1: fr(1 - this.beta1),
        b2: fr(this.beta2),
        c2: fr(1 - this.beta2),
        d1: oneMinusAccBeta1.dataSync()[0],
        d2: oneMinusAccBeta2.dataSync()[0],
        eps: fr(this.epsilon),
        step: fr(-this.learningRate),
      };
      pairs(variableGradients).forEach(({ name, grad }, i) => {
        const value = variableNamed(name);
        if (self.accumulatedFirstMoment[i] == null) {
          self.accumulatedFirstMoment[i] = {
            originalName: `${name}/m`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        if (self.accumulatedSecondMoment[i] == null) {
          self.accumulatedSecondMoment[i] = {
            originalName: `${name}/v`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        if (grad == null) return;
        const first = self.accumulatedFirstMoment[i].variable as Variable;
        const second = self.accumulatedSecondMoment[i].variable as Variable;
        tf.tidy(() => {
          const fused = adamUpdate(value, first, second, grad, constants);
          if (fused != null) {
            value.assign(fused[0]);
            first.assign(fused[1]);
            second.assign(fused[2]);
            return;
          }
          const newFirst = tf.add(tf.mul(first, this.beta1), tf.mul(grad, 1 - this.beta1));
          const newSecond = tf.add(tf.mul(second, this.beta2), tf.mul(tf.square(grad), 1 - this.beta2));
          const corrected1 = tf.div(newFirst, oneMinusAccBeta1);
          const corrected2 = tf.div(newSecond, oneMinusAccBeta2);
          first.assign(newFirst);
          second.assign(newSecond);
          const update = tf.div(corrected1, tf.add(tf.sqrt(corrected2), this.epsilon));
          value.assign(tf.add(tf.mul(update, -this.learningRate), value));
        });
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, this.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, this.beta2));
    });
    self.incrementIterations();
  }
}

/**
 * {@link FusedMomentumOptimizer}: `tf.train.momentum` with a fused wasm update.
 *
 * @param learningRate the step size.
 * @param momentum the accumulation's decay (0.9 in PyTorch's ResNet recipe).
 * @param useNesterov Nesterov's momentum (tfjs's ops, not fused).
 * @returns the optimizer.
 */
export function momentum(learningRate: number, momentum: number, useNesterov = false): FusedMomentumOptimizer {
  return new FusedMomentumOptimizer(learningRate, momentum, useNesterov);
}

/**
 * {@link FusedAdamOptimizer}: `tf.train.adam` with a fused wasm update.
 *
 * @param learningRate the step size (tfjs's default 0.001).
 * @param beta1 the first moment's decay.
 * @param beta2 the second moment's decay.
 * @param epsilon added to the root of the second moment (default: the backend's epsilon).
 * @returns the optimizer.
 */
export function adam(learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon?: number): FusedAdamOptimizer {
  return new FusedAdamOptimizer(learningRate, beta1, beta2, epsilon ?? null as unknown as number);
}
