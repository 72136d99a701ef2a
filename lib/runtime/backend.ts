/**
 * Choosing the TensorFlow.js backend once per process: `ATTNKIT_BACKEND` (or
 * an explicit argument) wins; otherwise tfjs-node(-gpu), then WebGPU, then
 * wasm, then cpu. Also registers the kernels training needs.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { cpuBackend } from "./kernels/cpu_fallback.ts";
import { registerTrainingKernels } from "./kernels/register.ts";
import { containGradientErrors } from "./gradient_errors.ts";
import { installLazyFusedConvGradients } from "./fused_conv_grad.ts";
import { registerMergedTranspose } from "./kernels/transpose.ts";
import { registerStableDivGradient, registerZeroGradients } from "./gradients.ts";
import { initThreadedWasm, MAX_WASM_THREADS } from "./wasm_threads.ts";

/**
 * A backend attnkit can pick: "tensorflow" (tfjs-node-gpu / tfjs-node,
 * libtensorflow), "webgpu", "wasm" (XNNPACK, SIMD) or "cpu" (plain JS).
 */
export type BackendName = "tensorflow" | "webgpu" | "wasm" | "cpu";

/** The backends in automatic-choice order. */
export const BACKEND_NAMES: readonly BackendName[] = [
  "tensorflow",
  "webgpu",
  "wasm",
  "cpu",
];

/** The backend in use and why it was chosen. */
export interface BackendInfo {
  /** tfjs backend name, as `tf.getBackend()` reports it. */
  name: string;
  /** Human-readable reason, e.g. "ATTNKIT_BACKEND unset; no WebGPU adapter". */
  reason: string;
  /** wasm only: the threads XNNPACK uses (1 = the single-threaded build). */
  threads?: number;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /** Force this backend (overrides `ATTNKIT_BACKEND`); switches if different. */
  backend?: BackendName;
  /** Do not print the "attnkit: backend ..." line. */
  quiet?: boolean;
  /**
   * wasm threads (overrides `ATTNKIT_WASM_THREADS`): 1 for the single-threaded SIMD build, 2..8
   * for the threaded one. Default: the logical core count (`navigator.hardwareConcurrency`),
   * at most 8, but 1 when the 1-minute load average (read with `--allow-sys`) is at least the
   * core count minus one half: on busy cores every parallel kernel waits for its slowest thread.
   * Only takes effect when wasm is first initialised in the process.
   */
  threads?: number;
}

/** Outcome of trying one backend: `ok`, or why not. */
type Attempt = { ok: true; detail?: string; threads?: number } | { ok: false; why: string };

let current: Promise<BackendInfo> | undefined;
let currentInfo: BackendInfo | undefined;

/**
 * Pick and initialise the tfjs backend, once. Later calls return the same
 * info object; a call with an explicit, different `backend` switches.
 *
 * Order: `options.backend`, else env var `ATTNKIT_BACKEND`, else automatic:
 * 1. tfjs-node-gpu, then tfjs-node, by dynamic import of the bare specifiers
 *    `@tensorflow/tfjs-node-gpu` / `@tensorflow/tfjs-node` (not in the static
 *    graph; to enable, add one to deno.json "imports" as
 *    `npm:@tensorflow/tfjs-node@4.22.0` and allow its install script);
 * 2. WebGPU when `navigator.gpu` gives a hardware adapter and
 *    `tf.setBackend("webgpu")` succeeds (software adapters such as llvmpipe
 *    are only used when asked for by name);
 * 3. wasm (SIMD; multi-threaded with one XNNPACK thread per core, see `threads` and
 *    `wasm_threads.ts`, falling back to one thread if the threaded build fails); 4. cpu.
 *
 * Prints one line to stderr (unless `quiet`), e.g.
 * `attnkit: backend wasm (ATTNKIT_BACKEND unset; tfjs-node not installed; no WebGPU adapter)`,
 * and calls {@link registerTrainingKernels}, {@link containGradientErrors} and
 * {@link registerZeroGradients}, {@link registerStableDivGradient},
 * {@link installLazyFusedConvGradients} and {@link registerMergedTranspose}.
 *
 * @param options forced backend and/or quiet.
 * @returns the chosen backend and the reason.
 * @throws Error if the requested backend (option or `ATTNKIT_BACKEND`) is
 *   unknown or fails to initialise; the message names it and says why.
 */
export async function initBackend(
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  if (current != null) {
    const info = await current.catch(() => undefined);
    if (info != null && (!options.backend || options.backend === info.name)) {
      return info;
    }
  }
  const previous = current; // only ever a successful pick
  const pending = choose(options);
  current = pending;
  try {
    currentInfo = await pending;
    return currentInfo;
  } catch (err) {
    if (current === pending) current = previous; // tfjs keeps the old backend too
    throw err;
  }
}

/**
 * The backend chosen by {@link initBackend}, or `undefined` before it ran.
 *
 * @returns the memoised info.
 */
export function getBackendInfo(): BackendInfo | undefined {
  return currentInfo;
}

/** Read an environment variable without prompting; note why if it cannot be read. */
function readEnv(variable = "ATTNKIT_BACKEND"): { value?: string; note: string } {
  try {
    const perm = Deno.permissions.querySync({ name: "env", variable });
    if (perm.state !== "granted") {
      return { note: `${variable} not readable (no --allow-env)` };
    }
    const value = Deno.env.get(variable)?.trim().toLowerCase();
    return value ? { value, note: `${variable}=${value}` } : { note: `${variable} unset` };
  } catch {
    return { note: `${variable} unset` };
  }
}

async function choose(options: InitBackendOptions): Promise<BackendInfo> {
  const env = readEnv();
  const requested = options.backend ?? env.value;
  let info: BackendInfo;
  if (requested != null) {
    const source = options.backend != null ? `initBackend({ backend: "${requested}" })` : env.note;
    if (!(BACKEND_NAMES as readonly string[]).includes(requested)) {
      throw new Error(
        `attnkit: unknown backend "${requested}" (from ${source}); ` +
          `expected one of ${BACKEND_NAMES.join(", ")}`,
      );
    }
    const got = await attempt(requested as BackendName, false, options);
    if (!got.ok) {
      throw new Error(
        `attnkit: backend "${requested}" (from ${source}) failed to ` +
          `initialise: ${got.why}`,
      );
    }
    info = { name: tf.getBackend(), reason: joinNotes(source, got.detail), threads: got.threads };
  } else {
    const notes = [env.note];
    info = { name: "", reason: "" };
    for (const name of BACKEND_NAMES) {
      const got = await attempt(name, true, options);
      if (got.ok) {
        info = {
          name: tf.getBackend(),
          reason: joinNotes(...notes, got.detail),
          threads: got.threads,
        };
        break;
      }
      notes.push(got.why);
    }
  }
  registerTrainingKernels();
  containGradientErrors();
  registerZeroGradients();
  registerStableDivGradient();
  installLazyFusedConvGradients();
  registerMergedTranspose();
  if (!options.quiet) {
    console.error(`attnkit: backend ${info.name} (${info.reason})`);
  }
  return info;
}

function joinNotes(...notes: (string | undefined)[]): string {
  return notes.filter((n) => n).join("; ");
}

function attempt(name: BackendName, auto: boolean, options: InitBackendOptions): Promise<Attempt> {
  switch (name) {
    case "tensorflow":
      return tryTensorflow();
    case "webgpu":
      return tryWebgpu(auto);
    case "wasm":
      return tryWasm(options.threads);
    case "cpu":
      return tryCpu();
  }
}

/** First line of an error, for reasons. */
function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split("\n")[0].slice(0, 200);
}

async function tryTensorflow(): Promise<Attempt> {
  const why: string[] = [];
  for (const pkg of ["tfjs-node-gpu", "tfjs-node"]) {
    // A variable specifier keeps it out of the static graph and the lock file.
    const spec = `@tensorflow/${pkg}`;
    try {
      await import(spec);
    } catch (err) {
      const msg = firstLine(err);
      const missing = /not a dependency|import map|Cannot find|not found/i
        .test(msg);
      why.push(missing ? `${pkg} not installed` : `${pkg} failed: ${msg}`);
      continue;
    }
    try {
      if (await tf.setBackend("tensorflow")) return { ok: true, detail: pkg };
      why.push(`${pkg}: tf.setBackend("tensorflow") returned false`);
    } catch (err) {
      why.push(`${pkg}: ${firstLine(err)}`);
    }
  }
  const allMissing = why.every((w) => w.endsWith("not installed"));
  return {
    ok: false,
    why: allMissing ? "tfjs-node not installed" : why.join("; "),
  };
}

interface AdapterLike {
  info?: { description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

async function tryWebgpu(auto: boolean): Promise<Attempt> {
  const gpu = (globalThis.navigator as unknown as {
    gpu?: { requestAdapter(o?: object): Promise<AdapterLike | null> };
  })?.gpu;
  if (gpu == null) return { ok: false, why: "no navigator.gpu" };
  let adapter: AdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (err) {
    return {
      ok: false,
      why: `WebGPU requestAdapter failed: ${firstLine(err)}`,
    };
  }
  if (adapter == null) return { ok: false, why: "no WebGPU adapter" };
  const desc = adapter.info?.description || "unnamed adapter";
  const software = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter;
  if (auto && software) {
    return { ok: false, why: `WebGPU adapter is software (${desc}), skipped` };
  }
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
    if (!(await tf.setBackend("webgpu"))) {
      return { ok: false, why: 'tf.setBackend("webgpu") returned false' };
    }
  } catch (err) {
    return { ok: false, why: `WebGPU init failed: ${firstLine(err)}` };
  }
  return { ok: true, detail: `WebGPU adapter: ${desc}` };
}

/** The 1-minute load average, if readable without a prompt (`--allow-sys`). */
function loadAverage(): number | undefined {
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "loadavg" }).state !== "granted") return undefined;
    return Deno.loadavg()[0];
  } catch {
    return undefined;
  }
}

/**
 * The wasm thread count: option, else `ATTNKIT_WASM_THREADS`, else the logical cores (at most 8),
 * or 1 when the load average says the other cores are busy already.
 */
function wantedThreads(option?: number): { threads: number; note?: string } {
  let value = option;
  let note: string | undefined;
  if (value == null) {
    const env = readEnv("ATTNKIT_WASM_THREADS");
    if (env.value != null) {
      value = Number(env.value);
      note = env.note;
    }
  }
  if (value == null) {
    const cores = navigator.hardwareConcurrency ?? 1;
    const load = loadAverage();
    value = cores;
    if (cores > 1 && load != null && load >= cores - 0.5) {
      // measured on a 2-core machine at load 6: every parallel kernel waits for its slowest
      // thread, and 2 threads were slower than 1 (ResNet-18 forward 1.9 s vs 1.2 s)
      value = 1;
      note = `load average ${load.toFixed(1)} on ${cores} cores, so one thread (ATTNKIT_WASM_THREADS to choose)`;
    }
  }
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`attnkit: wasm threads must be a positive integer, got ${value}${note ? ` (${note})` : ""}`);
  }
  return { threads: Math.min(value, MAX_WASM_THREADS), note };
}

async function tryWasm(threadsOption?: number): Promise<Attempt> {
  let wasm;
  try {
    wasm = await import("@tensorflow/tfjs-backend-wasm");
  } catch (err) {
    return { ok: false, why: `wasm init failed: ${firstLine(err)}` };
  }
  const notes: string[] = [];
  // deno-lint-ignore no-explicit-any
  const initialised = (tf.engine() as any).registry?.wasm != null;
  if (!initialised) {
    const { threads, note } = wantedThreads(threadsOption);
    if (note) notes.push(note);
    if (threads > 1) {
      try {
        await initThreadedWasm(threads);
      } catch (err) {
        notes.push(`threaded wasm failed (${firstLine(err)}), one thread`);
      }
    }
  }
  try {
    if (!(await tf.setBackend("wasm"))) {
      return { ok: false, why: 'tf.setBackend("wasm") returned false' };
    }
  } catch (err) {
    return { ok: false, why: `wasm init failed: ${firstLine(err)}` };
  }
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const threads = wasm.getThreadsCount();
  const detail = joinNotes(
    simd ? "wasm SIMD" : "wasm without SIMD",
    `${threads} thread${threads > 1 ? "s" : ""}`,
    ...notes,
  );
  return { ok: true, detail, threads };
}

async function tryCpu(): Promise<Attempt> {
  cpuBackend(); // initialise it with the tfjs-node banner switched off
  if (!(await tf.setBackend("cpu"))) {
    return { ok: false, why: 'tf.setBackend("cpu") returned false' };
  }
  return { ok: true };
}
