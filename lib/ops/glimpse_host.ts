/**
 * RAM's glimpse sensor (Mnih et al., "Recurrent Models of Visual Attention", NeurIPS 2014) on
 * plain arrays: the same patches as {@link glimpseSensor} (kevinzakka/recurrent-visual-attention's
 * `Retina`: k square patches of sides g, g*s, ..., centred on the pixel floor((l + 1) / 2 * side),
 * zero padding, each block-averaged down to g x g), computed by summing pixels in JavaScript.
 *
 * Why: in training, the glimpse locations are sampled (constants: REINFORCE, not backpropagation,
 * trains the location policy), so the sensor needs no gradient. On the wasm backend the tensor
 * version costs two batched matrix products per scale and glimpse plus their backward pass, about
 * three quarters of a RAM training step (a step of 64 images at the paper's sizes: 391 CPU-ms with
 * it, 95 with this one); summing g*g*f*f pixels per patch on the host costs a few microseconds per
 * image.
 *
 * @module
 */
import type { GlimpseOptions } from "./glimpse.ts";

/** Images on the host: NHWC float32 values and their shape. */
export interface HostImages {
  /** Pixels, row-major NHWC. */
  data: Float32Array;
  /** [N, H, W, C]. */
  shape: [number, number, number, number];
}

/** Layout of {@link glimpseSensorHost}'s output. */
export type GlimpseLayout = "nhwc" | "torch";

/**
 * The glimpse patches of `images` at locations `loc` ([N, 2] row-major: (x, y) in [-1, 1], x along
 * the width). Layout "nhwc": [N, g, g, k*C], scale-major channels, equal to
 * `glimpseSensor(...).patches`; "torch": [N, k*C, g, g], PyTorch's flatten order (what RAM's glimpse
 * network reads as a vector).
 *
 * @example
 * ```ts
 * import { glimpseSensorHost } from "./glimpse_host.ts";
 * const img = { data: new Float32Array(60 * 60).fill(1), shape: [1, 60, 60, 1] as [number, number, number, number] };
 * const p = glimpseSensorHost(img, new Float32Array([0, 0]), { size: 12, scales: 3, scaleFactor: 2 });
 * p.length; // 1 * 12 * 12 * 3
 * ```
 */
export function glimpseSensorHost(
  images: HostImages,
  loc: Float32Array | number[],
  o: GlimpseOptions,
  layout: GlimpseLayout = "nhwc",
): Float32Array {
  const [n, h, w, c] = images.shape;
  if (images.data.length !== n * h * w * c) {
    throw new Error(
      `glimpseSensorHost: expected ${n * h * w * c} pixels for [${images.shape}], got ${images.data.length}`,
    );
  }
  if (loc.length !== n * 2) throw new Error(`glimpseSensorHost: expected ${n * 2} location values, got ${loc.length}`);
  const g = o.size, k = o.scales;
  const out = new Float32Array(n * g * g * k * c);
  const x = images.data;
  const f32 = Math.fround;
  for (let b = 0; b < n; b++) {
    // float32 arithmetic, as the tensor version: floor((l + 1) * side * 0.5)
    const cx = Math.floor(f32(f32(f32(loc[2 * b] + 1) * w) * 0.5));
    const cy = Math.floor(f32(f32(f32(loc[2 * b + 1] + 1) * h) * 0.5));
    let side = g;
    for (let s = 0; s < k; s++) {
      const f = side / g;
      const y0 = cy - Math.floor(side / 2);
      const x0 = cx - Math.floor(side / 2);
      const inv = 1 / (f * f);
      for (let i = 0; i < g; i++) {
        const ya = Math.max(0, y0 + i * f), yb = Math.min(h, y0 + (i + 1) * f);
        for (let j = 0; j < g; j++) {
          const xa = Math.max(0, x0 + j * f), xb = Math.min(w, x0 + (j + 1) * f);
          for (let ch = 0; ch < c; ch++) {
            let sum = 0;
            for (let yy = ya; yy < yb; yy++) {
              const row = ((b * h + yy) * w) * c + ch;
              for (let xx = xa; xx < xb; xx++) sum += x[row + xx * c];
            }
            const ck = s * c + ch;
            const at = layout === "nhwc" ? ((b * g + i) * g + j) * k * c + ck : ((b * k * c + ck) * g + i) * g + j;
            out[at] = sum * inv;
          }
        }
      }
      side = Math.floor(side * o.scaleFactor);
    }
  }
  return out;
}
