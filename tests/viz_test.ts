/**
 * Figure builders (lib/viz): orientation and aspect of non-square maps, in the spec and in the PNG
 * rendering; label escaping; shared colour scales; affinity sliders; no tensor leaks.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import { initBackend } from "../lib/runtime/backend.ts";
import {
  affinityFigure,
  channelBarsFigure,
  heatmapFigure,
  mapGridFigure,
  overlayFigure,
  queryGrid,
} from "../lib/viz/maps.ts";
import { comparisonFigure, sequenceAttentionFigure, trainingCurvesFigure } from "../lib/viz/charts.ts";
import { colorScale, colorTable } from "../lib/viz/colormaps.ts";
import { affinityOf, composeAffinities, crissCrossToDense, keyGrid, toDenseAffinity } from "../lib/viz/affinity.ts";
import { escapeLabel, type Figure } from "../lib/viz/figure.ts";
import { renderFigure, renderFigurePng } from "../lib/viz/raster.ts";
import { fromBase64, toBase64 } from "../lib/viz/base64.ts";
import { decodeImage } from "../lib/data/image.ts";
import { countMacs } from "../lib/profile.ts";
import { kernelMacs } from "../lib/backbones/profile.ts";

await initBackend({ quiet: true });

/** A 3x5 map (non-square): value = 10*row + col, so (0,0) is the smallest and (2,4) the largest. */
function rampMap(): tf.Tensor4D {
  const v: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 5; c++) v.push(10 * r + c);
  return tf.tensor4d(v, [1, 3, 5, 1]);
}

function pixel(r: { width: number; data: Uint8Array }, x: number, y: number): number[] {
  const o = 3 * (Math.round(y) * r.width + Math.round(x));
  return [r.data[o], r.data[o + 1], r.data[o + 2]];
}

function near(a: number[], b: number[], tol = 6): boolean {
  return a.every((v, i) => Math.abs(v - b[i]) <= tol);
}

function leakCheck(name: string, fn: () => unknown): void {
  const before = tf.memory().numTensors;
  fn();
  assert.equal(tf.memory().numTensors, before, `${name} leaked tensors`);
}

Deno.test("heatmapFigure: non-square map keeps rows, row 0 at the top, square cells", () => {
  const m = rampMap();
  const before = tf.memory().numTensors;
  const fig = heatmapFigure(m, { title: "ramp" });
  assert.equal(tf.memory().numTensors, before);
  const z = fig.data[0].z as number[][];
  assert.equal(z.length, 3, "3 rows");
  assert.equal(z[0].length, 5, "5 columns");
  assert.deepEqual(z[0], [0, 1, 2, 3, 4], "row 0 of the map is z[0]");
  const yaxis = fig.layout.yaxis as Record<string, unknown>;
  assert.deepEqual(yaxis.range, [2.5, -0.5], "y reversed: row 0 at the top");
  assert.equal(yaxis.scaleanchor, "x", "square cells");
  const mg = fig.layout.margin as { l: number; r: number; t: number; b: number };
  const w = fig.layout.width! - mg.l - mg.r;
  const h = fig.layout.height! - mg.t - mg.b;
  assert.ok(Math.abs(w / h - 5 / 3) < 0.02, `plot area ${w}x${h} keeps the 5:3 aspect`);
  m.dispose();
});

Deno.test("renderFigure: the PNG shows row 0 at the top and the map's aspect", () => {
  const m = rampMap();
  const fig = heatmapFigure(m, { title: "ramp" });
  m.dispose();
  const r = renderFigure(fig);
  assert.equal(r.width, fig.layout.width);
  assert.equal(r.height, fig.layout.height);
  const mg = fig.layout.margin as { l: number; r: number; t: number; b: number };
  const cw = (r.width - mg.l - mg.r) / 5;
  const ch = (r.height - mg.t - mg.b) / 3;
  const table = colorTable(colorScale("viridis"));
  const lo = [table[0], table[1], table[2]];
  const hi = [table[765], table[766], table[767]];
  const topLeft = pixel(r, mg.l + cw / 2, mg.t + ch / 2);
  const bottomRight = pixel(r, mg.l + 4.5 * cw, mg.t + 2.5 * ch);
  assert.ok(near(topLeft, lo), `top-left cell is the map's (0,0) (smallest), got ${topLeft}`);
  assert.ok(near(bottomRight, hi), `bottom-right cell is (2,4) (largest), got ${bottomRight}`);
  // the map's cells are square in pixels
  assert.ok(Math.abs(cw - ch) <= 1, `cells ${cw.toFixed(1)}x${ch.toFixed(1)} are square`);
  const png = renderFigurePng(fig);
  const back = decodeImage(png);
  assert.equal(back.width, r.width);
  assert.equal(back.height, r.height);
});

Deno.test("overlayFigure: the map is upsampled to the photo, same orientation, opacity and scale adjustable", () => {
  const photo = tf.tidy(() => tf.concat([tf.ones([1, 15, 50, 3]), tf.zeros([1, 15, 50, 3])], 1)); // white top, black bottom
  const m = rampMap();
  let fig: Figure | undefined;
  leakCheck("overlayFigure", () => {
    fig = overlayFigure(photo, m, { opacity: 0.3, colorscale: "viridis" });
  });
  const [img, heat] = fig!.data;
  assert.equal(img.type, "image");
  assert.equal(heat.type, "heatmap");
  assert.equal(heat.opacity, 0.3);
  const z = heat.z as number[][];
  assert.equal(z.length, 30, "map upsampled to the photo's 30 rows");
  assert.equal(z[0].length, 50, "and 50 columns");
  assert.ok(z[0][0] < z[29][49], "top-left stays the small end");
  assert.ok(z[0][0] < z[0][49] && z[0][0] < z[29][0], "orientation kept on both axes");
  const src = decodeImage(fromBase64((img.source as string).split(",")[1]));
  assert.deepEqual([src.width, src.height], [50, 30]);
  assert.equal(src.data[0], 255, "photo row 0 (white) at the top");
  assert.equal(src.data[src.data.length - 1], 0);
  const sliders = fig!.layout.sliders as { steps: { args: unknown[] }[] }[];
  assert.equal(sliders[0].steps.length, 11, "opacity slider 0..1");
  const menus = fig!.layout.updatemenus as { buttons: unknown[] }[];
  assert.ok(menus[0].buttons.length >= 3, "colour-scale menu");
  const r = renderFigure(fig!);
  const mg = fig!.layout.margin as { l: number; r: number; t: number; b: number };
  const ph = fig!.layout.height! - mg.t - mg.b;
  const pw = fig!.layout.width! - mg.l - mg.r;
  assert.ok(Math.abs(pw / ph - 50 / 30) < 0.02, "small photo enlarged with its aspect");
  const top = pixel(r, mg.l + pw / 2, mg.t + 0.1 * ph);
  const bottom = pixel(r, mg.l + pw / 2, mg.t + 0.9 * ph);
  assert.ok(top[0] + top[1] + top[2] > bottom[0] + bottom[1] + bottom[2], "white photo half drawn at the top");
  tf.dispose([photo, m]);
});

Deno.test("channelBarsFigure: top-k sorted from the largest, repeated labels stay separate", () => {
  const w = tf.tensor4d([0.1, 0.9, 0.5, 0.7, 0.3], [1, 1, 1, 5]);
  let fig: Figure | undefined;
  leakCheck("channelBarsFigure", () => {
    fig = channelBarsFigure(w, { topK: 3, labels: ["a", "<b>", "a", "a", "c"] });
  });
  const t = fig!.data[0];
  assert.deepEqual(t.y, [0.9, 0.7, 0.5]);
  const xaxis = fig!.layout.xaxis as { tickvals: number[]; ticktext: string[] };
  assert.deepEqual(xaxis.tickvals, [0, 1, 2], "bars placed by position, not by label");
  assert.deepEqual(xaxis.ticktext, ["&lt;b&gt;", "a", "a"], "labels escaped; repeated 'a' kept twice");
  w.dispose();
});

Deno.test("sequenceAttentionFigure: escaped token labels, repeated tokens not merged, rows = queries", () => {
  const tokens = ["<s>", "the", "cat", "the", "</s>"];
  const wts = tf.tidy(() => tf.softmax(tf.randomNormal([1, 5, 5], 0, 1, "float32", 4)));
  let fig: Figure | undefined;
  leakCheck("sequenceAttentionFigure", () => {
    fig = sequenceAttentionFigure(wts, { queryTokens: tokens });
  });
  const xaxis = fig!.layout.xaxis as { tickvals: number[]; ticktext: string[] };
  const yaxis = fig!.layout.yaxis as { tickvals: number[]; ticktext: string[]; range: number[] };
  assert.deepEqual(xaxis.ticktext, ["&lt;s&gt;", "the", "cat", "the", "&lt;/s&gt;"]);
  assert.deepEqual(xaxis.tickvals, [0, 1, 2, 3, 4], "five key positions although 'the' repeats");
  assert.deepEqual(yaxis.tickvals, [0, 1, 2, 3, 4]);
  assert.deepEqual(yaxis.range, [4.5, -0.5], "query 0 at the top");
  const z = fig!.data[0].z as number[][];
  const first = Array.from(wts.dataSync().slice(0, 5), (v) => Math.round(v * 1e4) / 1e4);
  assert.deepEqual(z[0], first, "row 0 is query 0");
  const text = fig!.data[0].text as string[][];
  assert.ok(!text.flat().some((s) => s.includes("<s>")), "hover text escaped");
  // per-head weights: a grid with one colour scale
  const heads = tf.tidy(() => tf.softmax(tf.randomNormal([2, 3, 5, 5])));
  leakCheck("sequenceAttentionFigure heads", () => {
    fig = sequenceAttentionFigure(heads, { queryTokens: tokens, batch: 1 });
  });
  assert.equal(fig!.data.length, 3);
  assert.ok(fig!.data.every((t) => t.coloraxis === "coloraxis"));
  assert.throws(() => sequenceAttentionFigure(wts, { queryTokens: ["a"] }), /1 query labels for 5/);
  tf.dispose([wts, heads]);
});

Deno.test("affinityFigure: slider over queries, each step is that query's row, marker on the query", () => {
  const h = 3;
  const w = 4;
  // position q attends to itself: the map of query (r, c) peaks at (r, c)
  const eye = tf.tidy(() => tf.reshape(tf.add(tf.mul(tf.eye(h * w), 0.9), 0.01), [1, h * w, h * w]));
  let fig: Figure | undefined;
  leakCheck("affinityFigure", () => {
    fig = affinityFigure(eye, { size: [h, w], queries: [[0, 0], [2, 3], [1, 2]] });
  });
  const slider = (fig!.layout.sliders as {
    active: number;
    steps: { args: [Record<string, unknown>, Record<string, unknown>] }[];
  }[])[0];
  assert.equal(slider.steps.length, 3);
  for (const [k, [r, c]] of [[0, 0], [2, 3], [1, 2]].entries()) {
    const z = (slider.steps[k].args[0].z as number[][][])[0];
    assert.equal(z.length, h);
    assert.equal(z[0].length, w);
    let best = [0, 0];
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) if (z[i][j] > z[best[0]][best[1]]) best = [i, j];
    assert.deepEqual(best, [r, c], `step ${k} peaks at its query`);
  }
  assert.equal(slider.active, 2, "starts at the query nearest the centre");
  assert.throws(() => affinityFigure(eye, { size: [4, 4] }), /expected an affinity \[N,16,16\]/);
  assert.equal(queryGrid(28, 42, 64).length <= 64, true);
  eye.dispose();
});

Deno.test("mapGridFigure: one shared colour scale over all panels, each panel keeps its orientation", () => {
  const a = rampMap();
  const b = tf.tidy(() => tf.mul(rampMap(), 2));
  let fig: Figure | undefined;
  leakCheck("mapGridFigure", () => {
    fig = mapGridFigure({ a, b, c: [[5, 6, 7]] }, { columns: 2 });
  });
  const ca = fig!.layout.coloraxis as { cmin: number; cmax: number };
  assert.equal(ca.cmin, 0);
  assert.equal(ca.cmax, 48, "shared range covers every map");
  assert.ok(fig!.data.every((t) => t.coloraxis === "coloraxis"));
  assert.deepEqual(fig!.data.map((t) => [t.xaxis, t.yaxis]), [["x", "y"], ["x2", "y2"], ["x3", "y3"]]);
  for (const k of ["yaxis", "yaxis2", "yaxis3"]) {
    const y = fig!.layout[k] as { range: number[]; scaleanchor: string };
    assert.ok(y.range[0] > y.range[1], `${k} reversed`);
  }
  assert.equal((fig!.layout.yaxis2 as { scaleanchor: string }).scaleanchor, "x2");
  const r = renderFigure(fig!);
  assert.equal(r.width, fig!.layout.width);
  tf.dispose([a, b]);
});

Deno.test("trainingCurvesFigure and comparisonFigure", async () => {
  const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [2] })] });
  model.compile({ optimizer: "sgd", loss: "meanSquaredError", metrics: ["mse"] });
  const x = tf.randomNormal([8, 2], 0, 1, "float32", 1);
  const y = tf.randomNormal([8, 1], 0, 1, "float32", 2);
  const history = await model.fit(x, y, { epochs: 3, validationSplit: 0.25, verbose: 0 });
  const fig = trainingCurvesFigure(history);
  const names = fig.data.map((t) => t.name);
  assert.ok(names.includes("loss") && names.includes("val_loss"));
  const loss = fig.data.find((t) => t.name === "loss")!;
  const val = fig.data.find((t) => t.name === "val_loss")!;
  assert.equal((val.line as { dash: string }).dash, "dash");
  assert.equal((val.line as { color: string }).color, (loss.line as { color: string }).color);
  assert.deepEqual(loss.x, [1, 2, 3]);
  const cmp = comparisonFigure([{ name: "<a>", params: 10, ms: 1 }, { name: "b", params: 20, ms: 3 }]);
  assert.deepEqual(cmp.data.map((t) => t.type), ["bar", "bar"], "no MAC panel without MACs");
  assert.deepEqual((cmp.layout.yaxis as { ticktext: string[] }).ticktext, ["&lt;a&gt;", "b"]);
  renderFigure(fig);
  renderFigure(cmp);
  tf.dispose([x, y]);
  model.dispose();
});

Deno.test("criss-cross maps become dense affinities; two recurrences reach the whole map", () => {
  const [n, h, w] = [1, 3, 4];
  const att = tf.tidy(() => tf.softmax(tf.randomNormal([n, h, w, h + w], 0, 1, "float32", 9)));
  const dense = crissCrossToDense(att);
  const a = att.arraySync() as number[][][][];
  const d = dense.arraySync() as number[][][];
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const row = d[0][i * w + j];
      for (let p = 0; p < h; p++) {
        for (let q = 0; q < w; q++) {
          let want = 0;
          if (q === j) want += a[0][i][j][p]; // column key (p, j)
          if (p === i) want += a[0][i][j][h + q]; // row key (i, q)
          assert.ok(Math.abs(row[p * w + q] - want) < 1e-6, `(${i},${j}) -> (${p},${q})`);
        }
      }
    }
  }
  const two = composeAffinities([dense, dense]);
  assert.ok(two.dataSync().every((v) => v > 0), "after two recurrences every position reaches every other");
  const stacked = tf.stack([att, att], 1); // the cc layer's [N,R,H,W,H+W]
  const viaStack = toDenseAffinity(stacked)!;
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(viaStack, two))).dataSync()[0]) < 1e-6);
  const firstPass = toDenseAffinity(stacked, undefined, { passes: 1 })!;
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(firstPass, dense))).dataSync()[0]) < 1e-6);
  firstPass.dispose();
  assert.equal(toDenseAffinity(tf.zeros([1, 2, 3])), undefined);
  tf.dispose([att, dense, two, stacked, viaStack]);
});

Deno.test("countMacs counts convolutions and matrix products", async () => {
  const x = tf.ones([1, 8, 6, 4]);
  const k = tf.ones([3, 3, 4, 5]);
  const r = await countMacs(() => tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, "same"));
  assert.equal(r.macs, 8 * 6 * 5 * 3 * 3 * 4);
  assert.equal(kernelMacs("BatchMatMul", [[2, 3, 4], [2, 4, 5]], [[2, 3, 5]]), 2 * 3 * 5 * 4);
  assert.equal(kernelMacs("BatchMatMul", [[2, 4, 3], [2, 4, 5]], [[2, 3, 5]]), 2 * 3 * 5 * 4, "transposed a");
  assert.equal(kernelMacs("Sigmoid", [[2, 3]], [[2, 3]]), 0);
  tf.dispose([x, k]);
});

Deno.test("escapeLabel and base64 round trip", () => {
  assert.equal(escapeLabel("<s> & </s>"), "&lt;s&gt; &amp; &lt;/s&gt;");
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) % 256);
  for (const len of [0, 1, 2, 3, 1000]) {
    assert.deepEqual(fromBase64(toBase64(bytes.slice(0, len))), bytes.slice(0, len));
  }
  assert.equal(toBase64(new TextEncoder().encode("Man")), "TWFu");
  assert.equal(toBase64(new TextEncoder().encode("Ma")), "TWE=");
});

Deno.test("affinityOf: full, pooled-key and criss-cross maps over a query grid; affinityFigure on pooled keys", () => {
  const full = tf.softmax(tf.randomNormal([1, 12, 12]));
  const pooled = tf.softmax(tf.randomNormal([1, 24, 6])); // 4x6 queries, 2x3 keys (2x2 pooling)
  const cross = tf.softmax(tf.randomNormal([1, 3, 4, 7]));
  const bins = tf.softmax(tf.randomNormal([1, 12, 5])); // pyramid bins: no grid
  const before = tf.memory().numTensors;
  const a = affinityOf(full, [3, 4])!;
  const b = affinityOf(pooled, [4, 6])!;
  const c = affinityOf(cross, [3, 4])!;
  assert.deepEqual(a.keySize, [3, 4]);
  assert.deepEqual(b.keySize, [2, 3]);
  assert.deepEqual(c.affinity.shape, [1, 12, 12]);
  assert.equal(affinityOf(bins, [3, 4]), undefined);
  assert.equal(affinityOf(full, [4, 4]), undefined);
  const fig = affinityFigure(b.affinity, { size: [4, 6], keySize: b.keySize, queries: [[3, 5]] });
  const z = fig.data[0].z as number[][];
  assert.deepEqual([z.length, z[0].length], [2, 3], "each step is a map over the key grid");
  const shape = (fig.layout.shapes as { x0: number; x1: number; y0: number; y1: number }[])[0];
  // query (3, 5) of the 4x6 grid sits at the bottom-right of the 2x3 key grid's extent
  assert.ok(shape.x1 > 2 && shape.y1 > 1, "query circled in key-grid coordinates");
  tf.dispose([a.affinity, b.affinity, c.affinity]);
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(keyGrid([28, 42], 294), [14, 21]);
  assert.deepEqual(keyGrid([7, 5], 12), [4, 3]);
  tf.dispose([full, pooled, cross, bins]);
});

Deno.test("overlayFigure: boxes are outlined in the photo's pixels, scaled when the photo is shrunk", () => {
  const photo = tf.zeros([1, 30, 50, 3]);
  const m = rampMap();
  const box = { x0: 10, y0: 4, x1: 20, y1: 12 }; // columns 10..19, rows 4..11
  const fig = overlayFigure(photo, m, { boxes: [box], boxColor: "red" });
  const [s] = fig.layout.shapes as { type: string; x0: number; x1: number; y0: number; y1: number }[];
  assert.equal(s.type, "rect");
  assert.deepEqual([s.x0, s.x1, s.y0, s.y1], [9.5, 19.5, 3.5, 11.5], "edges between pixels, rows downwards");
  const small = overlayFigure(photo, m, { boxes: [box], maxSize: 25 }); // shrunk by 2
  const [t] = small.layout.shapes as { x0: number; x1: number; y0: number; y1: number }[];
  assert.deepEqual([t.x0, t.x1, t.y0, t.y1], [4.5, 9.5, 1.5, 5.5]);
  const grid = mapGridFigure([{ title: "a", map: m, image: photo }, {
    title: "b",
    map: m,
    image: photo,
    boxes: [box],
  }]);
  const shapes = grid.layout.shapes as { xref: string; yref: string }[];
  assert.equal(shapes.length, 1, "only the panel with a box gets one");
  assert.deepEqual([shapes[0].xref, shapes[0].yref], ["x2", "y2"], "on the second panel's axes");
  const r = renderFigure(fig);
  const mg = fig.layout.margin as { l: number; t: number };
  const zoom = (fig.layout.width! - mg.l - (fig.layout.margin as { r: number }).r) / 50;
  const edge = pixel(r, mg.l + 15 * zoom, mg.t + 4 * zoom); // the top edge (y = 3.5, the axis starts at -0.5)
  assert.ok(edge[0] > 200 && edge[1] < 80, `the red top edge is drawn in the PNG, got ${edge}`);
  tf.dispose([photo, m]);
});
