// The experiment scripts' option parser (experiments/cli.ts): kebab-case flags for camelCase keys,
// checked numbers, converters, and Errors naming the script for what it cannot take.
import assert from "node:assert/strict";
import { numberList, parseOptions } from "../experiments/cli.ts";

const defaults = { epochs: 3, learningRate: 1e-3, save: false, out: ".out", models: ["a"], batchNorm: false };
const spec = {
  script: "x.ts",
  names: { batchNorm: "bn" },
  convert: { models: (t: string) => t.split(",") },
};

Deno.test("parseOptions: defaults, kebab-case flags, booleans, numbers, strings and converters", () => {
  assert.deepEqual(parseOptions([], defaults, spec), defaults);
  const a = parseOptions(
    ["--epochs", "5", "--learning-rate=2e-3", "--save", "--out", "o", "--models", "b,c", "--bn"],
    defaults,
    spec,
  );
  assert.deepEqual(a, { epochs: 5, learningRate: 2e-3, save: true, out: "o", models: ["b", "c"], batchNorm: true });
  assert.equal(defaults.epochs, 3, "the defaults are not modified");
  assert.deepEqual(numberList("1,2.5", "--x"), [1, 2.5]);
});

Deno.test("parseOptions: unknown options, missing values, bad numbers and positionals are Errors naming the script", () => {
  assert.throws(() => parseOptions(["--epoch", "5"], defaults, spec), /x\.ts: .*--epoch.*options: --epochs/);
  assert.throws(() => parseOptions(["--epochs"], defaults, spec), /x\.ts: .*--epochs/);
  assert.throws(() => parseOptions(["--epochs", "five"], defaults, spec), /--epochs takes a number, got 'five'/);
  assert.throws(() => parseOptions(["--epochs", ""], defaults, spec), /--epochs takes a number/);
  assert.throws(() => parseOptions(["stray"], defaults, spec), /x\.ts: /);
  assert.throws(() => parseOptions(["--batch-norm"], defaults, spec), /x\.ts: .*--batch-norm/, "renamed flags only");
  assert.throws(() => numberList("1,,2", "--x"), /--x takes a number, got ''/);
});
