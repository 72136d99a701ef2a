#!/usr/bin/env python3
"""PyTorch side of `deno task bench:torch` (bench/torch_compare.ts drives it).

A line-oriented JSON server on stdin/stdout, so that the Deno driver can interleave the two
frameworks in one run: it sets a workload up on both sides, then alternates rounds of timed
repetitions. Requests:

  {"op": "hello", "threads": 2}            -> {"torch": "1.13.1", "threads": 2}
  {"op": "setup", "id": "...", "spec": {}} -> {"ok": true, "out": [shape]} or {"error": "..."}
  {"op": "run", "id": "...", "reps": 3, "warmup": 1}
                                           -> {"times": [seconds, ...], "cpu": [process CPU seconds, ...]}
  {"op": "free", "id": "..."}              -> {"ok": true}

Specs (shapes are NHWC as attnkit's, converted to NCHW here):
  {"kind": "conv", "input": [N,H,W,C], "filters": F, "kernel": K}
  {"kind": "resnet", "depth": 18|50, "input": [N,H,W,3], "attention": null|"se", "train": bool}
  {"kind": "mechanism", "module": fixture module name, "config": fixture (PyTorch) config,
   "inputs": [[...], ...], "backward": bool}

The mechanisms are the reference modules of tests/fixtures/make_local_fixtures*.py (the PyTorch
structures attnkit's fixtures check), built from the same configs. Needs Debian's python3-torch.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))

import make_local_fixtures as f0  # noqa: E402
import make_local_fixtures_h3a as f3a  # noqa: E402
import make_local_fixtures_h3b as f3b  # noqa: E402
import make_local_fixtures_h3c as f3c  # noqa: E402
import make_local_fixtures_h4a as f4a  # noqa: E402
import make_local_fixtures_h4b as f4b  # noqa: E402
import make_local_fixtures_h5 as f5  # noqa: E402


# --- ResNets (torchvision layout, optional SE after the last BN of each block) -------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, se):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = f0.SELayer(planes, 16) if se else None
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        if self.se is not None:
            y = self.se(y)
        return F.relu(y + (x if self.down is None else self.down(x)), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, se):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se = f0.SELayer(out, 16) if se else None
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        if self.se is not None:
            y = self.se(y)
        return F.relu(y + (x if self.down is None else self.down(x)), inplace=True)


def resnet(depth, se=False, classes=1000):
    counts, block = {18: ([2, 2, 2, 2], BasicBlock), 34: ([3, 4, 6, 3], BasicBlock),
                     50: ([3, 4, 6, 3], Bottleneck), 101: ([3, 4, 23, 3], Bottleneck)}[depth]
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, n in enumerate(counts):
        for i in range(n):
            b = block(cin, 64 * 2 ** stage, 2 if stage > 0 and i == 0 else 1, se)
            cin = 64 * 2 ** stage * block.expansion
            layers.append(b)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


# --- mechanisms: fixture module name -> (builder from the fixture config, forward) ----------------

def _sdpa_run(cfg):
    heads = cfg["num_heads"]
    mask = f5.causal
    return lambda q, k, v: f5.masked_sdpa(q, k, v, heads, allowed=mask(q.shape[1], k.shape[1]) if cfg.get("causal")
                                          else None)[0]


def _sparse_run(cfg):
    m = f5.strided_mask(cfg["seq_len"], cfg["stride"], cfg["local_window"], cfg["pattern_mode"], cfg["causal"])
    return lambda q, k, v: f5.masked_sdpa(q, k, v, cfg["num_heads"], allowed=m)[0]


def _mha(cfg):
    m = nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], bias=cfg.get("bias", True), batch_first=True)
    return m, lambda *xs: m(xs[0], xs[-1] if len(xs) > 1 else xs[0], xs[-1] if len(xs) > 1 else xs[0],
                             need_weights=False)[0]


def _encoder(cfg):
    m = nn.TransformerEncoderLayer(cfg["d_model"], cfg["nhead"], cfg["dim_feedforward"], cfg["dropout"],
                                   activation=cfg.get("activation", "relu"), batch_first=True,
                                   norm_first=cfg.get("norm_first", False))
    return m, None


def _module(m):
    return m, None


MECHANISMS = {
    "se": lambda c: _module(f0.SELayer(c["channel"], c["reduction"], c.get("bias", False))),
    "eca": lambda c: _module(f0.ECALayer(c["channel"], c["k_size"])),
    "cbam": lambda c: _module(f0.CBAM(c["gate_channels"], c["reduction_ratio"], tuple(c["pool_types"]),
                                      c["no_spatial"])),
    "cbam_simple_relu": lambda c: _module(f0.CBAMSimple(c["channel"], c["ratio"], relu=True)),
    "scse": lambda c: _module(f0.SCSEModule(c["ch"], c["re"], c["ch"])),
    "gc": lambda c: _module(f4b.ContextBlock(c["inplanes"], c["ratio"], c["pooling_type"], tuple(c["fusion_types"]))),
    "cc": lambda c: _module(f4b.RCCA(c["in_dim"], c["recurrence"])),
    "apnb": lambda c: _module(f4b.APNB(c["in_channels"], c["out_channels"], c["key_channels"], c["value_channels"],
                                       c["dropout"], tuple(c["sizes"]), tuple(c["psp_size"]))),
    "afnb": lambda c: _module(f4b.AFNB(c["low_in_channels"], c["high_in_channels"], c["out_channels"],
                                       c["key_channels"], c["value_channels"], c["dropout"])),
    "ocr": lambda c: _module(f4b.OCRHead(c["in_channels"], c["key_channels"], c["out_channels"], c.get("scale", 1),
                                         c["dropout"])),
    "dnl": lambda c: _module(f4b.NonLocal2dBn(**c)),
    "fca": lambda c: _module(f3b.Fca(**c)),
    "a2_paper": lambda c: _module(f3b.A2Paper(c["in_channels"], c["c_m"], c["c_n"])),
    "gsop_attention": lambda c: _module(f3b.GSoPAttention(c["channels"], c["att_dim"], c["DR_stride"])),
    "gsop_bottleneck": lambda c: _module(f3b.GSoPBottleneck(c["inplanes"], c["planes"], c["stride"], c["att_dim"])),
    "rga": lambda c: _module(f3b.RGA(**c)),
    "nonlocal_embedded": lambda c: _module(f4a.NonLocalND(c["in_channels"], c["inter_channels"], c["dimension"],
                                                          c["sub_sample"], c["bn_layer"], "embedded")),
    "danet_pam": lambda c: _module(f4a.PAM(c["in_dim"])),
    "danet_cam": lambda c: _module(f4a.CAM()),
    "sagan": lambda c: _module(f4a.PAM(c["in_dim"])),
    "se_resnet_block": lambda c: _module(f3c.SEBasicBlock(c["inplanes"], c["planes"], c["stride"], None,
                                                          c["reduction"])),
    "se_bottleneck": lambda c: _module(f3c.SEBottleneck(c["inplanes"], c["planes"], c["stride"], None,
                                                        c["reduction"])),
    "residual_attention": lambda c: _module(f3c.AttentionModuleStage1(c["in_channels"], c["out_channels"],
                                                                      tuple(c["size1"]), tuple(c["size2"]),
                                                                      tuple(c["size3"]))),
    "bam": lambda c: _module(f3a.BAMRef(c["gate_channel"], c["reduction_ratio"], c["dilation_conv_num"],
                                        c["dilation_val"])),
    "sk": lambda c: _module(f3a.SKRef(c["features"], c["M"], c["G"], c["r"], c["stride"], c["L"])),
    "spa_scaled": lambda c: _module(f3a.SPARef(c["in_channel"], c["channel"], c["reduction"], output="scaled")),
    "ge": lambda c: _module(f3a.GERef(c["channels"], feat_size=c.get("feat_size"), extra_params=c["extra_params"],
                                      extent=c["extent"], use_mlp=c.get("use_mlp", True))),
    "spatial_weights": lambda c: _module(f3a.SpatialWeightsRef(c["channels"], c["hidden"])),
    "sdpa_causal": lambda c: (None, _sdpa_run(c)),
    "mha": _mha,
    "sparse_strided": lambda c: (None, _sparse_run(c)),
    "bahdanau": lambda c: (lambda m: (m, lambda q, k: m(q, k)[0]))(
        f5.BahdanauAttention(c["query_dim"], c["key_dim"], c["attn_dim"])),
    "transformer_encoder": _encoder,
}


def nchw(shape):
    return [shape[0], shape[3], shape[1], shape[2]] if len(shape) == 4 else list(shape)


class Workload:
    def __init__(self, spec):
        self.spec = spec
        kind = spec["kind"]
        g = torch.Generator().manual_seed(0)
        self.params = []
        if kind == "conv":
            n, h, w, c = spec["input"]
            k = spec["kernel"]
            self.module = nn.Conv2d(c, spec["filters"], k, 1, k // 2, bias=False).eval()
            self.inputs = [torch.randn(n, c, h, w, generator=g)]
            self.train = False
        elif kind == "resnet":
            self.module = resnet(spec["depth"], spec.get("attention") == "se")
            self.inputs = [torch.randn(*nchw(spec["input"]), generator=g)]
            self.train = spec.get("train", False)
            if self.train:
                self.module.train()
                self.labels = torch.randint(0, 1000, (spec["input"][0],), generator=g)
                self.opt = torch.optim.SGD(self.module.parameters(), lr=0.01, momentum=0.9)
            else:
                self.module.eval()
        elif kind == "mechanism":
            module, fn = MECHANISMS[spec["module"]](spec["config"])
            self.module = module
            self.fn = fn if fn is not None else module
            self.inputs = [torch.randn(*nchw(s), generator=g) for s in spec["inputs"]]
            self.train = spec.get("backward", False)
            if module is not None:
                module.train(self.train)
                if not self.train and hasattr(module, "eval"):
                    module.eval()
                self.params = [p for p in module.parameters() if p.requires_grad]
        else:
            raise ValueError(f"unknown kind {kind}")

    def step(self):
        kind = self.spec["kind"]
        if kind == "resnet" and self.train:
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.module(self.inputs[0]), self.labels)
            loss.backward()
            self.opt.step()
            return None
        if kind == "mechanism" and self.train:
            for p in self.params:
                p.grad = None
            out = self.fn(*self.inputs)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.mean().backward()
            return None
        with torch.no_grad():
            out = self.module(*self.inputs) if kind != "mechanism" else self.fn(*self.inputs)
        return out

    def out_shape(self):
        out = self.step()
        if out is None:
            return None
        out = out[0] if isinstance(out, (tuple, list)) else out
        s = list(out.shape)
        return [s[0], s[2], s[3], s[1]] if len(s) == 4 else s


def main():
    workloads = {}
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "hello":
                torch.set_num_threads(int(req.get("threads") or torch.get_num_threads()))
                res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
            elif op == "setup":
                w = Workload(req["spec"])
                workloads[req["id"]] = w
                res = {"ok": True, "out": w.out_shape()}
            elif op == "run":
                w = workloads[req["id"]]
                for _ in range(int(req.get("warmup", 0))):  # untimed: wakes the worker threads
                    w.step()
                times, cpu = [], []
                for _ in range(int(req.get("reps", 1))):
                    t0, c0 = time.perf_counter(), time.process_time()
                    w.step()
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                res = {"times": times, "cpu": cpu}
            elif op == "free":
                workloads.pop(req["id"], None)
                res = {"ok": True}
            else:
                res = {"error": f"unknown op {op}"}
        except Exception as e:  # reported to the driver, which marks the workload
            res = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
