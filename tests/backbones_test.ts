/**
 * The backbones: where each placement puts the attention and under which PyTorch names, output
 * strides and dilation, the torchvision state_dict round trip, the segmentation heads' outputs,
 * the LTPA VGG's maps, the plain layers, and the Errors.
 */
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import assert from "node:assert/strict";
import {
  captureAttention,
  conv2dTorch,
  ConvBNAct,
  dilatedFCN,
  loadTorchvision,
  ltpaVgg16,
  maxPool2dTorch,
  Pool2d,
  ResizeLike,
  resnet,
  ResNetBlock,
  torchNames,
  torchvisionStateDict,
} from "../mod.ts";
import { initBackend } from "../lib/runtime/backend.ts";
import { maxAbsDiff } from "./support/tensors.ts";

await initBackend({ quiet: true });

/** The state_dict keys of a model, its tensors disposed. */
function keysOf(model: tfl.LayersModel): string[] {
  const sd = torchvisionStateDict(model);
  const keys = Object.keys(sd);
  tf.dispose(Object.values(sd));
  return keys;
}

const small = { depth: 18, numClasses: 4, inputShape: [32, 32, 3] as [number, number, number] };

Deno.test("resnet: placement 'block' puts the plug in every block, before the addition, under <block>.<name>", () => {
  const model = resnet({ ...small, attention: { name: "se", config: { reduction: 4 } } });
  const keys = keysOf(model);
  for (const b of ["layer1.0", "layer1.1", "layer4.1"]) {
    assert.ok(keys.includes(`${b}.se.fc.0.weight`), `${b}.se missing`);
  }
  assert.ok(keys.includes("conv1.weight") && keys.includes("bn1.running_var") && keys.includes("fc.bias"));
  model.dispose();
});

Deno.test("resnet: stages and per-stage configs (GC in c3-c5; ECA's kernel sizes 3, 5, 5, 7)", () => {
  const gc = resnet({ ...small, attention: { name: "gc", config: { reduction: 4 }, stages: [2, 3, 4] } });
  const keys = keysOf(gc);
  assert.ok(!keys.some((k) => k.startsWith("layer1.") && k.includes(".gc.")));
  assert.ok(keys.some((k) => k.startsWith("layer2.0.gc.")));
  gc.dispose();
  const eca = resnet({
    ...small,
    attention: { name: "eca", stageConfigs: [{ kSize: 3 }, { kSize: 5 }, { kSize: 5 }, { kSize: 7 }] },
  });
  const sd = torchvisionStateDict(eca);
  assert.deepEqual(sd["layer1.0.eca.conv.weight"].shape, [1, 1, 3]);
  assert.deepEqual(sd["layer4.1.eca.conv.weight"].shape, [1, 1, 7]);
  tf.dispose(Object.values(sd));
  eca.dispose();
});

Deno.test("resnet: placement 'stage' adds <name>1..3 after stages 1-3 (BAM), 'after' one layer after the trunk", () => {
  const bam = resnet({ ...small, attention: { name: "bam", config: { reduction: 4 } }, placement: "stage" });
  const names = bam.layers.map((l) => l.name);
  assert.ok(["bam1", "bam2", "bam3"].every((n) => names.includes(n)) && !names.includes("bam4"));
  assert.ok(keysOf(bam).includes("bam2.channel_att.gate_c.gate_c_fc_0.weight"));
  assert.ok(names.indexOf("bam1") > names.indexOf("layer1.1") && names.indexOf("bam1") < names.indexOf("layer2.0"));
  bam.dispose();
  const nl = resnet({ ...small, attention: { name: "nonlocal", config: { subSample: false } }, placement: "after" });
  const keys = keysOf(nl);
  assert.ok(keys.includes("attention.g.weight") && keys.includes("attention.W.1.running_mean"));
  nl.dispose();
});

Deno.test("resnet: placement 'conv' replaces the bottleneck's 3x3 conv (SK), with the block's stride", () => {
  const model = resnet({
    depth: 50,
    blocks: [1, 1, 1, 1],
    width: 16,
    numClasses: 3,
    inputShape: [32, 32, 3],
    attention: { name: "sk", config: { groups: 4, minHidden: 8 } },
    placement: "conv",
  });
  const keys = keysOf(model);
  assert.ok(keys.includes("layer2.0.conv2.convs.1.0.weight") && keys.includes("layer2.0.conv2.fc.1.running_var"));
  assert.ok(!keys.includes("layer2.0.bn2.weight"));
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 3);
  const cap = captureAttention(() => model.predict(x) as tf.Tensor);
  assert.deepEqual(cap.result.shape, [2, 3]);
  assert.deepEqual(cap.maps["layer2.0"].selection.shape, [2, 2, 1, 1, 32]); // width 32, 2 branches
  cap.dispose();
  tf.dispose([cap.result, x]);
  model.dispose();
  assert.throws(
    () => new ResNetBlock({ block: "basic", attention: "sk", attentionAt: "conv2" }),
    /attentionAt "conv2" replaces a bottleneck's 3x3 conv/,
  );
});

Deno.test("resnet: output stride 32/16/8 (stages 4 and 3 dilate instead of striding, torchvision's)", () => {
  for (const [os, size] of [[32, 2], [16, 4], [8, 8]] as const) {
    const model = resnet({ depth: 18, numClasses: 0, inputShape: [64, 64, 3], outputStride: os });
    assert.deepEqual(model.outputs[0].shape, [null, size, size, 512], `output stride ${os}`);
    if (os === 8) {
      const cfg = (n: string) => model.getLayer(n).getConfig();
      assert.deepEqual([cfg("layer3.0").stride, cfg("layer3.0").dilation, cfg("layer3.1").dilation], [1, 1, 2]);
      assert.deepEqual([cfg("layer4.0").dilation, cfg("layer4.1").dilation], [2, 4]);
    }
    model.dispose();
  }
});

Deno.test("resnet: the torchvision state_dict round trip is exact (export, load into a fresh model)", () => {
  const a = resnet(small);
  const b = resnet(small);
  const sd = torchvisionStateDict(a);
  assert.equal(Object.keys(sd).length, 122); // torchvision resnet18's state_dict
  const report = loadTorchvision(b, sd);
  assert.equal(report.missing.length + report.unexpected.length + report.mismatched.length, 0);
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 4);
  const ya = a.predict(x) as tf.Tensor;
  const yb = b.predict(x) as tf.Tensor;
  assert.equal(maxAbsDiff(ya, yb), 0);
  assert.equal(torchNames(a)["root-stem"], "");
  tf.dispose([ya, yb, x, ...Object.values(sd)]);
  a.dispose();
  b.dispose();
});

Deno.test("resnet: Errors say what is wrong", () => {
  assert.throws(() => resnet({ depth: 19 }), /expected depth 18, 34, 50, 101 or 152/);
  assert.throws(() => resnet({ ...small, attention: "se", placement: "inside" as never }), /expected placement/);
  assert.throws(() => resnet({ ...small, attention: { name: "se", stages: [5] } }), /attention stages among 1-4/);
  assert.throws(() => resnet({ ...small, outputStride: 4 as never }), /outputStride 8, 16 or 32/);
  assert.throws(() => resnet({ ...small, attention: "nope" }), /unknown attention 'nope'/);
});

Deno.test("dilatedFCN: every head gives logits at the input size; aux outputs as documented", () => {
  const counts: Record<string, number> = { danet: 3, ccnet: 2, ocr: 2, ann: 2, nonlocal: 2 };
  for (const head of ["danet", "ccnet", "ocr", "ann", "nonlocal"] as const) {
    const model = dilatedFCN({ head, depth: 18, numClasses: 5, inputShape: [24, 40, 3], aux: true });
    assert.equal(model.outputs.length, counts[head], head);
    for (const o of model.outputs) assert.deepEqual(o.shape, [null, 24, 40, 5], head);
    model.dispose();
  }
  assert.throws(() => dilatedFCN({ head: "psp" as never }), /expected head danet, ccnet, ocr, ann, nonlocal/);
});

Deno.test("ltpaVgg16: three LTPA maps at layers 7, 10, 13 (32, 16, 8 for a 32x32 image), one projector", () => {
  const model = ltpaVgg16({ numClasses: 10 });
  const keys = keysOf(model);
  for (const k of ["conv_block1.op.0.weight", "conv_block3.op.7.running_var", "conv_block6.op.5.weight"]) {
    assert.ok(keys.includes(k), k);
  }
  assert.ok(["projector.op.weight", "attn1.op.weight", "attn3.op.weight", "dense.weight", "classify.weight"]
    .every((k) => keys.includes(k)));
  assert.equal(keys.filter((k) => k.startsWith("projector")).length, 1);
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 5);
  const cap = captureAttention(() => model.predict(x) as tf.Tensor);
  assert.deepEqual(cap.result.shape, [2, 10]);
  assert.deepEqual(cap.maps["root-attn1"].spatial.shape, [2, 32, 32, 1]);
  assert.deepEqual(cap.maps["root-attn2"].spatial.shape, [2, 16, 16, 1]);
  assert.deepEqual(cap.maps["root-attn3"].spatial.shape, [2, 8, 8, 1]);
  cap.dispose();
  tf.dispose([cap.result, x]);
  model.dispose();
  assert.throws(() => ltpaVgg16({ inputShape: [40, 40, 3] }), /multiple of 32/);
});

Deno.test("ConvBNAct, Pool2d, ResizeLike: PyTorch's conv, pooling and interpolation", () => {
  const x = tf.randomNormal([2, 9, 7, 6], 0, 1, "float32", 6) as tf.Tensor4D;
  const conv = new ConvBNAct({
    filters: 4,
    kernelSize: 3,
    stride: 2,
    dilation: 2,
    groups: 2,
    bias: true,
    batchNorm: false,
    relu: false,
  });
  const y = conv.apply(x) as tf.Tensor;
  const [k, b] = conv.getWeights();
  const want = conv2dTorch(x, k as tf.Tensor4D, b, { stride: 2, padding: 2, dilation: 2, groups: 2 });
  assert.equal(maxAbsDiff(y, want), 0);
  const pooled = new Pool2d({ poolSize: 3, stride: 2, padding: 1 }).apply(x) as tf.Tensor;
  assert.equal(maxAbsDiff(pooled, maxPool2dTorch(x, 3, 2, 1)), 0);
  const up = new ResizeLike().apply([x, tf.zeros([2, 18, 14, 1])]) as tf.Tensor;
  assert.deepEqual(up.shape, [2, 18, 14, 6]);
  assert.throws(() => new ConvBNAct({ filters: 2, convName: "cls_head" }), /underscore/);
  tf.dispose([x, y, want, pooled, up]);
  conv.dispose();
});
