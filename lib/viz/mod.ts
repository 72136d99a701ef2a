/**
 * Figures of attention: plain Plotly figure specs (JSON) built from tensors, their offline HTML
 * and a PNG rendering without a browser.
 *
 * @module
 */
export {
  affinityFigure,
  blockAverage,
  captureFigure,
  channelBarsFigure,
  heatmapFigure,
  imageFigure,
  imageSource,
  imageTrace,
  mapGridFigure,
  overlayFigure,
  queryGrid,
} from "./maps.ts";
export type {
  AffinityOptions,
  CaptureFigureOptions,
  ChannelBarsOptions,
  GridItem,
  MapFigureOptions,
  MapGridOptions,
  OverlayOptions,
} from "./maps.ts";
export { comparisonFigure, fmtCount, sequenceAttentionFigure, trainingCurvesFigure } from "./charts.ts";
export type { ComparisonRow, SequenceAttentionOptions, TrainingHistory } from "./charts.ts";
export { affinityOf, composeAffinities, crissCrossToDense, keyGrid, toDenseAffinity } from "./affinity.ts";
export type { AffinityPassOptions } from "./affinity.ts";
export type { GridAffinity } from "./affinity.ts";
export { combineFigures, escapeLabel, FIGURE_CONFIG, imageAxes, isFigure, traceTypes } from "./figure.ts";
export type { Figure, GridOptions, Layout, Trace } from "./figure.ts";
export { COLOR_SCALE_NAMES, colorScale } from "./colormaps.ts";
export type { ColorScale, ColorScaleName } from "./colormaps.ts";
export { toMatrix, toRgbImage, toVector } from "./data.ts";
export type { ImageInput, MapInput, Matrix, PickOptions, RgbImage } from "./data.ts";
export { figureDiv, figurePage, htmlTable, plotlyScriptTag, plotlySource } from "./html.ts";
export type { PageSection } from "./html.ts";
export { renderFigure, renderFigurePng } from "./raster.ts";
export { glimpseCentrePixel, glimpsePatchesFigure, glimpsePathFigure, greyToRgb } from "./glimpse.ts";
export type { GlimpsePathOptions } from "./glimpse.ts";
export type { Raster, RenderOptions } from "./raster.ts";
export { boxesFigure } from "./boxes.ts";
export type { FigureBox } from "./boxes.ts";
