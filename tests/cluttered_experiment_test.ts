// The cluttered-MNIST experiment: its --stages spelling, and a tiny end-to-end run (training,
// table, saved models with their meta.json) in a temporary folder.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { formatStages, parseStages } from "../experiments/cluttered.ts";
import { CLUTTERED_STAGES } from "../lib/train/cnn.ts";
import { fileIO } from "../lib/interop/file_io.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import "../lib/registry.ts";

Deno.test("cluttered experiment: --stages parses and prints back", () => {
  const stages = parseStages("16k5s2p,32p,64,64");
  assert.deepEqual(stages, [
    { filters: 16, kernelSize: 5, strides: 2, pool: true },
    { filters: 32, kernelSize: 3, strides: 1, pool: true },
    { filters: 64, kernelSize: 3, strides: 1, pool: false },
    { filters: 64, kernelSize: 3, strides: 1, pool: false },
  ]);
  assert.equal(formatStages(stages), "16k5s2p,32p,64,64");
  assert.deepEqual(parseStages(formatStages(CLUTTERED_STAGES)), CLUTTERED_STAGES.map((s) => ({ strides: 1, ...s })));
  assert.equal(formatStages(parseStages("8k7,24s2p")), "8k7,24s2p");
  assert.throws(() => parseStages("16k5,x3"), /--stages: expected .* got 'x3'/);
  assert.throws(() => parseStages("16q"), /got '16q'/);
});

Deno.test("cluttered experiment: a tiny run trains, prints the table and saves loadable models", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-run",
      new URL("../experiments/cluttered.ts", import.meta.url).pathname,
      ...["--models", "plain,cbam,ltpa,no_such_thing", "--train", "64", "--epochs", "1", "--val", "32"],
      ...["--test", "40", "--batch", "32", "--stages", "8k5s2p,8p,8,8", "--jobs", "1", "--save"],
      ...["--out", `${dir}/out`, "--models-dir", `${dir}/models`],
    ];
    const run = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    // the spatial maps of the attention stages (2, 3, 4 by default; LTPA 2 and 3) head the table
    assert.match(stdout, /pointing % \(s2\/s3\/s4\)/);
    assert.match(stdout, /\| no_such_thing \| not registered/);
    for (const name of ["plain", "cbam", "ltpa"]) assert.match(stdout, new RegExp(`\\| ${name} +\\| \\d+\\.\\d\\d `));

    await initBackend({ backend: "wasm", quiet: true });
    const x = tf.zeros([2, 60, 60, 1]);
    for (const name of ["plain", "cbam", "ltpa"]) {
      const meta = JSON.parse(await Deno.readTextFile(`${dir}/models/cluttered_${name}/meta.json`));
      assert.equal(
        meta.command,
        `deno task experiment:cluttered --models ${name} --train 64 --epochs 1 --batch 32 --lr 0.003 --seed 1 ` +
          "--val 32 --test 40 --stages 8k5s2p,8p,8,8 --att-stages 2,3,4 --save",
      );
      const layers = Object.keys(meta.localisation).sort();
      assert.deepEqual(
        layers,
        { plain: ["ink"], cbam: ["s2_att", "s3_att", "s4_att"], ltpa: ["s2_att", "s3_att"] }[name],
        name,
      );
      for (const l of layers) {
        const { pointing, massInBox } = meta.localisation[l];
        assert.ok(pointing >= 0 && pointing <= 1 && massInBox >= 0 && massInBox <= 1, `${name} ${l}`);
      }
      const model = await tfl.loadLayersModel(fileIO(`${dir}/models/cluttered_${name}`));
      assert.equal(model.countParams(), meta.params);
      const before = tf.memory().numTensors;
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [2, 10]);
      y.dispose();
      assert.equal(tf.memory().numTensors, before, `${name}: predict leaks`);
      model.dispose();
    }
    x.dispose();
    const results = JSON.parse(await Deno.readTextFile(`${dir}/out/results.json`)).results;
    assert.ok(results.every((r: { status: string; cpuSeconds?: number }) => r.status !== "ok" || r.cpuSeconds! > 0));
    // --report rebuilds the same table from the results left in --out, without training
    const report = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--report"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(report.code, 0);
    const table = (s: string) => s.split("\n").filter((l) => l.startsWith("|")).join("\n");
    assert.equal(table(new TextDecoder().decode(report.stdout)), table(stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
