/**
 * WebAssembly SIMD loops over the wasm backend's own memory: the element-wise updates of momentum
 * SGD and Adam (for `lib/train/fused_optimizers.ts`) and column sums (for `reduce_heap.ts`).
 *
 * A JavaScript loop over the heap is slower than tfjs's whole-tensor ops here (44 vs 35 ms for
 * ResNet-18's momentum update: the float32 roundings cost scalar conversions), so the loops are a
 * small WebAssembly module, assembled below and instantiated on the backend's
 * `WebAssembly.Memory`, that reads the old values and writes the new ones 4 lanes at a time with
 * `f32x4.mul` / `add` / `div` / `sqrt`. Each lane operation is the correctly rounded float32
 * operation, the same as each of tfjs's kernels (XNNPACK has no fused multiply-add in this build),
 * so the results are bit-equal to tfjs's op sequence. The last `n % 4` elements run in
 * JavaScript with `Math.fround` after each operation (also correctly rounded).
 *
 * The loops write to new tensors rather than in place: tfjs-backend-wasm caches XNNPACK's packed
 * weights per tensor id, so a filter changed in place would keep its stale packing.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { heapFloat32, heapOffset, type WasmHeapBackend } from "./wasm_heap.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** A length-prefixed vector or section payload. */
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const bytesOf = (s: string): number[] => [...leb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, payload: number[]): number[] => [id, ...leb(payload.length), ...payload];

// opcodes (WebAssembly core 2.0 and its SIMD proposal)
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
const get = (i: number) => [0x20, ...leb(i)];
const set = (i: number) => [0x21, ...leb(i)];
const tee = (i: number) => [0x22, ...leb(i)];
const I32_ADD = [0x6a], I32_MUL = [0x6c], I32_AND = [0x71], I32_SHL = [0x74], I32_EQZ = [0x45], I32_LT_U = [0x49];
const i32 = (v: number) => [0x41, ...leb(v & 0x7f) /* small non-negative constants only */];
const LOAD = [0xfd, 0x00, 0x00, 0x00], STORE = [0xfd, 0x0b, 0x00, 0x00];
const SPLAT = [0xfd, 0x13], SQRT = [0xfd, 0xe3, 0x01], ADD = [0xfd, 0xe4, 0x01];
const MUL = [0xfd, 0xe6, 0x01], DIV = [0xfd, 0xe7, 0x01];

/**
 * A function body looping `off` (a byte offset) over the first `n & ~3` elements, 16 bytes a step.
 *
 * @param n the local holding the element count.
 * @param off the local for the byte offset; `end` is `off + 1`.
 * @param prologue code before the loop (splats).
 * @param step the loop body.
 * @param locals the body's locals after the parameters.
 */
function loopBody(n: number, off: number, prologue: number[], step: number[], locals: [number, number][]): number[] {
  const end = off + 1;
  const code = [
    ...prologue,
    ...get(n),
    0x41,
    0x7c, // i32.const -4
    ...I32_AND,
    ...i32(2),
    ...I32_SHL,
    ...set(end),
    0x02,
    0x40, // block
    ...get(end),
    ...I32_EQZ,
    0x0d,
    0x00, // br_if 0
    0x03,
    0x40, // loop
    ...step,
    ...get(off),
    ...i32(16),
    ...I32_ADD,
    ...tee(off),
    ...get(end),
    ...I32_LT_U,
    0x0d,
    0x00, // br_if 0 (the loop)
    0x0b,
    0x0b, // end loop, end block
    0x0b, // end function
  ];
  const body = [...vec(locals.map(([count, type]) => [...leb(count), type])), ...code];
  return [...leb(body.length), ...body];
}

/** `base + off` (the address of the current 4 lanes of the array whose pointer is local `base`). */
const at = (base: number, off: number) => [...get(base), ...get(off), ...I32_ADD];

/**
 * momentum(w, v, g, wOut, vOut, n, m, c): `vOut = m * v + g; wOut = c * vOut + w` (pointers in
 * bytes; parameters 0-7, locals off 8, end 9, M 10, C 11, acc 12).
 */
function momentumFunction(): number[] {
  const prologue = [...get(6), ...SPLAT, ...set(10), ...get(7), ...SPLAT, ...set(11)];
  const step = [
    ...get(10),
    ...at(1, 8),
    ...LOAD,
    ...MUL,
    ...at(2, 8),
    ...LOAD,
    ...ADD,
    ...set(12),
    ...at(4, 8),
    ...get(12),
    ...STORE,
    ...at(3, 8),
    ...get(11),
    ...get(12),
    ...MUL,
    ...at(0, 8),
    ...LOAD,
    ...ADD,
    ...STORE,
  ];
  return loopBody(5, 8, prologue, step, [[2, I32], [3, V128]]);
}

/**
 * adam(w, m, v, g, wOut, mOut, vOut, n, b1, c1, b2, c2, d1, d2, eps, step):
 * `mOut = m * b1 + g * c1; vOut = v * b2 + (g * g) * c2;
 * wOut = ((mOut / d1) / (sqrt(vOut / d2) + eps)) * step + w` (parameters 0-15; locals off 16,
 * end 17, the 8 splats 18-25, G 26, M 27, V 28).
 */
function adamFunction(): number[] {
  const prologue: number[] = [];
  for (let k = 0; k < 8; k++) prologue.push(...get(8 + k), ...SPLAT, ...set(18 + k));
  const [B1, C1, B2, C2, D1, D2, EPS, STEP, G, M, V] = [18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28];
  const step = [
    ...at(3, 16),
    ...LOAD,
    ...set(G),
    ...at(5, 16),
    ...at(1, 16),
    ...LOAD,
    ...get(B1),
    ...MUL,
    ...get(G),
    ...get(C1),
    ...MUL,
    ...ADD,
    ...tee(M),
    ...STORE,
    ...at(6, 16),
    ...at(2, 16),
    ...LOAD,
    ...get(B2),
    ...MUL,
    ...get(G),
    ...get(G),
    ...MUL,
    ...get(C2),
    ...MUL,
    ...ADD,
    ...tee(V),
    ...STORE,
    ...at(4, 16),
    ...get(M),
    ...get(D1),
    ...DIV,
    ...get(V),
    ...get(D2),
    ...DIV,
    ...SQRT,
    ...get(EPS),
    ...ADD,
    ...DIV,
    ...get(STEP),
    ...MUL,
    ...at(0, 16),
    ...LOAD,
    ...ADD,
    ...STORE,
  ];
  return loopBody(7, 16, prologue, step, [[2, I32], [11, V128]]);
}

/**
 * sumRows(x, out, rows, stride, span): `out[0:span] += x[r*stride : r*stride + span]` for each of
 * `rows` rows, in row order (all in bytes; `span` a multiple of 16). Parameters 0-4; locals off 5,
 * end 6.
 */
function sumRowsFunction(): number[] {
  const code = [
    ...get(0),
    ...get(2),
    ...get(3),
    ...I32_MUL,
    ...I32_ADD,
    ...set(6),
    0x02,
    0x40, // block
    ...get(4),
    ...I32_EQZ,
    0x0d,
    0x00,
    ...get(2),
    ...I32_EQZ,
    0x0d,
    0x00,
    0x03,
    0x40, // loop (rows)
    ...i32(0),
    ...set(5),
    0x03,
    0x40, // loop (columns)
    ...at(1, 5),
    ...at(1, 5),
    ...LOAD,
    ...at(0, 5),
    ...LOAD,
    ...ADD,
    ...STORE,
    ...get(5),
    ...i32(16),
    ...I32_ADD,
    ...tee(5),
    ...get(4),
    ...I32_LT_U,
    0x0d,
    0x00,
    0x0b, // end columns
    ...get(0),
    ...get(3),
    ...I32_ADD,
    ...tee(0),
    ...get(6),
    ...I32_LT_U,
    0x0d,
    0x00,
    0x0b, // end rows
    0x0b, // end block
    0x0b, // end function
  ];
  const body = [...vec([[...leb(2), I32]]), ...code];
  return [...leb(body.length), ...body];
}

/** The module's bytes, importing `env.memory` (shared: the threaded build's memory). */
function moduleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const momentumType = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [F32], [F32]]), 0x00];
  const adamType = [0x60, ...vec([...Array(8).fill([I32]), ...Array(8).fill([F32])]), 0x00];
  const sumRowsType = [0x60, ...vec(Array(5).fill([I32])), 0x00];
  const limits = shared ? [0x03, 0x01, ...leb(65536)] : [0x00, 0x01];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([momentumType, adamType, sumRowsType])),
    ...section(2, vec([[...bytesOf("env"), ...bytesOf("memory"), 0x02, ...limits]])),
    ...section(3, vec([[0x00], [0x01], [0x02]])),
    ...section(
      7,
      vec([
        [...bytesOf("momentum"), 0x00, 0x00],
        [...bytesOf("adam"), 0x00, 0x01],
        [...bytesOf("sumRows"), 0x00, 0x02],
      ]),
    ),
    ...section(10, vec([momentumFunction(), adamFunction(), sumRowsFunction()])),
  ]);
}

interface Loops {
  momentum: (...args: number[]) => void;
  adam: (...args: number[]) => void;
  sumRows: (x: number, out: number, rows: number, stride: number, span: number) => void;
}

const instances = new WeakMap<object, Loops | null>();

/** The loops instantiated on `backend`'s memory, or `null` if that failed (no SIMD, unknown memory). */
function loopsFor(backend: Any): Loops | null {
  const wasm = backend.wasm;
  if (instances.has(wasm)) return instances.get(wasm)!;
  let loops: Loops | null = null;
  try {
    const memory = (wasm.asm?.memory ?? wasm.wasmMemory) as WebAssembly.Memory | undefined;
    if (memory instanceof WebAssembly.Memory) {
      const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
      const module = new WebAssembly.Module(moduleBytes(shared));
      loops = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Loops;
    }
  } catch {
    loops = null;
  }
  instances.set(wasm, loops);
  return loops;
}

const fr = Math.fround;

/** Byte offsets of `infos` on the heap. */
function offsets(backend: WasmHeapBackend, infos: tf.TensorInfo[]): number[] {
  return infos.map((t) => heapOffset(backend, t));
}

/** Whether {@link momentumUpdate} and {@link adamUpdate} can run on the current backend. */
export function simdUpdatesAvailable(): boolean {
  return tf.getBackend() === "wasm" && loopsFor(tf.backend()) != null;
}

/** All float32 and of one size. */
function sameFloat32(tensors: tf.Tensor[]): boolean {
  return tensors.every((t) => t.dtype === "float32" && t.size === tensors[0].size);
}

/**
 * tfjs's momentum step for one variable on wasm: `v' = m * v + g`, `w' = c * v' + w` (`c` is
 * `-learningRate`), as new tensors (see the module documentation).
 *
 * @param w the variable's value.
 * @param v its accumulation.
 * @param g its gradient.
 * @param m the momentum, a float32 value.
 * @param c minus the learning rate, a float32 value.
 * @returns `[w', v']`, or `undefined` where the loops cannot run (not wasm, not float32).
 */
export function momentumUpdate(
  w: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  m: number,
  c: number,
): [tf.Tensor, tf.Tensor] | undefined {
  if (!simdUpdatesAvailable() || !sameFloat32([w, v, g])) return undefined;
  const backend = tf.backend() as Any;
  const loops = loopsFor(backend)!;
  const wOut = backend.makeOutput(w.shape, "float32") as tf.TensorInfo;
  const vOut = backend.makeOutput(w.shape, "float32") as tf.TensorInfo;
  const [wAt, vAt, gAt, woAt, voAt] = offsets(backend, [w, v, g, wOut, vOut]);
  const n = w.size;
  loops.momentum(wAt, vAt, gAt, woAt, voAt, n, m, c);
  const heap = heapFloat32(backend);
  for (let k = n & ~3; k < n; k++) {
    const acc = fr(fr(m * heap[vAt / 4 + k]) + heap[gAt / 4 + k]);
    heap[voAt / 4 + k] = acc;
    heap[woAt / 4 + k] = fr(c * acc) + heap[wAt / 4 + k];
  }
  const engine = tf.engine();
  return [engine.makeTensorFromTensorInfo(wOut, backend), engine.makeTensorFromTensorInfo(vOut, backend)];
}

/** Adam's float32 constants for {@link adamUpdate} (each as tfjs's scalars hold it). */
export interface AdamConstants {
  /** beta1. */
  b1: number;
  /** 1 - beta1. */
  c1: number;
  /** beta2. */
  b2: number;
  /** 1 - beta2. */
  c2: number;
  /** 1 - beta1^t. */
  d1: number;
  /** 1 - beta2^t. */
  d2: number;
  /** epsilon. */
  eps: number;
  /** -learningRate. */
  step: number;
}

/**
 * tfjs's Adam step for one variable on wasm: `m' = m * b1 + g * c1`, `v' = v * b2 + g^2 * c2`,
 * `w' = ((m' / d1) / (sqrt(v' / d2) + eps)) * step + w`, as new tensors.
 *
 * @param w the variable's value.
 * @param m its first moment.
 * @param v its second moment.
 * @param g its gradient.
 * @param k the constants, float32 values.
 * @returns `[w', m', v']`, or `undefined` where the loops cannot run (not wasm, not float32).
 */
export function adamUpdate(
  w: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  k: AdamConstants,
): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!simdUpdatesAvailable() || !sameFloat32([w, m, v, g])) return undefined;
  const backend = tf.backend() as Any;
  const loops = loopsFor(backend)!;
  const outs = [0, 1, 2].map(() => backend.makeOutput(w.shape, "float32") as tf.TensorInfo);
  const [wAt, mAt, vAt, gAt, woAt, moAt, voAt] = offsets(backend, [w, m, v, g, ...outs]);
  const n = w.size;
  loops.adam(wAt, mAt, vAt, gAt, woAt, moAt, voAt, n, k.b1, k.c1, k.b2, k.c2, k.d1, k.d2, k.eps, k.step);
  const heap = heapFloat32(backend);
  for (let i = n & ~3; i < n; i++) {
    const gi = heap[gAt / 4 + i];
    const mi = fr(fr(heap[mAt / 4 + i] * k.b1) + fr(gi * k.c1));
    const vi = fr(fr(heap[vAt / 4 + i] * k.b2) + fr(fr(gi * gi) * k.c2));
    heap[moAt / 4 + i] = mi;
    heap[voAt / 4 + i] = vi;
    const denominator = fr(fr(Math.sqrt(fr(vi / k.d2))) + k.eps);
    heap[woAt / 4 + i] = fr(fr(fr(mi / k.d1) / denominator) * k.step) + heap[wAt / 4 + i];
  }
  const engine = tf.engine();
  return outs.map((o) => engine.makeTensorFromTensorInfo(o, backend)) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * Column sums on the wasm heap: `out[c] += x[r, c]` for each row `r` of a float32 `[rows, inner]`
 * block at byte offset `xAt`, into `inner` floats at `outAt` (which the caller zeroes), one row
 * after another (each column's additions in row order, float32: what tfjs's `Sum` does after its
 * transpose). The first `inner & ~3` columns run 4 lanes at a time.
 *
 * @param backend the wasm backend.
 * @param xAt byte offset of the block.
 * @param outAt byte offset of the sums.
 * @param rows rows of the block.
 * @param inner floats per row.
 * @returns the columns summed (`inner & ~3`), 0 where the loop cannot run; the caller sums the rest.
 */
export function sumRows(backend: Any, xAt: number, outAt: number, rows: number, inner: number): number {
  const loops = loopsFor(backend);
  const span = inner & ~3;
  if (loops == null || span === 0) return 0;
  loops.sumRows(xAt, outAt, rows, inner * 4, span * 4);
  return span;
}
