/**
 * The experiment scripts' command lines, parsed by Node's `util.parseArgs` (built into Deno as
 * `node:util`): every key of the defaults object is an option `--kebab-case-key`; booleans are flags,
 * numbers are checked to be finite, strings are kept, and any other value (lists, pairs) goes
 * through a converter. Unknown options, missing values and positional arguments are Errors that
 * name the script.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** Converters from an option's text to its value, by key. */
export type Converters<T> = { [K in keyof T]?: (text: string, flag: string) => T[K] };

/** What {@link parseOptions} needs besides the defaults. */
export interface OptionSpec<T> {
  /** The script, for error messages (e.g. "experiments/sat_digits.ts"). */
  script: string;
  /** Converters for options that are neither numbers, strings nor flags (or have no default). */
  convert?: Converters<T>;
  /** Flags spelled otherwise than the kebab-case key (e.g. `{ batchNorm: "bn" }`). */
  names?: Partial<Record<keyof T, string>>;
  /** Options without a default (only a converter), by key. */
  optional?: (keyof T)[];
}

/** `camelCase` -> `camel-case`. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** A finite number from an option's text. */
export function numberOption(text: string, flag: string): number {
  const x = Number(text);
  if (text.trim() === "" || !Number.isFinite(x)) throw new Error(`${flag} takes a number, got '${text}'`);
  return x;
}

/** A comma-separated list of numbers. */
export function numberList(text: string, flag: string): number[] {
  return text.split(",").map((s) => numberOption(s, flag));
}

/**
 * Parses `argv` into a copy of `defaults`.
 *
 * @example
 * ```ts
 * import { parseOptions } from "./cli.ts";
 * const a = parseOptions(["--epochs", "2", "--save"], { epochs: 3, save: false, out: ".out" }, { script: "demo" });
 * // { epochs: 2, save: true, out: ".out" }
 * ```
 */
export function parseOptions<T extends object>(argv: string[], defaults: T, spec: OptionSpec<T>): T {
  const keys = [...new Set([...Object.keys(defaults), ...(spec.optional ?? []).map(String)])] as (keyof T & string)[];
  const flag = (k: keyof T & string) => spec.names?.[k] ?? kebab(k);
  const options: Record<string, { type: "boolean" | "string" }> = {};
  for (const k of keys) options[flag(k)] = { type: typeof defaults[k] === "boolean" ? "boolean" : "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (e) {
    const known = keys.map((k) => `--${flag(k)}`).join(" ");
    throw new Error(`${spec.script}: ${(e as Error).message} (options: ${known})`);
  }
  const out = { ...defaults } as Record<string, unknown>;
  for (const k of keys) {
    const v = values[flag(k)];
    if (v === undefined) continue;
    const name = `--${flag(k)}`;
    const convert = spec.convert?.[k];
    if (typeof v === "boolean") out[k] = v;
    else if (convert) out[k] = convert(v, name);
    else if (typeof defaults[k] === "number") out[k] = numberOption(v, name);
    else out[k] = v;
  }
  return out as T;
}
