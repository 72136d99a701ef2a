import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-layers"; // registers the gradients of tfjs-core ops (for the materialised path)
import assert from "node:assert/strict";
import { blockedSoftmaxAttention, materialisedSoftmaxAttention } from "../lib/ops/blocked_attention.ts";
import { peakBytes } from "../lib/ops/memory.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

function qkv(n: number, lq: number, lk: number, d: number, dv: number, seed: number, spread = 1) {
  return {
    q: tf.randomNormal([n, lq, d], 0, spread, "float32", seed) as tf.Tensor3D,
    k: tf.randomNormal([n, lk, d], 0, spread, "float32", seed + 1) as tf.Tensor3D,
    v: tf.randomNormal([n, lk, dv], 0, 1, "float32", seed + 2) as tf.Tensor3D,
  };
}

// odd sizes: L not a multiple of the block, blocks of one row, a block larger than L
const CASES: { n: number; lq: number; lk: number; d: number; dv: number; opts: Record<string, number> }[] = [
  { n: 3, lq: 37, lk: 29, d: 5, dv: 7, opts: { blockSize: 8 } },
  { n: 2, lq: 50, lk: 13, d: 4, dv: 3, opts: { queryBlock: 7, keyBlock: 3, scale: 0.5 } },
  { n: 1, lq: 9, lk: 11, d: 3, dv: 2, opts: { blockSize: 1 } },
  { n: 2, lq: 19, lk: 23, d: 6, dv: 4, opts: { blockSize: 64, scale: 1 / Math.sqrt(6) } },
  { n: 1, lq: 33, lk: 65, d: 8, dv: 8, opts: { queryBlock: 32, keyBlock: 16 } },
];

for (const { n, lq, lk, d, dv, opts } of CASES) {
  Deno.test(`blocked == materialised softmax attention: q [${n},${lq},${d}] k [${n},${lk},${d}] ${JSON.stringify(opts)}`, () => {
    const { q, k, v } = qkv(n, lq, lk, d, dv, 7 * lq + lk, 2);
    const before = tf.memory().numTensors;
    const blocked = blockedSoftmaxAttention(q, k, v, opts);
    const ref = materialisedSoftmaxAttention(q, k, v, { scale: opts.scale });
    assert.deepEqual(blocked.shape, [n, lq, dv]);
    assert.deepEqual(ref.attention.shape, [n, lq, lk]);
    assert.ok(maxAbsDiff(blocked, ref.output) < 1e-5, `max abs diff ${maxAbsDiff(blocked, ref.output)}`);
    tf.dispose([blocked, ref.output, ref.attention]);
    assert.equal(tf.memory().numTensors, before, "tensors leaked");

    // gradients of a weighted sum with respect to q, k and v
    const w = tf.randomNormal([n, lq, dv], 0, 1, "float32", 3);
    const loss = (path: "blocked" | "plain") => (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) => {
      const [q3, k3, v3] = [qi, ki, vi] as tf.Tensor3D[];
      const y = path === "blocked"
        ? blockedSoftmaxAttention(q3, k3, v3, opts)
        : materialisedSoftmaxAttention(q3, k3, v3, { scale: opts.scale }).output;
      return tf.sum(tf.mul(y, w));
    };
    const before2 = tf.memory().numTensors;
    const gb = tf.grads(loss("blocked"))([q, k, v]);
    const gp = tf.grads(loss("plain"))([q, k, v]);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(gb[i].shape, gp[i].shape);
      // float32 rounding: within 1e-5 of the gradient's own scale
      const err = maxAbsDiff(gb[i], gp[i]);
      const scale = Math.max(1, tf.tidy(() => tf.max(tf.abs(gp[i])).dataSync()[0]));
      assert.ok(err < 1e-5 * scale, `gradient ${"qkv"[i]}: max abs diff ${err} (max |grad| ${scale})`);
    }
    tf.dispose([...gb, ...gp]);
    assert.equal(tf.memory().numTensors, before2, "tensors leaked in the gradient");
    tf.dispose([q, k, v, w]);
  });
}

Deno.test("blocked attention is stable for large scores (online max)", () => {
  const { q, k, v } = qkv(2, 21, 17, 4, 3, 5, 30); // scores in the thousands: exp overflows without the max
  const blocked = blockedSoftmaxAttention(q, k, v, { blockSize: 4 });
  const ref = materialisedSoftmaxAttention(q, k, v);
  assert.ok(blocked.dataSync().every(Number.isFinite));
  assert.ok(maxAbsDiff(blocked, ref.output) < 1e-5);
  tf.dispose([q, k, v, blocked, ref.output, ref.attention]);
});

Deno.test("blocked attention gradients stay finite at huge scores (scaled before the product, as forward)", () => {
  // scores around 1e8 * scale: the gradient's recomputed exp(s - m - log l) must be the forward's
  for (const scale of [1, 1 / (Math.sqrt(4) * 0.06)]) {
    const { q, k, v } = qkv(2, 21, 17, 4, 3, 11, 1e4);
    const w = tf.randomNormal([2, 21, 3], 0, 1, "float32", 12);
    const loss = (f: typeof blockedSoftmaxAttention) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, { scale, blockSize: 4 }), w));
    const grads = tf.grads(loss(blockedSoftmaxAttention));
    const ref = tf.grads(loss((a, b, c, o) => materialisedSoftmaxAttention(a, b, c, o).output));
    const gb = grads([q, k, v]);
    const gr = ref([q, k, v]);
    for (let i = 0; i < 3; i++) {
      assert.ok(gb[i].dataSync().every(Number.isFinite), `gradient ${"qkv"[i]} at scale ${scale} is not finite`);
      const tol = 1e-3 * Math.max(1, tf.tidy(() => tf.max(tf.abs(gr[i])).dataSync()[0]));
      assert.ok(maxAbsDiff(gb[i], gr[i]) <= tol, `gradient ${"qkv"[i]}: max abs diff ${maxAbsDiff(gb[i], gr[i])}`);
    }
    tf.dispose([q, k, v, w, ...gb, ...gr]);
  }
});

Deno.test("blocked attention rejects shapes that cannot work, naming what came", () => {
  const a = tf.zeros([2, 5, 4]) as tf.Tensor3D;
  const b = tf.zeros([2, 6, 3]) as tf.Tensor3D;
  const c = tf.zeros([3, 5, 4]) as tf.Tensor3D;
  assert.throws(
    () => blockedSoftmaxAttention(a, b, b),
    /expected q and k to share the feature size D, got q \[2,5,4\]/,
  );
  assert.throws(() => blockedSoftmaxAttention(a, a, b), /expected k and v to share the number of keys Lk/);
  assert.throws(() => blockedSoftmaxAttention(a, c, c), /expected the same batch size N/);
  assert.throws(
    () => blockedSoftmaxAttention(tf.zeros([5, 4]) as unknown as tf.Tensor3D, a, a),
    /expected rank-3 q \[N,Lq,D\].* got q \[5,4\]/,
  );
  assert.throws(
    () => blockedSoftmaxAttention(a, a, a, { blockSize: 0 }),
    /expected a positive integer blockSize, got 0/,
  );
  assert.throws(() => blockedSoftmaxAttention(a, a, a, { keyBlock: 2.5 }), /positive integer keyBlock, got 2.5/);
  tf.dispose([a, b, c]);
});

Deno.test("blocked attention memory grows with L x block, not L x L", async () => {
  const n = 1;
  const d = 8;
  const block = 128;
  const peaks: Record<number, { blocked: number; plain: number }> = {};
  for (const l of [1024, 2048]) {
    const { q, k, v } = qkv(n, l, l, d, d, l);
    const inputs = tf.memory().numBytes;
    const blocked = await peakBytes(() => blockedSoftmaxAttention(q, k, v, { blockSize: block }));
    const plain = await peakBytes(() => materialisedSoftmaxAttention(q, k, v).output);
    peaks[l] = { blocked: blocked - inputs, plain: plain - inputs };
    tf.dispose([q, k, v]);
  }
  // the materialised map alone is L*L*4 bytes; the blocked path stays a small multiple of L x block
  for (const l of [1024, 2048]) {
    assert.ok(peaks[l].plain >= l * l * 4, `materialised peak ${peaks[l].plain} < L^2 * 4`);
    assert.ok(peaks[l].blocked < 8 * n * l * block * 4, `blocked peak ${peaks[l].blocked} at L=${l}`);
  }
  // doubling L doubles the blocked peak (about), and quadruples the materialised one
  const growthBlocked = peaks[2048].blocked / peaks[1024].blocked;
  const growthPlain = peaks[2048].plain / peaks[1024].plain;
  assert.ok(growthBlocked < 2.5, `blocked peak grew ${growthBlocked}x when L doubled`);
  assert.ok(growthPlain > 3.5, `materialised peak grew ${growthPlain}x when L doubled`);
});
