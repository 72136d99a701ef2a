/**
 * A photo with rectangles drawn over it: the crops an attention proposal network picks (RA-CNN,
 * Fu et al., CVPR 2017), ground-truth boxes, glimpses.
 *
 * @module
 */
import { escapeLabel, type Figure } from "./figure.ts";
import type { ImageInput } from "./data.ts";
import { imageFigure } from "./maps.ts";

/** One rectangle in pixel coordinates of the image: columns `x0..x1`, rows `y0..y1` (edges, half-open boxes). */
export interface FigureBox {
  /** Left edge. */
  x0: number;
  /** Top edge. */
  y0: number;
  /** Right edge. */
  x1: number;
  /** Bottom edge. */
  y1: number;
  /** Line colour (CSS). Default "red". */
  color?: string;
  /** Dashed line. Default false. */
  dash?: boolean;
  /** Text shown on hover over the box's corner (escaped). */
  label?: string;
}

/**
 * A photo (see `imageFigure`) with rectangles over it; pixel (r, c) is centred at x = c, y = r, so
 * a box edge at column `x0` is drawn at x = x0 - 0.5.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { initBackend } from "../runtime/backend.ts";
 * await initBackend({ quiet: true });
 * import { boxesFigure } from "./boxes.ts";
 * const fig = boxesFigure(tf.zeros([1, 60, 60, 3]), [{ x0: 10, y0: 12, x1: 30, y1: 32, label: "crop" }]);
 * fig.layout.shapes; // one rectangle
 * ```
 */
export function boxesFigure(
  image: ImageInput,
  boxes: FigureBox[],
  opts: { title?: string; maxSize?: number; batch?: number } = {},
): Figure {
  for (const b of boxes) {
    if (![b.x0, b.y0, b.x1, b.y1].every(Number.isFinite) || b.x1 < b.x0 || b.y1 < b.y0) {
      throw new Error(`boxesFigure: expected finite boxes with x0 <= x1 and y0 <= y1, got ${JSON.stringify(b)}`);
    }
  }
  const fig = imageFigure(image, opts);
  // the displayed image may have been shrunk: boxes are given in the input's pixels
  const [xr, yr] = [fig.layout.xaxis, fig.layout.yaxis].map((a) => (a as { range: number[] }).range);
  const [inH, inW] = "shape" in image ? image.shape.slice(-3, -1) as number[] : [image.height, image.width];
  const sx = Math.abs(xr[1] - xr[0]) / inW;
  const sy = Math.abs(yr[1] - yr[0]) / inH;
  fig.layout.shapes = boxes.map((b) => ({
    type: "rect",
    xref: "x",
    yref: "y",
    x0: b.x0 * sx - 0.5,
    x1: b.x1 * sx - 0.5,
    y0: b.y0 * sy - 0.5,
    y1: b.y1 * sy - 0.5,
    line: { color: b.color ?? "red", width: 2, ...(b.dash ? { dash: "dash" } : {}) },
  }));
  const labelled = boxes.filter((b) => b.label);
  if (labelled.length) {
    fig.data.push({
      type: "scatter",
      mode: "markers",
      x: labelled.map((b) => b.x0 * sx - 0.5),
      y: labelled.map((b) => b.y0 * sy - 0.5),
      text: labelled.map((b) => escapeLabel(b.label!)),
      marker: { size: 6, color: labelled.map((b) => b.color ?? "red") },
      hovertemplate: "%{text}<extra></extra>",
      showlegend: false,
    });
  }
  return fig;
}
