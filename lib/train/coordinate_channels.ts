/**
 * Coordinate channels (as CoordConv: Liu et al., "An intriguing failing of convolutional neural
 * networks and the CoordConv solution", NeurIPS 2018): appends the column and row of every cell,
 * scaled to [-1, 1] at the cell centres, to a feature map `[N, H, W, C]` -> `[N, H, W, C + 2]`.
 *
 * A soft attention that scores cells by their content alone (Show, Attend and Tell's
 * `w^T tanh(W_a a_i + W_h h)`) cannot tell two cells with the same content apart: with a
 * translation-equivariant CNN below it, "the left digit" and "the right digit" look alike. The
 * coordinates let the decoder's state ask for a place.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { AttentionLayer, type LayerArgs } from "../modules/base.ts";
import type { AttentionResult } from "../ops/result.ts";
import type { TorchParam } from "../interop/torch.ts";
import type { Shape, Tensor } from "../types.ts";

/** Config of {@link CoordinateChannels} (none: it has no options). */
export type CoordinateChannelsConfig = Record<never, never>;

/**
 * Appends x (column) and y (row) coordinate channels in [-1, 1] to `[N, H, W, C]`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { CoordinateChannels } from "./coordinate_channels.ts";
 * const y = new CoordinateChannels().apply(tf.zeros([2, 3, 4, 8])) as tf.Tensor; // [2, 3, 4, 10]
 * ```
 */
export class CoordinateChannels extends AttentionLayer<CoordinateChannelsConfig> {
  /** Serialisation name. */
  static className = "attnkit.CoordinateChannels";

  /** Creates the layer (no options besides the layer arguments). */
  constructor(config: LayerArgs = {}) {
    super({}, config);
  }

  /** No weights. */
  protected createWeights(): void {}

  /** Concatenates the coordinate channels. */
  protected forward(x: Tensor): AttentionResult {
    const [n, h, w] = x.shape as number[];
    const xs = tf.tile(tf.reshape(tf.linspace(-1 + 1 / w, 1 - 1 / w, w), [1, 1, w, 1]), [n, h, 1, 1]);
    const ys = tf.tile(tf.reshape(tf.linspace(-1 + 1 / h, 1 - 1 / h, h), [1, h, 1, 1]), [n, 1, w, 1]);
    return { output: tf.concat([x, xs, ys], 3), maps: {} };
  }

  /** The input shape with two more channels. */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = inputShape as Shape;
    return [s[0], s[1], s[2], s[3] === null ? null : (s[3] as number) + 2];
  }

  /** No PyTorch weights. */
  torchParams(): TorchParam[] {
    return [];
  }
}
tf.serialization.registerClass(CoordinateChannels);
