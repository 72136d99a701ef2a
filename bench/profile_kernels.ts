/**
 * Where the time of a workload goes, per kernel: every kernel registered for the current backend
 * is wrapped with a timer, self time (a kernel written as ops, e.g. `Conv2DBackpropFilter`, is
 * charged for its own glue; the `Conv2D` it runs inside is listed as `Conv2DBackpropFilter>Conv2D`).
 * Convolutions are also listed per shape with their GFLOP/s, so they can be set beside PyTorch's
 * (`python3 bench/torch_bench.py --layers`).
 *
 * ```sh
 * deno run -A bench/profile_kernels.ts                          # ResNet-18 training step 8x64x64
 * deno run -A bench/profile_kernels.ts --only "ResNet-18 forward 8x224x224$" --reps 3
 * ```
 *
 * Options: `--only=REGEX` (workload labels of bench/support/workloads.ts; default the ResNet-18
 * training step), `--reps=N` timed repetitions after one untimed (default 5), `--top=N` rows.
 * Wall time per kernel (the process CPU time of the whole step is printed too).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import { parseArgs } from "node:util";
import { initBackend } from "../lib/runtime/backend.ts";
import { allWorkloads, attnkitRunner } from "./support/workloads.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", default: "^ResNet-18 training step 8x64x64$" },
    reps: { type: "string", default: "5" },
    top: { type: "string", default: "40" },
  },
});
const reps = Number(args.reps);

const backend = await initBackend({ quiet: true });
console.log(`backend ${backend.name}${backend.threads ? ` (${backend.threads} threads)` : ""}`);

/** Accumulated self time and calls per key. */
const stats = new Map<string, { ms: number; calls: number; flops: number }>();
const stack: { name: string; child: number }[] = [];
let recording = false;

function convFlops(name: string, inputs: tf.NamedTensorInfoMap, out: tf.TensorInfo | tf.TensorInfo[]): number {
  const o = Array.isArray(out) ? out[0] : out;
  if (name === "Conv2D" || name === "FusedConv2D") {
    const f = inputs.filter!.shape; // [kh, kw, cin, cout]
    return 2 * tf.util.sizeFromShape(o.shape) * f[0] * f[1] * f[2];
  }
  return 0;
}

for (const config of tf.getKernelsForBackend(tf.getBackend())) {
  const inner = config.kernelFunc;
  tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel({
    ...config,
    kernelFunc: (a) => {
      if (!recording) return inner(a);
      stack.push({ name: config.kernelName, child: 0 });
      const t0 = performance.now();
      const out = inner(a);
      const dt = performance.now() - t0;
      const me = stack.pop()!;
      const parent = stack.at(-1);
      if (parent) parent.child += dt;
      const path = [...stack.map((s) => s.name), config.kernelName].join(">");
      const flops = convFlops(config.kernelName, a.inputs, out);
      const key = flops
        ? `${path} x${a.inputs.x!.shape.join("x")} w${a.inputs.filter!.shape.join("x")} s${
          JSON.stringify((a.attrs as { strides: unknown }).strides)
        }`
        : path;
      const s = stats.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      s.ms += dt - me.child;
      s.calls++;
      s.flops += flops;
      stats.set(key, s);
      return out;
    },
  });
}

const only = new RegExp(args.only!);
for (const w of allWorkloads().filter((w) => only.test(w.label))) {
  stats.clear();
  const runner = await attnkitRunner(w.spec);
  await runner.step();
  await runner.step();
  recording = true;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await runner.step();
  const wall = (performance.now() - t0) / reps;
  const c = process.cpuUsage(c0);
  recording = false;
  runner.dispose();
  const total = [...stats.values()].reduce((a, s) => a + s.ms, 0) / reps;
  console.log(
    `\n${w.label}: ${wall.toFixed(1)} ms wall per step, ${((c.user + c.system) / 1000 / reps).toFixed(1)} ms CPU, ` +
      `${total.toFixed(1)} ms in kernels (${reps} steps)`,
  );
  // by kernel name (shapes merged), then the top keys
  const byName = new Map<string, { ms: number; calls: number; flops: number }>();
  for (const [k, s] of stats) {
    const name = k.split(" ")[0];
    const b = byName.get(name) ?? { ms: 0, calls: 0, flops: 0 };
    b.ms += s.ms, b.calls += s.calls, b.flops += s.flops;
    byName.set(name, b);
  }
  const print = (m: Map<string, { ms: number; calls: number; flops: number }>, n: number) => {
    for (const [k, s] of [...m].sort((a, b) => b[1].ms - a[1].ms).slice(0, n)) {
      const ms = s.ms / reps;
      console.log(
        `${ms.toFixed(2).padStart(9)} ms ${(100 * ms / total).toFixed(1).padStart(5)}% ${
          String(s.calls / reps).padStart(5)
        } calls${s.flops ? ` ${(s.flops / s.ms / 1e6).toFixed(1).padStart(6)} GFLOP/s` : ""}  ${k}`,
      );
    }
  };
  console.log("-- by kernel");
  print(byName, Number(args.top));
  console.log("-- convolutions by shape");
  print(new Map([...stats].filter(([, s]) => s.flops > 0)), Number(args.top));
}
