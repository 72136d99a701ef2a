/**
 * attnkit vs PyTorch, side by side, interleaved in one run: `deno task bench:torch`.
 *
 * Starts bench/torch_bench.py (Debian's python3-torch, `torch.set_num_threads(2)` or
 * `--torch-threads`; installed with apt-get when missing and running as root), builds every
 * workload of bench/support/workloads.ts on both sides, then alternates rounds: one untimed and
 * `--reps` timed repetitions in PyTorch, then the same in attnkit, `--rounds` times (the untimed
 * one wakes the side's worker threads, asleep while the other side ran).
 * While one framework runs the other waits, so they never compete for the cores. Prints one
 * table row per workload with the medians and the ratio attnkit / PyTorch of wall time and of
 * process CPU time (all threads; with one thread each it measures the kernels' efficiency even on
 * a loaded machine, where wall time also measures how the scheduler treats each framework's
 * threads), then geometric means per group, and writes the rows as JSON to `--json` (default
 * .out/bench_torch.json).
 *
 * Options: `--only=REGEX` (workload labels), `--rounds=N` (default 5), `--reps=N` (default 2),
 * `--quick` (rounds 3, reps 1), `--torch-threads=N`, `--python=PATH` (default /usr/bin/python3).
 * The attnkit backend is initBackend()'s choice (ATTNKIT_BACKEND, ATTNKIT_WASM_THREADS).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import os from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { initBackend } from "../lib/runtime/backend.ts";
import { allWorkloads, attnkitRunner, NO_TWIN, type Runner, type Workload } from "./support/workloads.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string" },
    rounds: { type: "string" },
    reps: { type: "string" },
    quick: { type: "boolean" },
    "torch-threads": { type: "string" },
    python: { type: "string", default: "/usr/bin/python3" },
    json: { type: "string", default: ".out/bench_torch.json" },
  },
});
const rounds = Number(args.rounds ?? (args.quick ? 3 : 5));
const reps = Number(args.reps ?? (args.quick ? 1 : 2));
const only = args.only ? new RegExp(args.only) : undefined;
const python = args.python!;

// ------------------------------------------------------------------------------ machine --

// (with --allow-run, Deno wants --allow-all for /proc; os.cpus and Deno.loadavg need --allow-sys)
const cpuModel = os.cpus()[0]?.model ?? "unknown CPU";
const loadavg = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
const cores = navigator.hardwareConcurrency;

// ------------------------------------------------------------------------------- torch --

async function ensureTorch(): Promise<void> {
  const probe = await new Deno.Command(python, { args: ["-c", "import torch"], stderr: "null" }).output().catch(
    () => ({ code: 127 }),
  );
  if (probe.code === 0) return;
  console.error(`bench:torch: ${python} has no torch; installing Debian's python3-torch (apt-get)`);
  const isRoot = Deno.uid?.() === 0;
  const apt = (a: string[]) =>
    new Deno.Command(isRoot ? "apt-get" : "sudo", { args: isRoot ? a : ["apt-get", ...a] }).spawn().status;
  if (!(await apt(["update"])).success || !(await apt(["install", "-y", "python3-torch"])).success) {
    throw new Error("bench:torch: could not install python3-torch; install it and run again");
  }
}

/** The PyTorch server: one JSON request per line, one answer per line. */
class Torch {
  private proc: Deno.ChildProcess;
  private writer: WritableStreamDefaultWriter<Uint8Array>;
  private lines: AsyncIterator<string>;

  constructor() {
    const script = new URL("./torch_bench.py", import.meta.url).pathname;
    this.proc = new Deno.Command(python, {
      args: [script],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.writer = this.proc.stdin.getWriter();
    this.lines = this.proc.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())[
      Symbol.asyncIterator
    ]();
  }

  async call(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.writer.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const { value, done } = await this.lines.next();
    if (done) throw new Error("bench:torch: the PyTorch process ended");
    const answer = JSON.parse(value);
    if (answer.error) throw new Error(`PyTorch: ${answer.error}`);
    return answer;
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.proc.status;
  }
}

function lineSplitter(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      for (const p of parts) if (p.trim()) controller.enqueue(p);
    },
    flush(controller) {
      if (buffer.trim()) controller.enqueue(buffer);
    },
  });
}

// ------------------------------------------------------------------------------- run --

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/** One table row. */
interface Row {
  label: string;
  group: Workload["group"];
  attnkitMs?: number;
  torchMs?: number;
  ratio?: number;
  /** Process CPU time per repetition (all threads), medians. */
  attnkitCpuMs?: number;
  torchCpuMs?: number;
  cpuRatio?: number;
  gflops?: [number, number];
  note?: string;
}

/** Wall and process CPU milliseconds of `n` repetitions. */
async function timeAttnkit(runner: Runner, n: number): Promise<{ wall: number[]; cpu: number[] }> {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await runner.step();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

await ensureTorch();
const backend = await initBackend({ quiet: true });
const torch = new Torch();
const hello = await torch.call({ op: "hello", threads: Number(args["torch-threads"] ?? cores) });
const loadStart = loadavg();
const header =
  `attnkit ${backend.name}${backend.threads ? ` (${backend.threads} thread${backend.threads > 1 ? "s" : ""})` : ""}` +
  ` vs PyTorch ${hello.torch} (${hello.threads} threads) on ${cpuModel}, ${cores} cores; ` +
  `load average at start ${loadStart}; ${rounds} rounds x ${reps} reps, medians; ${
    new Date().toISOString().slice(0, 10)
  }`;
console.log(header);

const rows: Row[] = [];
const workloads = allWorkloads().filter((w) => !only || only.test(w.label));
for (const [i, w] of workloads.entries()) {
  const id = `w${i}`;
  const row: Row = { label: w.label, group: w.group };
  let runner: Runner | undefined;
  try {
    const [answer, built] = await Promise.all([
      torch.call({ op: "setup", id, spec: w.spec }),
      attnkitRunner(w.spec),
    ]);
    runner = built;
    const torchShape = answer.out as number[] | null;
    if (torchShape && runner.outShape && JSON.stringify(torchShape) !== JSON.stringify(runner.outShape)) {
      row.note = `output shapes differ: attnkit ${runner.outShape}, PyTorch ${torchShape}`;
    }
    if (runner.source === "bench") {
      row.note = [row.note, "bench-only ResNet (no lib/backbones yet)"].filter(Boolean).join("; ");
    }
    await torch.call({ op: "run", id, reps: 1 }); // warm-up
    await timeAttnkit(runner, 1);
    const a: number[] = [], t: number[] = [], ac: number[] = [], tc: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // one untimed repetition per round on each side: while the other side ran, this side's
      // worker threads went to sleep, and waking them costs up to ~3 ms (the first wasm kernel
      // after a pause), which would otherwise dominate the millisecond workloads
      const answer = await torch.call({ op: "run", id, reps, warmup: 1 });
      t.push(...(answer.times as number[]).map((s) => s * 1000));
      tc.push(...(answer.cpu as number[]).map((s) => s * 1000));
      await runner.step();
      const mine = await timeAttnkit(runner, reps);
      a.push(...mine.wall);
      ac.push(...mine.cpu);
    }
    row.attnkitMs = median(a);
    row.torchMs = median(t);
    row.ratio = row.attnkitMs / row.torchMs;
    row.attnkitCpuMs = median(ac);
    row.torchCpuMs = median(tc);
    row.cpuRatio = row.attnkitCpuMs / row.torchCpuMs;
    if (w.flops) row.gflops = [w.flops / row.attnkitMs / 1e6, w.flops / row.torchMs / 1e6];
  } catch (e) {
    row.note = `not compared: ${(e as Error).message.split("\n")[0]}`;
  } finally {
    runner?.dispose();
    await torch.call({ op: "free", id }).catch(() => undefined);
  }
  rows.push(row);
  const f = (x?: number) => (x == null ? "-" : x.toFixed(1));
  console.log(
    `${w.label.padEnd(44)} attnkit ${f(row.attnkitMs).padStart(8)} ms  PyTorch ${f(row.torchMs).padStart(8)} ms  ` +
      `ratio ${row.ratio == null ? "-" : row.ratio.toFixed(2)}  CPU-time ratio ${
        row.cpuRatio == null ? "-" : row.cpuRatio.toFixed(2)
      }${row.note ? `  (${row.note})` : ""}`,
  );
}
await torch.close();
const loadEnd = loadavg();

// ------------------------------------------------------------------------------ report --

const fmt = (x?: number, d = 1) => (x == null ? "-" : x.toFixed(d));
const table = [
  "| workload | attnkit (ms) | PyTorch (ms) | attnkit / PyTorch | CPU time: attnkit / PyTorch |",
  "|---|---:|---:|---:|---:|",
  ...rows.map((r) =>
    `| ${r.label}${r.gflops ? ` (${r.gflops[0].toFixed(0)} vs ${r.gflops[1].toFixed(0)} GFLOP/s)` : ""}${
      r.note ? ` — ${r.note}` : ""
    } | ${fmt(r.attnkitMs)} | ${fmt(r.torchMs)} | ${fmt(r.ratio, 2)} | ${fmt(r.cpuRatio, 2)} |`
  ),
];
const summary: string[] = [];
for (const group of ["backbone", "mechanism forward", "mechanism backward"] as const) {
  const rs = rows.filter((r) => r.group === group && r.ratio != null);
  if (rs.length === 0) continue;
  const worst = rs.reduce((a, b) => (b.ratio! > a.ratio! ? b : a));
  const cpu = rs.filter((r) => r.cpuRatio != null && Number.isFinite(r.cpuRatio) && r.cpuRatio > 0);
  summary.push(
    `${group}: geometric mean of attnkit / PyTorch ${geomean(rs.map((r) => r.ratio!)).toFixed(2)} over ${rs.length}` +
      ` workloads (CPU time ${
        cpu.length ? geomean(cpu.map((r) => r.cpuRatio!)).toFixed(2) : "-"
      }); worst ${worst.label} ` +
      worst.ratio!.toFixed(2),
  );
}
const byLabel = (l: string) => rows.find((r) => r.label === l);
for (const suffix of ["", ", fused"]) {
  const se = byLabel(`SE-ResNet-50 forward 8x224x224${suffix}`);
  const plain = byLabel(`ResNet-50 forward 8x224x224${suffix}`);
  const q = (a?: number, b?: number) => (a && b ? (a / b).toFixed(3) : "-");
  if (se?.attnkitMs && plain?.attnkitMs) {
    summary.push(
      `attention overhead SE-ResNet-50 / ResNet-50 forward${suffix}: attnkit ${q(se.attnkitMs, plain.attnkitMs)}` +
        ` (CPU time ${q(se.attnkitCpuMs, plain.attnkitCpuMs)}), PyTorch ${q(se.torchMs, plain.torchMs)}` +
        ` (CPU time ${q(se.torchCpuMs, plain.torchCpuMs)})`,
    );
  }
}
const all = rows.filter((r) => r.ratio != null);
if (all.length) summary.push(`all workloads: geometric mean ${geomean(all.map((r) => r.ratio!)).toFixed(2)}`);
summary.push(`load average at start ${loadStart}, at end ${loadEnd}`);
summary.push(`mechanisms without a PyTorch twin: ${Object.entries(NO_TWIN).map(([k, v]) => `${k} (${v})`).join("; ")}`);
console.log(`\n${header}\n\n${table.join("\n")}\n\n${summary.join("\n")}`);

try {
  const path = args.json!;
  Deno.mkdirSync(path.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  Deno.writeTextFileSync(path, JSON.stringify({ header, rows, summary, tfBackend: tf.getBackend() }, null, 2));
} catch (e) {
  console.error(`bench:torch: could not write ${args.json}: ${(e as Error).message}`);
}
