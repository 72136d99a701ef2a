/**
 * Experiment: a plain CNN and the same CNN with attention, trained on 60x60 cluttered MNIST
 * (4 clutter patches of 8x8, as in the RAM paper); prints test error, parameters, training time
 * and the localisation metrics of the spatial attention maps.
 *
 * `deno task experiment:cluttered [--models plain,se,cbam,...] [--train 50000] [--epochs 2]
 * [--val 1000] [--test 10000] [--batch 64] [--lr 3e-3] [--seed 1] [--bn] [--head max|avg] [--stages SPEC]
 * [--att-stages 2,3,4] [--jobs 2] [--save] [--out .out/cluttered] [--report] [--progress]`
 *
 * `--report` prints the table of the results a run left in `--out` (one JSON per model) without
 * training: the table of a run that was cut short, or of models run in separate invocations.
 *
 * `--train` is the number of new images per epoch: every epoch gets fresh placements and clutter.
 * Each model trains in its own process (`--jobs` at a time, default one per core: the wasm backend
 * runs on one thread). A mechanism that is not in the registry is reported as "not registered".
 * `--save` writes the trained models to `data/models/cluttered_<name>/` with a `meta.json` that
 * holds the command and the test metrics.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import {
  attentionCnn,
  attentionPlug,
  batches,
  captureAttention,
  CLUTTERED_STAGES,
  clutteredMnist,
  cosineSchedule,
  disposeBatch,
  fileIO,
  initBackend,
  loadMnist,
  localisationScores,
  numBatches,
  sliceMnist,
  softmaxCrossEntropy,
  train,
} from "../mod.ts";
import type { CnnStage, Tensor } from "../mod.ts";
import { numberList, parseOptions } from "./cli.ts";

const DEFAULT_MODELS = ["plain", "se", "cbam", "eca", "bam", "gc", "ltpa"];

interface Args {
  models: string[];
  train: number;
  val: number;
  test: number;
  epochs: number;
  batch: number;
  lr: number;
  seed: number;
  jobs: number;
  save: boolean;
  out: string;
  modelsDir: string;
  worker?: string;
  /** Print the table of the results already in `out` (one `<model>.json` per model) without training. */
  report: boolean;
  progress: boolean;
  batchNorm: boolean;
  head: "max" | "avg";
  /** The CNN's stages, `--stages 16k5s2p,32p,64`: filters, then k<kernel>, s<stride>, p (2x2 max pool). */
  stages?: CnnStage[];
  /**
   * Stages (1-based) with an attention layer, `--att-stages 2,3,4`; default all but the first (the
   * 30x30 stage of 16 edge channels; LTPA also leaves out the last, which makes its global vector).
   */
  attStages?: number[];
}

/** Parses `--stages`: comma-separated `<filters>[k<kernel>][s<stride>][p]`, e.g. `16k5s2p,32p,64`. */
export function parseStages(spec: string): CnnStage[] {
  return spec.split(",").map((part) => {
    const m = /^(\d+)(?:k(\d+))?(?:s(\d+))?(p?)$/.exec(part.trim());
    if (!m) throw new Error(`--stages: expected <filters>[k<kernel>][s<stride>][p] (e.g. 16k5s2p), got '${part}'`);
    return { filters: Number(m[1]), kernelSize: Number(m[2] ?? 3), strides: Number(m[3] ?? 1), pool: m[4] === "p" };
  });
}

/** The `--stages` spelling of stages (the inverse of {@link parseStages}). */
export function formatStages(stages: readonly CnnStage[]): string {
  return stages.map((s) =>
    `${s.filters}${(s.kernelSize ?? 3) !== 3 ? `k${s.kernelSize}` : ""}${
      (s.strides ?? 1) !== 1 ? `s${s.strides}` : ""
    }${(s.pool ?? true) ? "p" : ""}`
  ).join(",");
}

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    models: DEFAULT_MODELS,
    train: 50000,
    val: 1000,
    test: 10000,
    epochs: 2,
    batch: 64,
    lr: 3e-3,
    seed: 1,
    jobs: Math.max(1, Math.min(navigator.hardwareConcurrency ?? 1, 4)),
    save: false,
    out: ".out/cluttered",
    modelsDir: "data/models",
    progress: false,
    report: false,
    batchNorm: false,
    head: "max",
  };
  return parseOptions(argv, defaults, {
    script: "experiments/cluttered.ts",
    names: { batchNorm: "bn" },
    optional: ["worker", "stages", "attStages"],
    convert: {
      models: (t) => t.split(",").map((s) => s.trim()).filter(Boolean),
      head: (t) => {
        if (t !== "max" && t !== "avg") throw new Error(`--head takes max or avg, got ${t}`);
        return t;
      },
      worker: (t) => t,
      stages: (t) => parseStages(t),
      attStages: numberList,
    },
  });
}

/** Per-model result, as the worker writes it. */
interface Result {
  name: string;
  status: "ok" | "not registered" | "failed";
  error?: string;
  testError?: number;
  testLoss?: number;
  params?: number;
  trainSeconds?: number;
  /** CPU seconds of training (user + system): the wall time on an idle core, as wasm runs on one thread. */
  trainCpuSeconds?: number;
  evalSeconds?: number;
  /** CPU seconds of the whole worker process (loading, training, testing). */
  cpuSeconds?: number;
  epochs?: number;
  history?: unknown[];
  /** Localisation per attention layer with a spatial map. */
  localisation?: Record<string, { massInBox: number; pointing: number; mapSize: number[] }>;
  backend?: string;
}

/** The CNN's stages of a run. */
function stagesOf(a: Args): readonly CnnStage[] {
  return a.stages ?? CLUTTERED_STAGES;
}

/** The stages with attention of a run: `--att-stages`, or all but the first. */
function attStagesOf(a: Args): number[] {
  return a.attStages ?? stagesOf(a).map((_, i) => i + 1).slice(1);
}

/** The reproducing command of a model (what meta.json records). */
function commandOf(a: Args, name: string): string {
  return `deno task experiment:cluttered --models ${name} --train ${a.train} --epochs ${a.epochs} --batch ${a.batch} ` +
    `--lr ${a.lr} --seed ${a.seed} --val ${a.val} --test ${a.test}${a.batchNorm ? " --bn" : ""}${
      a.head === "avg" ? " --head avg" : ""
    } --stages ${formatStages(stagesOf(a))} --att-stages ${attStagesOf(a).join(",")} --save`;
}

/** Config given to each mechanism (defaults otherwise). */
const ATTENTION_CONFIG: Record<string, Record<string, unknown>> = {
  se: { reduction: 8 },
  cbam: { reduction: 8 },
  cbam_simple: { reduction: 8 },
  scse: { reduction: 8 },
  // the papers' r16 leaves one hidden unit at 16 channels: r8 as for SE and CBAM
  bam: { reduction: 8 },
  gc: { reduction: 8 },
};

/** wasm unless ATTNKIT_BACKEND says otherwise (the experiment's timings are for wasm). */
function initExperimentBackend() {
  return initBackend({ quiet: true, backend: Deno.env.get("ATTNKIT_BACKEND") ? undefined : "wasm" });
}

async function runWorker(a: Args, name: string): Promise<Result> {
  const backend = await initExperimentBackend();
  const attention = name === "plain" ? null : name;
  if (attention && attentionPlug(attention) === "not registered") return { name, status: "not registered" };
  const trainMnist = await loadMnist({ split: "train" });
  const testMnist = await loadMnist({ split: "test" });
  // digits 0..54999 for training, 55000..59999 for validation; clutter from the same part
  const trainSrc = sliceMnist(trainMnist, 0, 55000);
  const valSrc = sliceMnist(trainMnist, 55000);
  // fresh images every epoch: epoch e trains on samples e*train .. (e+1)*train-1 (new places and clutter)
  const trainSet = clutteredMnist(trainSrc, {
    size: 60,
    clutter: 4,
    patch: 8,
    seed: a.seed,
    count: a.train * a.epochs,
  });
  const valSet = clutteredMnist(valSrc, { size: 60, clutter: 4, patch: 8, seed: a.seed + 1, count: a.val });
  const testSet = clutteredMnist(testMnist, { size: 60, clutter: 4, patch: 8, seed: 12345, count: a.test });

  const model = attentionCnn({
    attention,
    attentionConfig: ATTENTION_CONFIG[name],
    seed: a.seed,
    batchNorm: a.batchNorm,
    head: a.head,
    stages: [...stagesOf(a)],
    // LTPA (the global head) attends over the earlier stages: the last one makes its global vector
    attentionStages: attention && attentionPlug(attention) === "global"
      ? attStagesOf(a).filter((k) => k < stagesOf(a).length)
      : attStagesOf(a),
  });
  const params = model.countParams();
  const cpu0 = process.cpuUsage();
  const opts = { batchSize: a.batch, shuffle: true, seed: a.seed, dropRemainder: true };
  const result = await train(model, {
    train: (epoch) => batches(trainSet, { ...opts, epoch, start: epoch * a.train, end: (epoch + 1) * a.train }),
    trainBatches: numBatches(trainSet, { ...opts, end: a.train }),
    validation: a.val > 0 ? () => batches(valSet, { batchSize: 250 }) : undefined,
  }, {
    epochs: a.epochs,
    learningRate: cosineSchedule(a.lr, a.epochs, { warmup: 0.1 }),
    seed: a.seed,
    // one bar per worker: with several jobs at once the bars would overwrite each other
    progress: a.progress || (a.jobs === 1 ? "auto" : false),
    onEpochEnd: (log) =>
      console.error(
        `${name}: epoch ${log.epoch + 1} loss ${log.loss.toFixed(4)} acc ${log.acc.toFixed(4)}` +
          (log.valAcc !== undefined ? ` val acc ${log.valAcc.toFixed(4)}` : "") + ` ${log.seconds.toFixed(0)} s`,
      ),
  });

  const cpu1 = process.cpuUsage(cpu0);
  const trainCpuSeconds = (cpu1.user + cpu1.system) / 1e6;
  const te = performance.now();
  const sums: Record<string, { mass: number; point: number; n: number; size: number[] }> = {};
  let correct = 0, lossSum = 0, seen = 0;
  for (const b of batches(testSet, { batchSize: 250 })) {
    const cap = captureAttention(() => model.predict(b.xs, { batchSize: b.indices.length }) as Tensor);
    if (!attention) {
      // baseline: the local ink density of the input (8x8 mean filter, stride 4: a 15x15 map)
      const ink = tf.tidy(() => tf.avgPool(b.xs, 8, 4, "same"));
      const s = localisationScores(ink, b.boxes.map((bx) => bx[0]), { imageHeight: 60, imageWidth: 60 });
      const acc = sums["ink"] ??= { mass: 0, point: 0, n: 0, size: ink.shape.slice(1, 3) };
      acc.mass += s.massInBox * s.count;
      acc.point += s.pointing * s.count;
      acc.n += s.count;
      ink.dispose();
    }
    const [l, c] = tf.tidy(() => [
      softmaxCrossEntropy(b.ys, cap.result).dataSync()[0],
      tf.sum(tf.cast(tf.equal(tf.argMax(b.ys, -1), tf.argMax(cap.result, -1)), "float32")).dataSync()[0],
    ]);
    lossSum += l * b.indices.length;
    correct += c;
    seen += b.indices.length;
    for (const [layer, maps] of Object.entries(cap.maps)) {
      const spatial = maps.spatial;
      if (!spatial || spatial.shape.length !== 4) continue;
      const s = localisationScores(spatial, b.boxes.map((bx) => bx[0]), { imageHeight: 60, imageWidth: 60 });
      const acc = sums[layer] ??= { mass: 0, point: 0, n: 0, size: spatial.shape.slice(1, 3) };
      acc.mass += s.massInBox * s.count;
      acc.point += s.pointing * s.count;
      acc.n += s.count;
    }
    cap.dispose();
    cap.result.dispose();
    disposeBatch(b);
  }
  const localisation: Result["localisation"] = {};
  for (const [layer, s] of Object.entries(sums)) {
    localisation[layer] = { massInBox: s.mass / s.n, pointing: s.point / s.n, mapSize: s.size };
  }
  const evalSeconds = (performance.now() - te) / 1000;
  const test = { acc: correct / seen, loss: lossSum / seen };
  const out: Result = {
    name,
    status: "ok",
    testError: 1 - test.acc,
    testLoss: test.loss,
    params,
    trainSeconds: result.seconds,
    trainCpuSeconds,
    evalSeconds,
    cpuSeconds: (() => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1e6;
    })(),
    epochs: result.epochs,
    history: result.history,
    localisation,
    backend: backend.name,
  };
  if (a.save) {
    const dir = `${a.modelsDir}/cluttered_${name}`;
    await model.save(fileIO(dir));
    await Deno.writeTextFile(
      `${dir}/meta.json`,
      JSON.stringify(
        {
          name: `cluttered_${name}`,
          attention,
          task: "60x60 cluttered MNIST (4 patches of 8x8), 10 classes; input [N,60,60,1] in [0,1]; output logits",
          command: commandOf(a, name),
          testSet: "clutteredMnist(MNIST test, { size: 60, clutter: 4, patch: 8, seed: 12345, count: " + a.test + " })",
          testError: out.testError,
          params,
          trainSeconds: out.trainSeconds,
          trainCpuSeconds: out.trainCpuSeconds,
          epochs: out.epochs,
          localisation,
          backend: backend.name,
        },
        null,
        1,
      ) + "\n",
    );
  }
  model.dispose();
  if (tf.memory().numTensors > 50) console.error(`${name}: ${tf.memory().numTensors} tensors left`);
  return out;
}

function pct(x: number | undefined, digits = 1): string {
  return x === undefined ? "-" : (100 * x).toFixed(digits);
}

function table(results: Result[]): string {
  // the attention layers with a spatial map in any model, by stage
  const layers = [...new Set(results.flatMap((r) => Object.keys(r.localisation ?? {})))]
    .filter((l) => l !== "ink").sort();
  const names = layers.map((l) => l.replace("_att", "")).join("/");
  const rows = [[
    "model",
    "test error %",
    "params",
    "train s (wall)",
    "train s (CPU)",
    names ? `pointing % (${names})` : "pointing %",
    names ? `mass in box % (${names})` : "mass in box %",
  ]];
  for (const r of results) {
    if (r.status !== "ok") {
      rows.push([
        r.name,
        r.status === "failed" ? `failed: ${r.error?.split("\n")[0].slice(0, 60)}` : r.status,
        "",
        "",
        "",
        "",
        "",
      ]);
      continue;
    }
    const loc = r.localisation ?? {};
    const has = layers.some((l) => loc[l]);
    rows.push([
      r.name,
      pct(r.testError, 2),
      String(r.params),
      r.trainSeconds!.toFixed(0),
      r.trainCpuSeconds!.toFixed(0),
      has ? layers.map((l) => pct(loc[l]?.pointing)).join(" / ") : "-",
      has ? layers.map((l) => pct(loc[l]?.massInBox)).join(" / ") : "-",
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => "| " + r.map((x, c) => x.padEnd(widths[c])).join(" | ") + " |";
  return [line(rows[0]), "| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |", ...rows.slice(1).map(line)]
    .join("\n");
}

async function main() {
  const a = parseArgs(Deno.args);
  if (a.worker) {
    let r: Result;
    try {
      r = await runWorker(a, a.worker);
    } catch (e) {
      r = { name: a.worker, status: "failed", error: String((e as Error)?.stack ?? e) };
    }
    await Deno.mkdir(a.out, { recursive: true });
    await Deno.writeTextFile(`${a.out}/${a.worker}.json`, JSON.stringify(r, null, 1));
    return;
  }
  const t0 = performance.now();
  const info = await initExperimentBackend();
  console.log(
    `cluttered MNIST 60x60: ${a.models.length} models, ${a.train} training samples x ${a.epochs} epochs, ` +
      `${a.test} test samples, backend ${info.name}, ${a.jobs} job(s)`,
  );
  await Deno.mkdir(a.out, { recursive: true });
  const results = new Map<string, Result>();
  const queue = a.models.filter((m) => {
    if (m !== "plain" && attentionPlug(m) === "not registered") {
      results.set(m, { name: m, status: "not registered" });
      return false;
    }
    return true;
  });
  const self = new URL(import.meta.url).pathname;
  const passOn = Deno.args.filter((x, i, all) => x !== "--models" && all[i - 1] !== "--models");
  const runOne = async (name: string) => {
    const cmd = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", self, ...passOn, "--worker", name],
      stdout: "inherit",
      stderr: "inherit",
    });
    const { code } = await cmd.output();
    try {
      results.set(name, JSON.parse(await Deno.readTextFile(`${a.out}/${name}.json`)));
    } catch {
      results.set(name, { name, status: "failed", error: `worker exited with ${code}` });
    }
    const r = results.get(name)!;
    console.log(
      r.status === "ok"
        ? `${name}: test error ${pct(r.testError, 2)}%, ${r.trainSeconds!.toFixed(0)} s`
        : `${name}: ${r.status} ${r.error ?? ""}`,
    );
  };
  if (a.report) queue.length = 0;
  for (const m of a.models) {
    if (!a.report || results.has(m)) continue;
    try {
      results.set(m, JSON.parse(await Deno.readTextFile(`${a.out}/${m}.json`)));
    } catch {
      results.set(m, { name: m, status: "failed", error: `no result in ${a.out}/${m}.json` });
    }
  }
  const pending = [...queue];
  await Promise.all(
    Array.from({ length: Math.max(1, a.jobs) }, async () => {
      while (pending.length) await runOne(pending.shift()!);
    }),
  );
  const ordered = a.models.map((m) => results.get(m)!);
  const ink = ordered.find((r) => r.localisation?.ink)?.localisation?.ink;
  const md = table(ordered);
  const seconds = (performance.now() - t0) / 1000;
  console.log("\n" + md);
  const sizes = new Map<string, string>();
  for (const r of ordered) {
    for (const [l, v] of Object.entries(r.localisation ?? {})) sizes.set(l, v.mapSize.join("x"));
  }
  const sizeText = [...sizes].filter(([l]) => l !== "ink").sort().map(([l, s]) => `${l.replace("_att", "")} ${s}`);
  console.log(
    `\ntotal ${(seconds / 60).toFixed(1)} min; pointing and mass in box: spatial map of the attention layer after ` +
      `each stage (${sizeText.join(", ")}) against the digit's box; "-": no spatial map (channel attention)`,
  );
  const cpu = ordered.reduce((t, r) => t + (r.cpuSeconds ?? (r.trainCpuSeconds ?? 0) + (r.evalSeconds ?? 0)), 0);
  const cores = Math.min(a.jobs, navigator.hardwareConcurrency ?? 1);
  console.log(
    `CPU time of all models (whole worker processes) ${(cpu / 60).toFixed(1)} min: about ` +
      `${(cpu / 60 / Math.max(1, cores)).toFixed(1)} min of wall time on ${cores} idle core(s)`,
  );
  if (ink) {
    console.log(
      `baseline without a model: the input's ink density (8x8 mean filter, 15x15 map) points into the box in ` +
        `${pct(ink.pointing)}% of test images, mass in box ${pct(ink.massInBox)}%`,
    );
  }
  await Deno.writeTextFile(`${a.out}/table.md`, md + "\n");
  await Deno.writeTextFile(`${a.out}/results.json`, JSON.stringify({ args: a, seconds, results: ordered }, null, 1));
}

if (import.meta.main) await main();
