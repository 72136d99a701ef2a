/**
 * ResNet-18's convolutions one by one, attnkit (the backend `initBackend()` picks) beside PyTorch
 * (bench/conv_layers.py, same thread count): GFLOP/s of the forward convolution (weights packed
 * once, as in inference, and new weights every call, as in a training step), of the input gradient
 * and of the filter gradient. Times are the least of `--reps` (the least disturbed on a shared
 * machine), per process CPU time, so that the kernels' efficiency shows even under load.
 *
 * ```sh
 * ATTNKIT_WASM_THREADS=1 deno run -A bench/conv_layers.ts --size 64     # training-step shapes
 * ATTNKIT_WASM_THREADS=2 deno run -A bench/conv_layers.ts --size 224    # inference shapes
 * ```
 *
 * Prints a markdown table: per layer and pass, GFLOP/s (CPU time) of attnkit and PyTorch, and the
 * ratio of their CPU times.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import { parseArgs } from "node:util";
import { initBackend } from "../lib/runtime/backend.ts";
import type { Tensor4D } from "../lib/types.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "64" },
    batch: { type: "string", default: "8" },
    reps: { type: "string", default: "7" },
    python: { type: "string", default: "/usr/bin/python3" },
  },
});
const size = Number(args.size), batch = Number(args.batch), reps = Number(args.reps);
const info = await initBackend({ quiet: true });
const threads = info.threads ?? 1;

/** One PyTorch row (milliseconds [wall, cpu], least of reps). */
interface TorchRow {
  label: string;
  count: number;
  flops: number;
  input: number[];
  forward: [number, number];
  backpropInput: [number, number];
  backpropFilter: [number, number];
}

const py = new Deno.Command(args.python!, {
  args: [new URL("./conv_layers.py", import.meta.url).pathname],
  stdin: "piped",
  stdout: "piped",
}).spawn();
const writer = py.stdin.getWriter();
await writer.write(new TextEncoder().encode(JSON.stringify({ size, batch, threads, reps }) + "\n"));
await writer.close();
const torch = JSON.parse(new TextDecoder().decode((await py.output()).stdout)) as {
  torch: string;
  threads: number;
  rows: TorchRow[];
};

/** Least wall and CPU milliseconds of `reps` calls (after one untimed). */
function timed(prepare: () => tf.Tensor[], fn: (inputs: tf.Tensor[]) => tf.Tensor): [number, number] {
  let wall = Infinity, cpu = Infinity;
  for (let i = -1; i < reps; i++) {
    const inputs = prepare();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const out = fn(inputs);
    const w = performance.now() - t0;
    const c = process.cpuUsage(c0);
    out.dispose();
    tf.dispose(inputs);
    if (i >= 0) wall = Math.min(wall, w), cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return [wall, cpu];
}

const lines = [
  `ResNet-18 convolutions at ${batch}x${size}x${size}: attnkit ${info.name} (${threads} thread${
    threads > 1 ? "s" : ""
  }) vs PyTorch ${torch.torch} (${torch.threads}); GFLOP/s per CPU time (least of ${reps}), CPU-time ratio attnkit / PyTorch`,
  "",
  "| layer (x count) | forward, packed weights | forward, new weights | input gradient | filter gradient |",
  "| --- | ---: | ---: | ---: | ---: |",
];
const totals = { torch: 0, attnkit: 0 };
for (const row of torch.rows) {
  const [n, h, , cin] = row.input;
  const k = Number(/(\d)x\d/.exec(row.label)![1]);
  const stride = row.label.includes("/2") ? 2 : 1;
  const cout = Number(/->(\d+)/.exec(row.label)![1]);
  const x = tf.randomNormal([n, h, h, cin]) as Tensor4D;
  const w = tf.mul(tf.randomNormal([k, k, cin, cout]), 0.05) as Tensor4D;
  const y = tf.conv2d(x, w, stride, "same");
  const dy = tf.randomNormal(y.shape) as Tensor4D;
  const keep = () => [];
  const fresh = () => [tf.add(w, 0)];
  const forward = timed(keep, () => tf.conv2d(x, w, stride, "same"));
  const forwardNew = timed(fresh, ([w2]) => tf.conv2d(x, w2 as Tensor4D, stride, "same"));
  const input = timed(fresh, ([w2]) => tf.conv2dTranspose(dy, w2 as Tensor4D, x.shape, stride, "same"));
  const filter = timed(keep, () =>
    tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
      strides: stride,
      pad: "same",
      dataFormat: "NHWC",
      filterShape: w.shape,
    } as unknown as tf.NamedAttrMap) as tf.Tensor);
  tf.dispose([x, w, y, dy]);
  const cell = (mine: [number, number], theirs: [number, number]) =>
    `${(row.flops / mine[1] / 1e6).toFixed(0)} vs ${(row.flops / theirs[1] / 1e6).toFixed(0)} (${
      (mine[1] / theirs[1]).toFixed(1)
    }x)`;
  lines.push(
    `| ${row.label} at ${h}x${h} (x${row.count}) | ${cell(forward, row.forward)} | ${cell(forwardNew, row.forward)} | ${
      cell(input, row.backpropInput)
    } | ${cell(filter, row.backpropFilter)} |`,
  );
  totals.attnkit += row.count * (forwardNew[1] + input[1] + filter[1]);
  totals.torch += row.count * (row.forward[1] + row.backpropInput[1] + row.backpropFilter[1]);
}
lines.push(
  "",
  `all convolutions of a training step (forward with new weights + both gradients, stem's input gradient included): ` +
    `attnkit ${totals.attnkit.toFixed(0)} ms CPU, PyTorch ${totals.torch.toFixed(0)} ms CPU (${
      (totals.attnkit / totals.torch).toFixed(1)
    }x); load average ${Deno.loadavg().map((v) => v.toFixed(1)).join(" ")}`,
);
console.log(lines.join("\n"));
