// boxesFigure: rectangles land on the right pixels (also when the photo is shrunk), labels are
// escaped, bad boxes get a named Error, the PNG fallback draws the rectangle.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/runtime/backend.ts";
import { boxesFigure } from "../lib/viz/boxes.ts";
import { renderFigure } from "../lib/viz/raster.ts";

await initBackend({ backend: "wasm", quiet: true });

Deno.test("boxesFigure: one rectangle per box, at the box's pixel edges", () => {
  const img = tf.zeros([1, 60, 40, 3]);
  const n0 = tf.memory().numTensors;
  const fig = boxesFigure(img, [
    { x0: 10, y0: 12, x1: 30, y1: 32, color: "lime", label: "<crop>" },
    { x0: 0, y0: 0, x1: 5, y1: 5, dash: true },
  ]);
  assert.equal(tf.memory().numTensors, n0);
  const shapes = fig.layout.shapes as Record<string, unknown>[];
  assert.equal(shapes.length, 2);
  assert.deepEqual([shapes[0].x0, shapes[0].y0, shapes[0].x1, shapes[0].y1], [9.5, 11.5, 29.5, 31.5]);
  assert.equal((shapes[0].line as { color: string }).color, "lime");
  assert.equal((shapes[1].line as { dash?: string }).dash, "dash");
  assert.deepEqual(fig.data.map((t) => t.type), ["image", "scatter"]);
  assert.ok(!String((fig.data[1] as unknown as { text: string[] }).text[0]).includes("<crop>"), "label not escaped");
  img.dispose();
});

Deno.test("boxesFigure: boxes follow a shrunk photo; bad boxes are refused", () => {
  const img = tf.zeros([1, 400, 800, 3]);
  const fig = boxesFigure(img, [{ x0: 400, y0: 200, x1: 800, y1: 400 }], { maxSize: 200 }); // shown at 100 x 200
  const s = (fig.layout.shapes as Record<string, number>[])[0];
  assert.deepEqual([s.x0, s.y0, s.x1, s.y1], [99.5, 49.5, 199.5, 99.5]);
  assert.throws(() => boxesFigure(img, [{ x0: 5, y0: 0, x1: 1, y1: 3 }]), /boxesFigure: expected finite boxes/);
  assert.throws(() => boxesFigure(img, [{ x0: NaN, y0: 0, x1: 1, y1: 3 }]), /boxesFigure: expected finite boxes/);
  img.dispose();
});

Deno.test("boxesFigure: the static rendering draws the rectangle's colour on a black photo", () => {
  const img = tf.zeros([1, 40, 40, 3]);
  const fig = boxesFigure(img, [{ x0: 10, y0: 10, x1: 30, y1: 30, color: "rgb(255,0,0)" }]);
  const r = renderFigure(fig);
  let red = 0;
  for (let i = 0; i < r.data.length; i += 3) {
    if (r.data[i] > 200 && r.data[i + 1] < 60 && r.data[i + 2] < 60) red++;
  }
  assert.ok(red > 40, `${red} red pixels`);
  img.dispose();
});
