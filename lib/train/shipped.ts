/**
 * The trained models shipped in `data/models/<name>/` (model.json + weights.bin in the
 * {@link fileIO} format, and `meta.json` with the command that reproduces the model and its test
 * metrics), for notebooks and the demo.
 *
 * @module
 */
import * as tfl from "@tensorflow/tfjs-layers";
import { fileIO } from "../interop/file_io.ts";
import type { LayersModel } from "../types.ts";
// the attention layers must be registered before a model that holds them is loaded
import "../registry.ts";

/** What a shipped model's `meta.json` holds. */
export interface ShippedModelMeta {
  /** Folder name, e.g. "cluttered_cbam". */
  name: string;
  /** Registry name of the attention mechanism, or null for the plain CNN. */
  attention: string | null;
  /** The task and the input/output convention. */
  task: string;
  /** The command that trains and saves it. */
  command: string;
  /** How the test set was made. */
  testSet: string;
  /** Test error (0..1). */
  testError: number;
  /** Trainable and non-trainable parameters. */
  params: number;
  /** Training time in seconds, on the backend named. */
  trainSeconds: number;
  /** CPU seconds of training (the wall time on an idle core for single-threaded wasm). */
  trainCpuSeconds?: number;
  /** Epochs trained. */
  epochs: number;
  /** Localisation metrics per attention layer with a spatial map. */
  localisation: Record<string, { massInBox: number; pointing: number; mapSize: number[] }>;
  /** Backend it was trained on. */
  backend: string;
  /**
   * Weights format: absent, "fileIO" or "layers" for the LayersModels {@link loadShippedModel} loads (model.json +
   * weights.bin, e.g. the Show-Attend-Tell reader); the others are stored as safetensors and have their own loaders:
   * "safetensors" (RA-CNN, `loadShippedRacnn`), "ram-safetensors" (`loadShippedRam`).
   */
  format?: string;
  /** The constructor config of a model stored as safetensors (e.g. an `RACNNConfig`). */
  config?: object;
  /** Further test metrics of the task (accuracy per scale, per step, ...). */
  metrics?: Record<string, number>;
}

/** True for the formats {@link loadShippedModel} loads: absent, "fileIO" or "layers". */
function isLayersFormat(format: string | undefined): boolean {
  return format === undefined || format === "fileIO" || format === "layers";
}

/** The folder of the shipped models (`data/models/` of this repository). */
export function shippedModelsDir(): string {
  return decodeURIComponent(new URL("../../data/models/", import.meta.url).pathname);
}

/**
 * The shipped models' metadata, by folder name order: the LayersModels that {@link loadShippedModel}
 * loads, or with `all` every folder with a `meta.json` (RAM's too, whose `format` names its loader).
 */
export async function listShippedModels(options: { all?: boolean } = {}): Promise<ShippedModelMeta[]> {
  const out: ShippedModelMeta[] = [];
  const dir = shippedModelsDir();
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) names.push(e.name);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    try {
      const meta = JSON.parse(await Deno.readTextFile(`${dir}${name}/meta.json`)) as ShippedModelMeta;
      if (options.all || isLayersFormat(meta.format)) out.push(meta);
    } catch {
      // a folder without meta.json is not a shipped model
    }
  }
  return out;
}

/**
 * Loads a shipped model and its metadata.
 *
 * @example
 * ```ts
 * import { loadShippedModel } from "./shipped.ts";
 * const { model, meta } = await loadShippedModel("cluttered_cbam");
 * console.log(meta.testError, meta.command);
 * // model.predict(images [N, 60, 60, 1] in [0, 1]) -> logits [N, 10]
 * ```
 *
 * @throws Error listing the shipped models when `name` is not one.
 */
export async function loadShippedModel(name: string): Promise<{ model: LayersModel; meta: ShippedModelMeta }> {
  const dir = `${shippedModelsDir()}${name}`;
  let meta: ShippedModelMeta;
  try {
    meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
  } catch {
    const known = (await listShippedModels()).map((m) => m.name).join(", ") || "none";
    throw new Error(`loadShippedModel: no shipped model '${name}' in ${shippedModelsDir()} (shipped: ${known})`);
  }
  if (!isLayersFormat(meta.format)) {
    throw new Error(
      `loadShippedModel: '${name}' is not a LayersModel (format ${meta.format}, stored as safetensors): load it with its own loader (loadShippedRam, loadShippedRacnn)`,
    );
  }
  return { model: await tfl.loadLayersModel(fileIO(dir)), meta };
}
