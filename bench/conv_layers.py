#!/usr/bin/env python3
"""PyTorch side of bench/conv_layers.ts: ResNet-18's convolutions one by one.

Reads one JSON request per line on stdin ({"size": 64, "batch": 8, "threads": 2, "reps": 5}) and
answers one JSON line per request: for every distinct convolution of a torchvision ResNet-18 at
that input size, the least wall and process-CPU milliseconds (of `reps`; the least is the
least disturbed by other processes on a shared machine) of the forward convolution, its
input gradient and its weight gradient (aten::convolution_backward with one output each: what
autograd runs), NCHW float32, as in a training step.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def layers(size):
    """(label, cin, cout, k, stride, pad, h_in, count) of ResNet-18 at size x size."""
    out = [("stem 7x7/2 3->64", 3, 64, 7, 2, 3, size, 1)]
    h = size // 4
    cin = 64
    for stage, planes in enumerate([64, 128, 256, 512]):
        stride = 1 if stage == 0 else 2
        if stride == 2:
            out.append((f"3x3/2 {cin}->{planes}", cin, planes, 3, 2, 1, h, 1))
            out.append((f"1x1/2 {cin}->{planes}", cin, planes, 1, 2, 0, h, 1))
            h //= 2
            out.append((f"3x3 {planes}->{planes}", planes, planes, 3, 1, 1, h, 3))
        else:
            out.append((f"3x3 {planes}->{planes}", planes, planes, 3, 1, 1, h, 4))
        cin = planes
    return out


def timed(fn, reps):
    fn()
    wall, cpu = [], []
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return min(wall), min(cpu)


def run(req):
    torch.set_num_threads(int(req.get("threads", 2)))
    n, size, reps = int(req.get("batch", 8)), int(req.get("size", 64)), int(req.get("reps", 7))
    rows = []
    with torch.no_grad():
        for label, cin, cout, k, s, p, h, count in layers(size):
            x = torch.randn(n, cin, h, h)
            w = torch.randn(cout, cin, k, k) * 0.05
            y = F.conv2d(x, w, None, s, p)
            dy = torch.randn_like(y)

            def back(mask):
                return lambda: torch.ops.aten.convolution_backward(
                    dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

            fwd = timed(lambda: F.conv2d(x, w, None, s, p), reps)
            bin_ = timed(back([True, False, False]), reps)
            bw = timed(back([False, True, False]), reps)
            flops = 2 * n * y.shape[2] * y.shape[3] * cout * cin * k * k
            rows.append({"label": label, "count": count, "flops": flops, "input": [n, h, h, cin],
                         "forward": fwd, "backpropInput": bin_, "backpropFilter": bw})
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}


for line in sys.stdin:
    if line.strip():
        print(json.dumps(run(json.loads(line))), flush=True)
