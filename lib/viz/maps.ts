/**
 * Figures of attention maps: a heatmap of one map, a spatial map over its photo, channel weights
 * as bars, one query position's affinity with a slider over queries, a grid of maps with a shared
 * colour scale, and everything one capture holds.
 *
 * Maps keep their aspect ratio and their orientation: row 0 of a map is drawn at the top, as in
 * the photo it came from, and cells are square.
 *
 * @module
 */
import { encodePng } from "../data/image.ts";
import type { Box } from "../data/digits.ts";
import { fmtShape } from "../checks.ts";
import { toBase64 } from "./base64.ts";
import { type ColorScale, colorScale, type ColorScaleName } from "./colormaps.ts";
import {
  extent,
  type ImageInput,
  type MapInput,
  type Matrix,
  type PickOptions,
  resizeMatrix,
  type RgbImage,
  shrinkImage,
  toMatrix,
  toRgbImage,
  toVector,
} from "./data.ts";
import {
  combineFigures,
  escapeLabel,
  type Figure,
  FIGURE_CONFIG,
  fitSize,
  imageAxes,
  roundValue,
  toRows,
  type Trace,
} from "./figure.ts";
import type { Tensor } from "../types.ts";

/** Options shared by the map figures. */
export interface MapFigureOptions extends PickOptions {
  /** Figure title. */
  title?: string;
  /** Colour scale name or stops (default "viridis"; overlays default to "jet"). */
  colorscale?: ColorScaleName | ColorScale;
  /** Lower end of the colour scale (default: the map's minimum). */
  zmin?: number;
  /** Upper end of the colour scale (default: the map's maximum). */
  zmax?: number;
  /** Pixels of the plot's long side (default 360). */
  size?: number;
  /** Show the colour bar (default true). */
  showScale?: boolean;
  /** Use the layout's shared colour axis `coloraxis` instead of the trace's own scale (for grids). */
  sharedScale?: boolean;
  /**
   * `"equal"` (default): square cells, the map's aspect ratio, as for an image. `"fill"`: a square
   * plot whatever the shape, for matrices whose rows and columns are different things (an affinity
   * from HW positions to K pooled keys).
   */
  aspect?: "equal" | "fill";
}

const COLORBAR_ROOM = 80;

/**
 * A heatmap of one 2-D map (`[H,W]`, `[N,H,W]` or NHWC `[N,H,W,C]`, see {@link toMatrix}):
 * square cells, row 0 at the top, hover shows (row, col) and the value.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { heatmapFigure } from "./maps.ts";
 * const fig = heatmapFigure(tf.randomUniform([1, 6, 9, 1]), { title: "spatial" });
 * fig.data[0].type; // "heatmap"
 * ```
 */
export function heatmapFigure(map: MapInput, opts: MapFigureOptions = {}): Figure {
  const m = toMatrix(map, opts);
  const [lo, hi] = extent(m.values);
  const fill = opts.aspect === "fill";
  const { w, h } = fill ? fitSize(1, 1, opts.size ?? 360, Infinity) : fitSize(m.rows, m.cols, opts.size ?? 360);
  const showScale = opts.showScale ?? true;
  const margin = {
    l: fill ? 50 : 20,
    r: showScale && !opts.sharedScale ? COLORBAR_ROOM : 20,
    t: opts.title ? 40 : 20,
    b: fill ? 35 : 20,
  };
  const trace: Trace = {
    type: "heatmap",
    z: toRows(m.values, m.rows, m.cols),
    x0: 0,
    dx: 1,
    y0: 0,
    dy: 1,
    hovertemplate: "row %{y}, col %{x}<br>%{z:.4f}<extra></extra>",
  };
  if (opts.sharedScale) {
    trace.coloraxis = "coloraxis";
  } else {
    Object.assign(trace, {
      colorscale: colorScale(opts.colorscale ?? "viridis"),
      zmin: roundValue(opts.zmin ?? lo, 6),
      zmax: roundValue(opts.zmax ?? hi, 6),
      showscale: showScale,
      colorbar: { thickness: 14, len: 1, outlinewidth: 0 },
    });
  }
  return {
    data: [trace],
    layout: {
      width: margin.l + w + margin.r,
      height: margin.t + h + margin.b,
      margin,
      ...(opts.title
        ? { title: { text: escapeLabel(opts.title), x: 0.5, xanchor: "center", font: { size: 14 } } }
        : {}),
      ...(fill ? fillAxes(m.rows, m.cols) : imageAxes(m.rows, m.cols)),
      plot_bgcolor: "white",
      paper_bgcolor: "white",
    },
    config: { ...FIGURE_CONFIG },
  };
}

/** Axes for a matrix that fills its plot: row 0 at the top, cells not square. */
function fillAxes(rows: number, cols: number): { xaxis: Record<string, unknown>; yaxis: Record<string, unknown> } {
  const { xaxis, yaxis } = imageAxes(rows, cols);
  delete yaxis.scaleanchor;
  delete yaxis.scaleratio;
  return {
    xaxis: { ...xaxis, showticklabels: true, ticks: "outside" },
    yaxis: { ...yaxis, showticklabels: true, ticks: "outside" },
  };
}

/** Options of {@link overlayFigure}. */
export interface OverlayOptions extends MapFigureOptions {
  /** Opacity of the map over the photo, 0..1 (default 0.5). */
  opacity?: number;
  /** Longest side of the displayed photo in pixels; larger photos are shrunk (default 320). */
  maxSize?: number;
  /** Smaller photos are drawn enlarged (whole pixels) to about this long side (default 200). */
  minSize?: number;
  /** Add an opacity slider and a colour-scale menu (default true). */
  controls?: boolean;
  /** Batch index of the image when it is a batch tensor (default: `batch`). */
  imageBatch?: number;
  /**
   * Upsample the map to the photo's pixels in the spec (default true). False keeps the map's own
   * cells, stretched over the photo and smoothed by Plotly (`zsmooth: "best"`): a much smaller
   * spec for pages with many figures.
   */
  upsample?: boolean;
  /**
   * Boxes to outline on the photo, in its pixels: half-open `{ x0, y0, x1, y1 }` (columns x0..x1-1,
   * rows y0..y1-1), for example the true digit boxes of a localisation test.
   */
  boxes?: Box[];
  /** Outline colour of `boxes` (default white). */
  boxColor?: string;
}

/** Plotly rectangles around half-open pixel boxes (pixel centres are whole numbers). */
function boxShapes(boxes: Box[], color: string): Record<string, unknown>[] {
  return boxes.map((b) => ({
    type: "rect",
    x0: roundValue(b.x0 - 0.5, 3),
    x1: roundValue(b.x1 - 0.5, 3),
    y0: roundValue(b.y0 - 0.5, 3),
    y1: roundValue(b.y1 - 0.5, 3),
    line: { color, width: 2 },
  }));
}

/** Whole-number enlargement that brings a small photo's long side near `minSize` (1 for large ones). */
function displayZoom(img: RgbImage, minSize: number): number {
  return Math.max(1, Math.floor(minSize / Math.max(img.width, img.height)));
}

/** PNG data URI of RGB pixels (what Plotly's `image` trace takes as `source`). */
export function imageSource(img: RgbImage): string {
  return `data:image/png;base64,${toBase64(encodePng(img.data, img.width, img.height, 3))}`;
}

/** A Plotly `image` trace of a photo, pixel (r, c) centred at x = c, y = r. */
export function imageTrace(img: RgbImage): Trace {
  return { type: "image", source: imageSource(img), x0: 0, dx: 1, y0: 0, dy: 1, hoverinfo: "skip" };
}

/**
 * A spatial map over its photo: the map is upsampled to the displayed photo (bilinear,
 * half-pixel centres, as `F.interpolate(align_corners=False)`) and drawn over it with adjustable
 * opacity; an opacity slider and a colour-scale menu change both in the browser.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { overlayFigure } from "./maps.ts";
 * const photo = tf.randomUniform([1, 48, 64, 3]);
 * const fig = overlayFigure(photo, tf.randomUniform([1, 6, 8, 1]), { opacity: 0.4 });
 * fig.data.map((t) => t.type); // ["image", "heatmap"]
 * ```
 */
export function overlayFigure(image: ImageInput, map: MapInput, opts: OverlayOptions = {}): Figure {
  const full = toRgbImage(image, opts.imageBatch ?? opts.batch ?? 0);
  const img = shrinkImage(full, opts.maxSize ?? 320);
  const zoom = displayZoom(img, opts.minSize ?? Math.min(200, opts.maxSize ?? 320));
  const m = toMatrix(map, opts);
  // boxes are in the full photo's pixels; the displayed photo may be shrunk
  const fx = img.width / full.width;
  const fy = img.height / full.height;
  const boxes = (opts.boxes ?? []).map((b) => ({ x0: b.x0 * fx, x1: b.x1 * fx, y0: b.y0 * fy, y1: b.y1 * fy }));
  const upsample = opts.upsample ?? true;
  const up = upsample ? resizeMatrix(m, img.height, img.width) : m;
  const [lo, hi] = extent(m.values);
  const opacity = opts.opacity ?? 0.5;
  if (!(opacity >= 0 && opacity <= 1)) throw new Error(`overlayFigure: opacity must be in [0, 1], got ${opacity}`);
  const controls = opts.controls ?? true;
  const showScale = opts.showScale ?? true;
  const scale = colorScale(opts.colorscale ?? "jet");
  const sx = img.width / up.cols;
  const sy = img.height / up.rows;
  const heat: Trace = {
    type: "heatmap",
    z: toRows(up.values, up.rows, up.cols, 3),
    x0: (sx - 1) / 2,
    dx: sx,
    y0: (sy - 1) / 2,
    dy: sy,
    ...(upsample ? {} : { zsmooth: "best" }),
    opacity,
    hovertemplate: `map %{z:.3f}<br>photo (%{y}, %{x})<extra></extra>`,
  };
  if (opts.sharedScale) {
    heat.coloraxis = "coloraxis";
  } else {
    Object.assign(heat, {
      colorscale: scale,
      zmin: roundValue(opts.zmin ?? lo, 6),
      zmax: roundValue(opts.zmax ?? hi, 6),
      showscale: showScale,
      colorbar: { thickness: 14, len: 1, outlinewidth: 0 },
    });
  }
  const margin = {
    l: 20,
    r: showScale && !opts.sharedScale ? COLORBAR_ROOM : 20,
    t: opts.title ? 40 : 20,
    b: controls ? 115 : 20,
  };
  const layout: Figure["layout"] = {
    width: margin.l + Math.round(img.width * zoom) + margin.r,
    height: margin.t + Math.round(img.height * zoom) + margin.b,
    margin,
    ...(opts.title ? { title: { text: escapeLabel(opts.title), x: 0.5, xanchor: "center", font: { size: 14 } } } : {}),
    ...imageAxes(img.height, img.width),
    plot_bgcolor: "white",
    paper_bgcolor: "white",
    ...(boxes.length ? { shapes: boxShapes(boxes, opts.boxColor ?? "white") } : {}),
  };
  if (controls) {
    const steps = Array.from({ length: 11 }, (_, i) => i / 10).map((o) => ({
      method: "restyle",
      label: o.toFixed(1),
      args: [{ opacity: o }, [1]],
    }));
    layout.sliders = [{
      active: Math.round(opacity * 10),
      steps,
      currentvalue: { prefix: "opacity ", font: { size: 11 } },
      pad: { t: 30 },
      len: opts.sharedScale ? 1 : 0.7,
      x: 0,
      y: 0,
      yanchor: "top",
    }];
    if (!opts.sharedScale) {
      layout.updatemenus = [{
        type: "dropdown",
        direction: "down",
        x: 1,
        xanchor: "right",
        y: 0,
        yanchor: "top",
        showactive: true,
        pad: { r: 0, t: 50 },
        font: { size: 10 },
        buttons: (["jet", "viridis", "inferno", "hot", "greys"] as const).map((name) => ({
          method: "restyle",
          label: name,
          args: [{ colorscale: [colorScale(name)] }, [1]],
        })),
      }];
    }
  }
  return { data: [imageTrace(img), heat], layout, config: { ...FIGURE_CONFIG } };
}

/**
 * A photo on its own (row 0 at the top, square pixels), shrunk so that its long side is at most
 * `maxSize` (default 320).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { imageFigure } from "./maps.ts";
 * const fig = imageFigure(tf.randomUniform([1, 30, 40, 3]), { title: "noise" });
 * fig.data[0].type; // "image"
 * ```
 */
export function imageFigure(
  image: ImageInput,
  opts: { title?: string; maxSize?: number; batch?: number } = {},
): Figure {
  const img = shrinkImage(toRgbImage(image, opts.batch ?? 0), opts.maxSize ?? 320);
  const zoom = displayZoom(img, Math.min(200, opts.maxSize ?? 320));
  const margin = { l: 10, r: 10, t: opts.title ? 40 : 10, b: 10 };
  return {
    data: [imageTrace(img)],
    layout: {
      width: margin.l + Math.round(img.width * zoom) + margin.r,
      height: margin.t + Math.round(img.height * zoom) + margin.b,
      margin,
      ...(opts.title
        ? { title: { text: escapeLabel(opts.title), x: 0.5, xanchor: "center", font: { size: 14 } } }
        : {}),
      ...imageAxes(img.height, img.width),
      plot_bgcolor: "white",
      paper_bgcolor: "white",
    },
    config: { ...FIGURE_CONFIG },
  };
}

/** Options of {@link channelBarsFigure}. */
export interface ChannelBarsOptions {
  /** Figure title. */
  title?: string;
  /** How many of the largest weights to show (default 16; `Infinity` for all). */
  topK?: number;
  /** Batch index (default 0). */
  batch?: number;
  /** Channel names (default `c0`, `c1`, ...); repeated names stay separate bars. */
  labels?: string[];
  /** Bar colour (default Plotly blue). */
  color?: string;
  /** Width of the figure in pixels (default: 28 px a bar, at least 320). */
  width?: number;
}

/**
 * Channel weights (`channel` maps [N,1,1,C], or [N,C], [C]) as bars, the top `topK` sorted from
 * the largest, each labelled with its channel.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { channelBarsFigure } from "./maps.ts";
 * const fig = channelBarsFigure(tf.randomUniform([2, 1, 1, 64]), { topK: 10 });
 * (fig.data[0].y as number[]).length; // 10
 * ```
 */
export function channelBarsFigure(weights: Tensor | number[], opts: ChannelBarsOptions = {}): Figure {
  const v = toVector(weights, opts.batch ?? 0);
  const topK = Math.max(1, Math.min(v.length, opts.topK ?? 16));
  if (opts.labels && opts.labels.length !== v.length) {
    throw new Error(`channelBarsFigure: ${opts.labels.length} labels for ${v.length} channels`);
  }
  const order = Array.from(v.keys()).sort((a, b) => v[b] - v[a] || a - b).slice(0, topK);
  const names = order.map((i) => opts.labels ? opts.labels[i] : `c${i}`);
  const width = opts.width ?? Math.max(320, 70 + 28 * topK);
  const margin = { l: 50, r: 20, t: opts.title ? 40 : 20, b: 60 };
  return {
    data: [{
      type: "bar",
      x: order.map((_, k) => k),
      y: order.map((i) => roundValue(v[i], 5)),
      text: names.map((n, k) => `${escapeLabel(n)}: ${roundValue(v[order[k]], 4)}`),
      hovertemplate: "%{text}<extra></extra>",
      textposition: "none",
      marker: { color: opts.color ?? "#1f77b4" },
    }],
    layout: {
      width,
      height: 300,
      margin,
      ...(opts.title
        ? { title: { text: escapeLabel(opts.title), x: 0.5, xanchor: "center", font: { size: 14 } } }
        : {}),
      xaxis: {
        tickmode: "array",
        tickvals: order.map((_, k) => k),
        ticktext: names.map(escapeLabel),
        tickangle: (width - margin.l - margin.r) / topK < 36 ? -60 : 0,
        range: [-0.5, topK - 0.5],
        title: { text: topK < v.length ? `top ${topK} of ${v.length} channels` : `${v.length} channels` },
      },
      yaxis: { title: { text: "weight" }, zeroline: true, rangemode: "tozero" },
      plot_bgcolor: "white",
      paper_bgcolor: "white",
      bargap: 0.2,
    },
    config: { ...FIGURE_CONFIG },
  };
}

/** Options of {@link affinityFigure}. */
export interface AffinityOptions {
  /** Spatial size [H, W] of the map the HW positions come from (row-major: position = r * W + c). */
  size: [number, number];
  /**
   * Grid [Hk, Wk] of the key positions when keys are pooled (a non-local block that max-pools its
   * keys 2x2 has [ceil(H/2), ceil(W/2)]); default `size`. Both grids cover the same image.
   */
  keySize?: [number, number];
  /** Batch index (default 0). */
  batch?: number;
  /** Query positions [row, col] on the slider (default: an even grid of at most `maxQueries`). */
  queries?: [number, number][];
  /** Most query positions on the default grid (default 64). */
  maxQueries?: number;
  /** Query shown first (default: the one nearest the centre). */
  query?: [number, number];
  /** Photo under the maps (optional); the map cells are stretched over it. */
  image?: ImageInput;
  /** Opacity of the map over the photo (default 0.6). */
  opacity?: number;
  /** Figure title. */
  title?: string;
  /** Colour scale (default "inferno"). */
  colorscale?: ColorScaleName | ColorScale;
  /** Longest side of the plot in pixels (default 360). */
  maxSize?: number;
  /**
   * Top of each query's colour range as a quantile of its weights (default 1, the maximum). Below
   * 1 the few largest weights saturate and the spread of the rest shows (the reach of a
   * criss-cross after two passes, say).
   */
  clip?: number;
}

/** An even grid of at most `n` positions over an h x w map, centred in their cells. */
export function queryGrid(h: number, w: number, n = 64): [number, number][] {
  const qr = Math.max(1, Math.min(h, Math.round(Math.sqrt((n * h) / w))));
  const qc = Math.max(1, Math.min(w, Math.floor(n / qr)));
  const out: [number, number][] = [];
  for (let i = 0; i < qr; i++) {
    for (let j = 0; j < qc; j++) out.push([Math.floor(((i + 0.5) * h) / qr), Math.floor(((j + 0.5) * w) / qc)]);
  }
  return out;
}

/**
 * The affinity of one query position as a map over the image, with a slider over query
 * positions. `affinity` is `[N,HW,HW]` (or `[HW,HW]`): row q holds what position q attends to,
 * positions numbered row-major over `size` = [H, W]. The query is marked with a circle.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { affinityFigure } from "./maps.ts";
 * const a = tf.softmax(tf.randomNormal([1, 12, 12]));
 * const fig = affinityFigure(a, { size: [3, 4] });
 * (fig.layout.sliders as unknown[]).length; // 1
 * ```
 */
export function affinityFigure(affinity: Tensor | Matrix, opts: AffinityOptions): Figure {
  const [h, w] = opts.size;
  const [kh, kw] = opts.keySize ?? opts.size;
  const all = toMatrix(affinity as MapInput, { batch: opts.batch ?? 0 });
  if (all.rows !== h * w || all.cols !== kh * kw) {
    const shape = "shape" in affinity ? fmtShape(affinity.shape) : `${all.rows}x${all.cols}`;
    throw new Error(
      `affinityFigure: expected an affinity [N,${h * w},${kh * kw}] for size [${h},${w}]` +
        `${opts.keySize ? ` and key size [${kh},${kw}]` : ""}, got ${shape}`,
    );
  }
  const k = kh * kw;
  const queries = opts.queries ?? queryGrid(h, w, opts.maxQueries ?? 64);
  for (const [r, c] of queries) {
    if (!(r >= 0 && r < h && c >= 0 && c < w)) throw new Error(`affinityFigure: query (${r}, ${c}) outside ${h}x${w}`);
  }
  const first = opts.query ?? [Math.floor(h / 2), Math.floor(w / 2)];
  let active = 0;
  queries.forEach(([r, c], i) => {
    const [ar, ac] = queries[active];
    if ((r - first[0]) ** 2 + (c - first[1]) ** 2 < (ar - first[0]) ** 2 + (ac - first[1]) ** 2) active = i;
  });
  const img = opts.image ? shrinkImage(toRgbImage(opts.image), opts.maxSize ?? 360) : undefined;
  // Key cells are placed in photo pixel coordinates when there is a photo, else in key-cell units;
  // the query (a cell of the query grid) is circled at the same place of the image.
  const sy = img ? img.height / kh : 1;
  const sx = img ? img.width / kw : 1;
  const qy = img ? img.height / h : kh / h;
  const qx = img ? img.width / w : kw / w;
  const rowOf = (q: number): number[][] => toRows(all.values.subarray(q * k, (q + 1) * k), kh, kw, 5);
  const circle = ([r, c]: [number, number]) => ({
    type: "circle",
    xref: "x",
    yref: "y",
    x0: (c + 0.5) * qx - 0.5 - 0.45 * qx,
    x1: (c + 0.5) * qx - 0.5 + 0.45 * qx,
    y0: (r + 0.5) * qy - 0.5 - 0.45 * qy,
    y1: (r + 0.5) * qy - 0.5 + 0.45 * qy,
    line: { color: "#00e5ff", width: 2 },
  });
  const clip = opts.clip ?? 1;
  if (!(clip > 0 && clip <= 1)) throw new Error(`affinityFigure: clip must be in (0, 1], got ${clip}`);
  const rangeOf = (q: number): [number, number] => {
    const row = all.values.subarray(q * k, (q + 1) * k);
    const [lo, hi] = extent(row);
    if (clip === 1) return [lo, hi];
    const sorted = Float32Array.from(row).sort();
    const top = sorted[Math.min(sorted.length - 1, Math.floor(clip * (sorted.length - 1)))];
    return [lo, top > lo ? top : hi];
  };
  const [q0r, q0c] = queries[active];
  const [lo0, hi0] = rangeOf(q0r * w + q0c);
  const heat: Trace = {
    type: "heatmap",
    z: rowOf(q0r * w + q0c),
    x0: (sx - 1) / 2,
    dx: sx,
    y0: (sy - 1) / 2,
    dy: sy,
    zmin: roundValue(lo0, 6),
    zmax: roundValue(hi0, 6),
    colorscale: colorScale(opts.colorscale ?? "inferno"),
    colorbar: { thickness: 14, len: 1, outlinewidth: 0, title: { text: "weight", side: "right" } },
    hovertemplate: "key (%{y}, %{x})<br>%{z:.4f}<extra></extra>",
    ...(img ? { opacity: opts.opacity ?? 0.6, hovertemplate: "%{z:.4f}<extra></extra>" } : {}),
  };
  const rows = img ? img.height : kh;
  const cols = img ? img.width : kw;
  const zoom = img ? displayZoom(img, 200) : 1;
  const { w: pw, h: ph } = img
    ? { w: Math.round(img.width * zoom), h: Math.round(img.height * zoom) }
    : fitSize(kh, kw, opts.maxSize ?? 360);
  const margin = { l: 20, r: COLORBAR_ROOM + 40, t: 40, b: 115 };
  const title = opts.title ?? "affinity of one query";
  const steps = queries.map(([r, c]) => {
    const [lo, hi] = rangeOf(r * w + c);
    return {
      method: "update",
      label: `(${r}, ${c})`,
      args: [
        { z: [rowOf(r * w + c)], zmin: [roundValue(lo, 6)], zmax: [roundValue(hi, 6)] },
        { shapes: [circle([r, c])], "title.text": `${escapeLabel(title)}: query (${r}, ${c})` },
        [img ? 1 : 0],
      ],
    };
  });
  return {
    data: img ? [imageTrace(img), heat] : [heat],
    layout: {
      width: margin.l + pw + margin.r,
      height: margin.t + ph + margin.b,
      margin,
      title: { text: `${escapeLabel(title)}: query (${q0r}, ${q0c})`, x: 0.5, xanchor: "center", font: { size: 14 } },
      ...imageAxes(rows, cols),
      shapes: [circle([q0r, q0c])],
      sliders: [{
        active,
        steps,
        currentvalue: { prefix: "query (row, col) ", font: { size: 11, color: "#444" } },
        font: { color: "rgba(0,0,0,0)" }, // many steps: only the current one is labelled
        pad: { t: 30 },
        len: 1,
        x: 0,
        y: 0,
        yanchor: "top",
      }],
      plot_bgcolor: "white",
      paper_bgcolor: "white",
    },
    config: { ...FIGURE_CONFIG },
  };
}

/** One panel of {@link mapGridFigure}. */
export interface GridItem {
  /** Panel title. */
  title: string;
  /** The map. */
  map: MapInput;
  /** A photo to draw it over (optional). */
  image?: ImageInput;
  /** Boxes to outline on the photo (see {@link OverlayOptions.boxes}). */
  boxes?: Box[];
}

/** Options of {@link mapGridFigure}. */
export interface MapGridOptions extends PickOptions {
  /** Figure title. */
  title?: string;
  /** Columns (default 4). */
  columns?: number;
  /** Colour scale (default "viridis", "jet" over photos). */
  colorscale?: ColorScaleName | ColorScale;
  /** One colour scale for every panel (default true); false gives each panel its own range. */
  shared?: boolean;
  /** Lower end of the shared scale (default: the smallest value of all maps). */
  zmin?: number;
  /** Upper end of the shared scale (default: the largest value). */
  zmax?: number;
  /** Long side of one panel in pixels (default 200). */
  panelSize?: number;
  /** Opacity over photos (default 0.5). */
  opacity?: number;
  /** Upsample maps to the photos in the spec (default true); see {@link OverlayOptions.upsample}. */
  upsample?: boolean;
}

/**
 * Many maps on one grid with one shared colour scale (so that brighter means more attention in
 * every panel). Items are `{ title, map, image? }`, or a record from title to map.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { mapGridFigure } from "./maps.ts";
 * const fig = mapGridFigure({ a: tf.randomUniform([5, 7]), b: tf.randomUniform([5, 7]) }, { columns: 2 });
 * fig.data.length; // 2
 * ```
 */
export function mapGridFigure(items: GridItem[] | Record<string, MapInput>, opts: MapGridOptions = {}): Figure {
  const list: GridItem[] = Array.isArray(items) ? items : Object.entries(items).map(([title, map]) => ({ title, map }));
  if (list.length === 0) throw new Error("mapGridFigure: expected at least one map");
  const matrices = list.map((it) => toMatrix(it.map, opts));
  const shared = opts.shared ?? true;
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of matrices) {
    const [a, b] = extent(m.values);
    lo = Math.min(lo, a);
    hi = Math.max(hi, b);
  }
  const anyImage = list.some((it) => it.image);
  const scale = colorScale(opts.colorscale ?? (anyImage ? "jet" : "viridis"));
  const size = opts.panelSize ?? 200;
  const panels = list.map((it, k) => {
    const common = { title: it.title, colorscale: scale, sharedScale: shared, showScale: !shared };
    return it.image
      ? overlayFigure(it.image, matrices[k], {
        ...common,
        maxSize: size,
        controls: false,
        opacity: opts.opacity,
        upsample: opts.upsample,
        boxes: it.boxes,
      })
      : heatmapFigure(matrices[k], { ...common, size });
  });
  if (shared) {
    panels[0].layout.coloraxis = {
      colorscale: scale,
      cmin: roundValue(opts.zmin ?? lo, 6),
      cmax: roundValue(opts.zmax ?? hi, 6),
      colorbar: { thickness: 14, len: 0.9, outlinewidth: 0 },
    };
  }
  return combineFigures(panels, { columns: opts.columns ?? 4, title: opts.title });
}

/** Options of {@link captureFigure}. */
export interface CaptureFigureOptions {
  /** Batch index (default 0). */
  batch?: number;
  /** The photo the captured model saw: spatial maps are drawn over it. */
  image?: ImageInput;
  /** Channel bars: how many of the largest weights (default 12). */
  topK?: number;
  /** Which maps to draw (default all): a predicate on (layer name, map name). */
  include?: (layer: string, map: string) => boolean;
  /** Columns (default 3). */
  columns?: number;
  /** Figure title. */
  title?: string;
  /** Long side of one panel in pixels (default 220). */
  panelSize?: number;
}

/** Largest side of an affinity matrix drawn whole; larger ones are block-averaged. */
const MAX_AFFINITY_SIDE = 160;

/**
 * One figure of everything a capture holds (`captureAttention(...).maps`, layer -> map name ->
 * tensor): spatial maps [N,H,W,1] as heatmaps (over the photo when given), channel maps
 * [N,1,1,C] as top-k bars, affinities [N,HW,HW] as matrices (block-averaged when large); maps of
 * other shapes are listed in the title. Each panel keeps its own scale.
 */
export function captureFigure(
  maps: Record<string, Record<string, Tensor>>,
  opts: CaptureFigureOptions = {},
): Figure {
  const batch = opts.batch ?? 0;
  const size = opts.panelSize ?? 220;
  const panels: Figure[] = [];
  const skipped: string[] = [];
  const oneLayer = Object.keys(maps).length === 1; // then the panels need not name it
  for (const [layer, layerMaps] of Object.entries(maps)) {
    for (const [name, t] of Object.entries(layerMaps)) {
      if (opts.include && !opts.include(layer, name)) continue;
      const label = `${oneLayer ? "" : `${layer} · `}${name} ${fmtShape(t.shape)}`;
      const s = t.shape as number[];
      if (t.rank === 4 && s[1] === 1 && s[2] === 1) {
        panels.push(channelBarsFigure(t, { batch, topK: opts.topK ?? 12, title: label, width: size + 40 }));
      } else if (t.rank === 2 && s[0] > batch) {
        panels.push(channelBarsFigure(t, { batch, topK: opts.topK ?? 12, title: label, width: size + 40 }));
      } else if (t.rank === 4) {
        const m = toMatrix(t, { batch, channel: s[3] === 1 ? 0 : "mean" });
        const title = s[3] === 1 ? label : `${label} (mean of ${s[3]})`;
        panels.push(
          opts.image
            ? overlayFigure(opts.image, m, { title, maxSize: size, controls: false, showScale: false })
            : heatmapFigure(m, { title, size, showScale: false }),
        );
      } else if (t.rank === 3) {
        panels.push(heatmapFigure(blockAverage(toMatrix(t, { batch }), MAX_AFFINITY_SIDE), {
          title: s[1] > MAX_AFFINITY_SIDE || s[2] > MAX_AFFINITY_SIDE ? `${label} (block mean)` : label,
          size,
          showScale: false,
          aspect: s[1] === s[2] ? "equal" : "fill",
        }));
      } else {
        skipped.push(label);
      }
    }
  }
  let title = opts.title ?? "";
  if (skipped.length) title += `${title ? " · " : ""}not drawn: ${skipped.join(", ")}`;
  if (panels.length === 0) {
    return {
      data: [],
      layout: {
        width: 480,
        height: 120,
        title: { text: escapeLabel(title || "no attention maps captured") },
        xaxis: { visible: false },
        yaxis: { visible: false },
      },
      config: { ...FIGURE_CONFIG },
    };
  }
  return combineFigures(panels, { columns: opts.columns ?? 3, title: title || undefined });
}

/** Averages `k x k` blocks so that neither side exceeds `maxSide`. */
export function blockAverage(m: Matrix, maxSide: number): Matrix {
  const k = Math.ceil(Math.max(m.rows, m.cols) / maxSide);
  if (k <= 1) return m;
  const rows = Math.ceil(m.rows / k);
  const cols = Math.ceil(m.cols / k);
  const sum = new Float32Array(rows * cols);
  const count = new Float32Array(rows * cols);
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) {
      const o = Math.floor(r / k) * cols + Math.floor(c / k);
      sum[o] += m.values[r * m.cols + c];
      count[o]++;
    }
  }
  return { rows, cols, values: sum.map((s, i) => s / count[i]) };
}
