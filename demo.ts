/**
 * The showcase: `deno task demo`.
 *
 * Picks the backend (the embedded wasm one unless ATTNKIT_BACKEND says otherwise), loads the
 * sample photographs from data/images, turns each into a 64-channel feature map with a fixed,
 * seeded convolutional stem (`stemFeatures`, untrained), runs every registered mechanism on them
 * and
 *
 * - prints the backend and a table of output shapes, map shapes, parameter counts, MACs, forward
 *   times and where each spatial map peaks;
 * - writes out/demo.html, one self-contained page (plotly.js inlined, no network) with the maps of
 *   every mechanism on the photos, the Itti-Koch saliency when `saliency_itti` is registered, a
 *   parameter / MAC / speed comparison, and where the trained models shipped in data/models look
 *   on cluttered test digits;
 * - prints where the page is.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  affinityFigure,
  affinityOf,
  attentionEntries,
  type AttentionEntry,
  type BackendName,
  captureAttention,
  captureFigure,
  channelBarsFigure,
  comparisonFigure,
  type ComparisonRow,
  countMacs,
  decodeImage,
  type Figure,
  figurePage,
  type GridItem,
  htmlTable,
  imageFigure,
  imageToTensor,
  initBackend,
  listShippedModels,
  loadMnist,
  mapGridFigure,
  type PageSection,
  sequenceAttentionFigure,
  shippedAttention,
  shippedModelFigure,
  shippedModelRow,
  stemFeatures,
  timeForward,
  toMatrix,
} from "./mod.ts";

const OUT = new URL("./out/", import.meta.url);
const PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"];
const LONG_SIDE = 336; // photos are resized so that the long side is 336 px (sides multiples of 8)

const backend = await initBackend({ backend: (Deno.env.get("ATTNKIT_BACKEND") as BackendName) ?? "wasm" });

/** A photo as [1,H,W,3] (0..255 in `image`, 0..1 in `unit`) with its stem features [1,H/8,W/8,64]. */
interface Photo {
  name: string;
  image: tf.Tensor4D;
  unit: tf.Tensor4D;
  features: tf.Tensor4D;
}

const photos: Photo[] = [];
for (const name of PHOTOS) {
  const img = decodeImage(await Deno.readFile(new URL(`./data/images/${name}`, import.meta.url)));
  const s = LONG_SIDE / Math.max(img.width, img.height);
  const size: [number, number] = [Math.round((img.height * s) / 8) * 8, Math.round((img.width * s) / 8) * 8];
  const image = tf.tidy(() => tf.expandDims(imageToTensor(img, { size }), 0) as tf.Tensor4D);
  const unit = tf.div(image, 255) as tf.Tensor4D;
  photos.push({ name, image, unit, features: stemFeatures(image, { channels: 64, stride: 8 }) });
}
const main = photos[0];
console.log(`photos: ${photos.map((p) => `${p.name} [${p.image.shape}]`).join(", ")} (NHWC)`);
console.log(`features: [${main.features.shape}] for ${main.name}, from a seeded 7x7 stride-8 stem\n`);

const WHAT: Record<string, string> = {
  channel: "re-weights the feature channels (a channel map [N,1,1,C])",
  spatial: "re-weights the positions (a spatial map [N,H,W,1])",
  mixed: "re-weights channels and positions",
  self: "lets every position gather features from other positions (an affinity between positions)",
  sequence: "attends over a sequence of tokens",
  recurrent: "attends to the image step by step",
};

/** One input set for a mechanism: a photo's features (or the photo itself), or its example inputs. */
interface Feed {
  label: string;
  inputs: tf.Tensor[];
  photo?: Photo;
}

/**
 * What a mechanism is fed: one NHWC input -> the stem features of every photo (the RGB photo in
 * 0..1 for 3-channel ops such as the Itti-Koch saliency); anything else (sequences, several
 * inputs) -> its registry example with batch 1, seeded random.
 */
function feedsFor(entry: AttentionEntry): Feed[] {
  const shapes = entry.example?.inputs ?? [[1, 7, 5, 32]];
  if (shapes.length === 1 && shapes[0].length === 4) {
    return photos.map((p) => ({ label: p.name, inputs: [shapes[0][3] === 3 ? p.unit : p.features], photo: p }));
  }
  const inputs = shapes.map((sh, i) => tf.randomNormal([1, ...sh.slice(1)], 0, 1, "float32", 11 + i));
  return [{ label: `its example input, random ${JSON.stringify(shapes.map((sh) => [1, ...sh.slice(1)]))}`, inputs }];
}

const feedOf = (f: Feed) => (f.inputs.length === 1 ? f.inputs[0] : f.inputs);
const trainableParams = (layer: { trainableWeights: { shape: (number | null)[] }[] }) =>
  layer.trainableWeights.reduce((n, w) => n + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);

const rows: Record<string, unknown>[] = [];
const costs: ComparisonRow[] = [];
const sections: PageSection[] = [];

for (const entry of attentionEntries()) {
  const feeds = feedsFor(entry);
  const first = feeds[0];
  const heading = `${entry.title} (${entry.name})`;
  const about = `${entry.paper}, ${entry.venue} ${entry.year}. Family: ${entry.category}; it ${
    WHAT[entry.category] ?? "attends"
  }.`;
  // a size-bound config (RGA's inSpatial) is derived from the input instead
  const layer = entry.create({ ...entry.example?.config, ...(first.photo ? { inSpatial: null } : {}) });
  let ms = 0;
  let macs = 0;
  try {
    const w0 = performance.now();
    tf.dispose(layer.apply(feedOf(first)) as tf.Tensor); // build and warm up
    const warm = performance.now() - w0;
    ms = await timeForward(() => layer.apply(feedOf(first)) as tf.Tensor, { runs: warm > 1000 ? 1 : 5, warmup: 0 });
    macs = (await countMacs(() => layer.apply(feedOf(first)) as tf.Tensor)).macs;
  } catch (e) {
    const message = (e as Error).message;
    rows.push({ mechanism: entry.name, paper: `${entry.venue} ${entry.year}`, output: `not run: ${message}` });
    sections.push({ heading, text: [about, `Not run on ${first.label}: ${message}`] });
    if (layer.built) layer.dispose();
    if (!first.photo) tf.dispose(first.inputs);
    continue;
  }
  const figures: Figure[] = [];
  const panels: GridItem[] = [];
  const notes: string[] = [];
  let row: Record<string, unknown> = {};
  for (const feed of feeds) {
    let cap;
    try {
      cap = captureAttention(() => layer.apply(feedOf(feed)) as tf.Tensor);
    } catch (e) {
      notes.push(`Not run on ${feed.label}: ${(e as Error).message}`);
      continue;
    }
    const maps = Object.values(cap.maps)[0] ?? {};
    for (const [name, t] of Object.entries(maps)) {
      if (feed.photo && t.rank === 4 && (t.shape[1] ?? 0) > 1 && t.shape[3] === 1) {
        panels.push({ title: `${feed.label} · ${name}`, map: toMatrix(t), image: feed.photo.image });
      }
    }
    if (feed === first) {
      let peak = "-";
      if (maps.spatial && maps.spatial.rank === 4) {
        const m = toMatrix(maps.spatial);
        const idx = m.values.indexOf(Math.max(...m.values));
        peak = `(${Math.floor(idx / m.cols)},${idx % m.cols}) of ${m.rows}x${m.cols}`;
      }
      row = {
        mechanism: entry.name,
        paper: `${entry.venue} ${entry.year}`,
        output: `[${cap.result.shape}]`,
        maps: Object.entries(maps).map(([k, v]) => `${k} [${v.shape}]`).join(", "),
        params: trainableParams(layer),
        MACs: macs,
        "forward ms": Number(ms.toFixed(2)),
        "spatial peak": peak,
      };
      const rest: Record<string, tf.Tensor> = {};
      for (const [name, t] of Object.entries(maps)) {
        const sh = t.shape as number[];
        const size = feed.inputs[0].shape.slice(1, 3) as [number, number];
        const grid = feed.photo && t.rank >= 3 ? affinityOf(t, size) : undefined;
        if (entry.category === "sequence" && (t.rank === 3 || t.rank === 4)) {
          figures.push(sequenceAttentionFigure(t, { title: `${entry.name} ${name} on ${feed.label}` }));
        } else if (t.rank === 4 && sh[1] === 1 && sh[2] === 1) {
          figures.push(channelBarsFigure(t, { topK: 16, title: `${name} on ${feed.label}, top 16 of ${sh[3]}` }));
        } else if (grid && feed.photo) {
          // a map over positions: one query's affinity over the photo, a slider over queries
          figures.push(affinityFigure(grid.affinity, {
            size,
            keySize: grid.keySize,
            image: feed.photo.image,
            maxQueries: 36,
            title: `${entry.name} ${name}`,
          }));
        } else if (!(feed.photo && t.rank === 4 && sh[3] === 1)) {
          rest[name] = t;
        }
        grid?.affinity.dispose();
      }
      if (Object.keys(rest).length) {
        figures.push(captureFigure({ [entry.name]: rest }, { title: `${entry.name}: maps on ${feed.label}` }));
      }
    }
    cap.dispose();
    cap.result.dispose();
  }
  if (panels.length) {
    // one colour scale when the panels show one kind of map; several kinds get their own ranges
    const kinds = new Set(panels.map((p) => p.title.split(" · ")[1]));
    figures.unshift(mapGridFigure(panels, {
      shared: kinds.size === 1,
      columns: 4,
      panelSize: 180,
      opacity: 0.55,
      title: `${entry.name}: maps over the photos${kinds.size === 1 ? " (one colour scale)" : ""}`,
      upsample: false, // keeps the page light: the maps' own cells, smoothed by the browser
    }));
  }
  rows.push(row);
  costs.push({ name: entry.name, params: trainableParams(layer), macs, ms });
  sections.push({
    heading,
    text: [
      `${about} ${trainableParams(layer).toLocaleString("en-US")} trainable parameters; run on ${
        first.photo ? "the photos" : first.label
      }; maps: ${row.maps || "none"}.`,
      ...notes,
    ],
    figures,
  });
  layer.dispose();
  if (!first.photo) tf.dispose(first.inputs);
}

console.table(rows);

// The Itti-Koch saliency runs in the loop above, on the photos themselves (it takes RGB).
const saliencySection: PageSection | undefined = attentionEntries().some((e) => e.name === "saliency_itti")
  ? undefined
  : {
    heading: "Itti-Koch saliency (saliency_itti)",
    text: "Not registered in this build: the Itti-Koch saliency model (Itti, Koch, Niebur, TPAMI 1998) appears " +
      "here, on the same photos, once `saliency_itti` is in the registry.",
  };

// The trained models shipped in data/models (the cluttered-MNIST experiment): where they look.
const trainedSection: PageSection = {
  heading: "Trained models on cluttered digits (data/models)",
  text: [
    "The same small CNN trained on 60x60 cluttered MNIST, plain and with attention after each stage " +
    "(`deno task experiment:cluttered`, see the README). For each model with spatial maps: its deepest map over six " +
    "test images, the digit's true box in white, label → prediction above each panel; for channel-only mechanisms, " +
    "the channel weights of the last stage. Test error and pointing-game hits are those of the whole test set " +
    "(meta.json). BAM's released form multiplies its spatial map by its channel map inside the sigmoid, so the " +
    "sign of the spatial map is free: the trained BAM marks the digit with its lowest values.",
  ],
  figures: [],
};
const cluttered = (await listShippedModels()).filter((m) => m.name.startsWith("cluttered_"));
if (cluttered.length === 0) {
  (trainedSection.text as string[]).push("No trained model is shipped in data/models.");
} else {
  trainedSection.html = htmlTable(cluttered.map(shippedModelRow));
  const mnistTest = await loadMnist({ split: "test" });
  for (const m of cluttered) {
    const view = await shippedAttention(m.name, { count: 6, mnist: mnistTest });
    const fig = shippedModelFigure(view);
    if (fig) trainedSection.figures!.push(fig);
    view.dispose();
  }
}

const page = figurePage("attnkit: every registered mechanism on the sample photos", [
  {
    text: [
      `Backend: ${backend.name} (${backend.reason}). Photos: ${PHOTOS.join(", ")} (data/images, see SOURCES.md).`,
      "Each photo goes through the same seeded, untrained convolutional stem (7x7, stride 8, 64 channels); each " +
      "mechanism runs with its registry defaults. Untrained maps follow edges and textures, not objects.",
    ],
    figures: photos.map((p) => imageFigure(p.image, { title: p.name, maxSize: 240 })),
  },
  ...sections,
  ...(saliencySection ? [saliencySection] : []),
  trainedSection,
  {
    heading: "Parameters, MACs and forward time",
    text: `On the ${main.name} features [${main.features.shape}], ${backend.name} backend, mean of 5 runs.`,
    figures: costs.length ? [comparisonFigure(costs)] : [],
    html: htmlTable(rows),
  },
]);
await Deno.mkdir(OUT, { recursive: true });
const pagePath = new URL("./demo.html", OUT);
await Deno.writeTextFile(pagePath, page);
console.log(`\nbackend: ${backend.name} (${backend.reason})`);
console.log(`page: ${pagePath.pathname} (${(page.length / 1e6).toFixed(1)} MB, self-contained; open it in a browser)`);
tf.dispose(photos.flatMap((p) => [p.image, p.unit, p.features]));
