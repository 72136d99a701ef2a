/**
 * Figures of hard attention: the glimpse path of RAM (Mnih et al., "Recurrent Models of Visual
 * Attention", NeurIPS 2014) over its image, and the retina's patches at each step.
 *
 * @module
 */
import { imageFigure } from "./maps.ts";
import { combineFigures, type Figure, type Trace } from "./figure.ts";
import { heatmapFigure } from "./maps.ts";
import type { ImageInput, RgbImage } from "./data.ts";

/** Options of {@link glimpsePathFigure}. */
export interface GlimpsePathOptions {
  /** Image height and width in pixels (the retina's frame). */
  imageSize: [number, number];
  /** Patch side g of the first scale. */
  glimpseSize: number;
  /** Scales k. Default 1. */
  scales?: number;
  /** Side ratio between scales. Default 2. */
  scaleFactor?: number;
  /** Title. */
  title?: string;
  /** Batch index of the image. Default 0. */
  batch?: number;
}

const STEP_COLORS = ["#e41a1c", "#ff7f00", "#ffd92f", "#4daf4a", "#00bcd4", "#377eb8", "#984ea3", "#f781bf"];

/** The retina's centre pixel for location l in [-1, 1] on an axis of `side` pixels: floor((l + 1) / 2 * side). */
export function glimpseCentrePixel(l: number, side: number): number {
  return Math.floor(Math.fround(Math.fround(Math.fround(l + 1) * side) * 0.5));
}

/**
 * An image with RAM's glimpse path: the centres of glimpses 1..T numbered in order and joined by a
 * line, and the square of every scale of every glimpse (the pixels the retina reads, clipped to the
 * image), coloured by step. `locations` are (x, y) in [-1, 1] per glimpse ((-1, -1) the top-left corner, as the
 * retina), e.g. one row of RAM's `locations` map [N, T, 2]. Pixel (r, c) is centred at x = c,
 * y = r, row 0 at the top.
 *
 * @example
 * ```ts
 * import { glimpsePathFigure } from "./glimpse.ts";
 * const img = { width: 60, height: 60, data: new Uint8Array(60 * 60 * 3) };
 * const fig = glimpsePathFigure(img, [[0, 0], [0.3, -0.2]], { imageSize: [60, 60], glimpseSize: 12, scales: 3 });
 * ```
 */
export function glimpsePathFigure(
  image: ImageInput,
  locations: ArrayLike<ArrayLike<number>>,
  opts: GlimpsePathOptions,
): Figure {
  const [h, w] = opts.imageSize;
  const fig = imageFigure(image, { title: opts.title, maxSize: Math.max(h, w, 320), batch: opts.batch });
  const k = opts.scales ?? 1;
  const s = opts.scaleFactor ?? 2;
  const xs: number[] = [], ys: number[] = [], text: string[] = [], colors: string[] = [];
  const shapes: Record<string, unknown>[] = [];
  for (let t = 0; t < locations.length; t++) {
    const cx = glimpseCentrePixel(locations[t][0], w);
    const cy = glimpseCentrePixel(locations[t][1], h);
    const color = STEP_COLORS[t % STEP_COLORS.length];
    xs.push(cx);
    ys.push(cy);
    text.push(String(t + 1));
    colors.push(color);
    let side = opts.glimpseSize;
    for (let i = 0; i < k; i++) {
      const x0 = cx - Math.floor(side / 2), y0 = cy - Math.floor(side / 2);
      shapes.push({
        type: "rect",
        xref: "x",
        yref: "y",
        // clipped to the image: outside it the retina reads zero padding
        x0: Math.max(-0.5, x0 - 0.5),
        x1: Math.min(w - 0.5, x0 + side - 0.5),
        y0: Math.max(-0.5, y0 - 0.5),
        y1: Math.min(h - 0.5, y0 + side - 0.5),
        line: { color, width: i === 0 ? 2 : 1, dash: i === 0 ? "solid" : "dot" },
      });
      side = Math.floor(side * s);
    }
  }
  const path: Trace = {
    type: "scatter",
    mode: "lines+markers+text",
    x: xs,
    y: ys,
    text,
    textposition: "top right",
    textfont: { color: "yellow", size: 13 },
    marker: { color: colors, size: 9, line: { color: "black", width: 1 } },
    line: { color: "white", width: 1 },
    hovertemplate: "glimpse %{text}: col %{x}, row %{y}<extra></extra>",
    showlegend: false,
  };
  fig.data.push(path);
  fig.layout.shapes = shapes;
  return fig;
}

/**
 * The retina's patches: one column per glimpse, one row per scale (finest on top; each patch
 * block-averaged to g x g, row 0 at the top). `patches` [T][k] of g x g matrices (row-major rows),
 * e.g. from {@link glimpseSensorHost} at each glimpse location.
 */
export function glimpsePatchesFigure(
  patches: number[][][][],
  opts: { title?: string; panelSize?: number } = {},
): Figure {
  if (patches.length === 0) throw new Error("glimpsePatchesFigure: expected at least one glimpse");
  const k = patches[0].length;
  const panels = Array.from({ length: k }, (_, i) =>
    patches.map((row, t) =>
      heatmapFigure(row[i], {
        title: `t${t + 1} s${i + 1}`,
        colorscale: "greys",
        zmin: 0,
        zmax: 1,
        showScale: false,
        size: opts.panelSize ?? 80,
      })
    )).flat();
  return combineFigures(panels, { columns: patches.length, title: opts.title });
}

/** Grey pixels (0..255, or 0..1 when `unit`), `height * width` row-major, as an RGB image for the figure builders. */
export function greyToRgb(pixels: ArrayLike<number>, height: number, width: number, unit = false): RgbImage {
  if (pixels.length !== height * width) {
    throw new Error(`greyToRgb: expected ${height * width} pixels for ${height}x${width}, got ${pixels.length}`);
  }
  const data = new Uint8Array(height * width * 3);
  for (let i = 0; i < height * width; i++) {
    const v = Math.max(0, Math.min(255, Math.round(unit ? pixels[i] * 255 : pixels[i])));
    data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = v;
  }
  return { width, height, data };
}
