/**
 * Where a shipped cluttered-MNIST model looks: loads a model of `data/models/cluttered_*`, runs it
 * on test images made by the same recipe as its test set, and returns its predictions with every
 * attention map it produced, ready for the figure builders (the tour notebook and the demo use it).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { captureAttention } from "../capture.ts";
import { batches } from "../data/batches.ts";
import { type Box, clutteredMnist } from "../data/digits.ts";
import { loadMnist, type MnistSet } from "../data/mnist.ts";
import { channelBarsFigure, mapGridFigure } from "../viz/maps.ts";
import type { Figure } from "../viz/figure.ts";
import { loadShippedModel, type ShippedModelMeta } from "./shipped.ts";
import type { Tensor, Tensor4D } from "../types.ts";

/**
 * The test-set recipe of the cluttered models (`meta.testSet`): 60x60 images with 4 clutter
 * patches of 8x8, made from MNIST test with seed 12345.
 */
export const CLUTTERED_TEST_RECIPE = { size: 60, clutter: 4, patch: 8, seed: 12345 } as const;

/** Options of {@link shippedAttention}. */
export interface ShippedAttentionOptions {
  /** Test images to run (default 4). */
  count?: number;
  /** First test image (default 0). */
  start?: number;
  /** MNIST test digits to make the images from (default: `loadMnist({ split: "test" })`). */
  mnist?: MnistSet;
}

/** What a shipped model saw and where it looked; free the tensors with `dispose()`. */
export interface ShippedAttentionView {
  /** The model's `meta.json`. */
  meta: ShippedModelMeta;
  /** The test images `[n, 60, 60, 1]` in [0, 1]. */
  images: Tensor4D;
  /** True labels. */
  labels: number[];
  /** Predicted classes. */
  predictions: number[];
  /** The digit's box in each image (image pixels, half-open). */
  boxes: Box[];
  /** Spatial maps `[n, h, w, 1]` by attention layer name, in the order the model runs them. */
  spatial: Record<string, Tensor4D>;
  /** Channel weights `[n, 1, 1, C]` by attention layer name. */
  channel: Record<string, Tensor4D>;
  /** Frees the images and maps. */
  dispose(): void;
}

/**
 * Runs the shipped model `name` on `count` test images of its cluttered test set and captures
 * its attention.
 *
 * @example
 * ```ts
 * import { initBackend } from "../runtime/backend.ts";
 * import { shippedAttention } from "./shipped_views.ts";
 * await initBackend({ quiet: true });
 * const view = await shippedAttention("cluttered_cbam", { count: 2 });
 * Object.keys(view.spatial); // the CBAM layers' names
 * view.dispose();
 * ```
 *
 * @throws Error when `name` is not a shipped model, or when `count`/`start` are out of range.
 */
export async function shippedAttention(
  name: string,
  opts: ShippedAttentionOptions = {},
): Promise<ShippedAttentionView> {
  const count = opts.count ?? 4;
  const start = opts.start ?? 0;
  if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(start) && start >= 0)) {
    throw new Error(
      `shippedAttention: expected count >= 1 and start >= 0 (integers), got count ${count}, start ${start}`,
    );
  }
  const { model, meta } = await loadShippedModel(name);
  const mnist = opts.mnist ?? await loadMnist({ split: "test" });
  const set = clutteredMnist(mnist, { ...CLUTTERED_TEST_RECIPE, count: start + count });
  const batch = batches(set, { batchSize: count, start, end: start + count }).next().value!;
  const cap = captureAttention(() => model.predict(batch.xs) as Tensor);
  const argMax = tf.argMax(cap.result, 1);
  const predictions = Array.from(argMax.dataSync() as Int32Array);
  argMax.dispose();
  const spatial: Record<string, Tensor4D> = {};
  const channel: Record<string, Tensor4D> = {};
  for (const [layer, maps] of Object.entries(cap.maps)) {
    for (const [map, t] of Object.entries(maps)) {
      if (map === "spatial" && t.rank === 4) spatial[layer] = tf.keep(t.clone()) as Tensor4D;
      else if (map === "channel" && t.rank === 4) channel[layer] = tf.keep(t.clone()) as Tensor4D;
    }
  }
  cap.dispose();
  cap.result.dispose();
  model.dispose();
  tf.dispose(batch.ys);
  const view: ShippedAttentionView = {
    meta,
    images: batch.xs,
    labels: Array.from(batch.labels),
    predictions,
    boxes: batch.boxes.map((b: Box[]) => b[0]),
    spatial,
    channel,
    dispose() {
      tf.dispose([view.images, ...Object.values(view.spatial), ...Object.values(view.channel)]);
    },
  };
  return view;
}

/** Options of {@link shippedAttentionFigure}. */
export interface ShippedAttentionFigureOptions {
  /** Which spatial map (attention layer name); default: the deepest one (fewest cells; the last run on a tie). */
  layer?: string;
  /** Opacity of the maps over the digits (default 0.5). */
  opacity?: number;
}

/**
 * The spatial map of one attention layer over each test image, with the digit's true box
 * outlined and "label -> prediction" in each title, on one colour scale.
 *
 * @throws Error when the model has no spatial attention map (SE, ECA, the plain CNN) or `layer`
 * is not one of its spatial maps.
 */
export function shippedAttentionFigure(view: ShippedAttentionView, opts: ShippedAttentionFigureOptions = {}): Figure {
  const layers = Object.keys(view.spatial);
  if (layers.length === 0) {
    throw new Error(`shippedAttentionFigure: ${view.meta.name} has no spatial attention map (channel maps only)`);
  }
  // default: the deepest map, the one with the fewest cells (the last of those run, on a tie)
  const cells = (name: string) => view.spatial[name].shape[1] * view.spatial[name].shape[2];
  const layer = opts.layer ?? layers.reduce((best, name) => (cells(name) <= cells(best) ? name : best));
  const maps = view.spatial[layer];
  if (!maps) throw new Error(`shippedAttentionFigure: no spatial map '${layer}' (has ${layers.join(", ")})`);
  const [h, w] = maps.shape.slice(1, 3);
  const n = view.labels.length;
  const one = (t: Tensor4D, i: number) => tf.slice(t, [i, 0, 0, 0], [1, -1, -1, -1]);
  const items = Array.from({ length: n }, (_, i) => ({
    title: `${view.labels[i]} → ${view.predictions[i]}${view.labels[i] === view.predictions[i] ? "" : " ✗"}`,
    map: one(maps, i),
    image: tf.tidy(() => tf.tile(one(view.images, i), [1, 1, 1, 3])),
    boxes: [view.boxes[i]],
  }));
  try {
    const hits = view.meta.localisation?.[layer]?.pointing;
    return mapGridFigure(items, {
      columns: Math.min(n, 6),
      opacity: opts.opacity ?? 0.5,
      panelSize: 180,
      title: `${view.meta.name}: ${layer} (${h}x${w})` +
        (hits === undefined ? "" : `, pointing ${(100 * hits).toFixed(1)}% on the test set`),
    });
  } finally {
    tf.dispose(items.flatMap((it) => [it.map, it.image]));
  }
}

/**
 * The picture of one shipped model: {@link shippedAttentionFigure} when it has spatial maps, the
 * channel weights of its last attention layer on the first test image when it only reweights
 * channels (SE, ECA), and undefined for a model without attention.
 */
export function shippedModelFigure(
  view: ShippedAttentionView,
  opts: ShippedAttentionFigureOptions = {},
): Figure | undefined {
  if (Object.keys(view.spatial).length) return shippedAttentionFigure(view, opts);
  const layer = Object.keys(view.channel).at(-1);
  if (!layer) return undefined;
  return channelBarsFigure(view.channel[layer], {
    topK: 16,
    title: `${view.meta.name}: ${layer} channel weights, test image 0 (a ${view.labels[0]}, predicted ${
      view.predictions[0]
    }), top 16`,
  });
}

/** One summary row of a shipped model's `meta.json` (for tables). */
export function shippedModelRow(meta: ShippedModelMeta): Record<string, string | number> {
  const maps = Object.entries(meta.localisation ?? {}).filter(([k]) => k !== "ink");
  // the deepest map, as the figure's: the fewest cells (the last on a tie); the keys' order is not the stages'
  const cells = (m: { mapSize?: number[] }) => (m.mapSize ?? []).reduce((a, b) => a * b, 1);
  const deepest = maps.reduce<(typeof maps)[number] | undefined>(
    (best, m) => (best === undefined || cells(m[1]) <= cells(best[1]) ? m : best),
    undefined,
  );
  return {
    model: meta.name,
    attention: meta.attention ?? "none",
    "test error %": Number((100 * meta.testError).toFixed(2)),
    params: meta.params,
    "pointing % (deepest map)": deepest ? Number((100 * deepest[1].pointing).toFixed(1)) : "-",
    epochs: meta.epochs,
  };
}
