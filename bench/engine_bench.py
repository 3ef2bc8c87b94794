#!/usr/bin/python3
"""Python (torch.nn) side of the MLNetExt engine benchmark.

Run with Debian's /usr/bin/python3 (it carries torch 1.13). Prints exactly one JSON line on stdout.

  engine_bench.py ops   --threads N [--iters K] [--reps R]
  engine_bench.py train --threads N [--warmup W] [--steps S] [--batch B] [--size P]

The network here and the one in EngineBench/BenchNet.cs must stay identical in shapes and operations.
"""
import argparse
import gc
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rss_mb(field="VmRSS:"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def trimmed_rss_mb():
    """RSS after glibc's malloc_trim(0) (free heap pages returned), i.e. close to the live memory."""
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def blas_library():
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if parts and "blas" in parts[-1].lower():
                    import os
                    p = os.path.realpath(parts[-1])
                    if p not in libs:
                        libs.append(p)
    except OSError:
        pass
    return ", ".join(libs) if libs else "unknown"


# ---------------------------------------------------------------- per-op overhead

def time_add(a, b, iters):
    """Seconds per `a + b` (result freed at once: rebinding drops the previous one)."""
    t0 = time.perf_counter()
    for _ in range(iters):
        c = a + b
        del c
    return (time.perf_counter() - t0) / iters


def run_ops(args):
    a = torch.tensor([1.0, 2.0], dtype=torch.float32)
    b = torch.tensor([3.0, 4.0], dtype=torch.float32)
    ag = a.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)
    # warm-up
    time_add(a, b, args.iters // 4)
    time_add(ag, bg, args.iters // 4)
    plain, grad = [], []
    # alternate the two variants rep by rep so drift hits both alike
    for _ in range(args.reps):
        plain.append(time_add(a, b, args.iters) * 1e6)
        grad.append(time_add(ag, bg, args.iters) * 1e6)
    return {
        "side": "py", "mode": "ops", "threads": torch.get_num_threads(), "iters": args.iters,
        "add_us": statistics.median(plain), "add_grad_us": statistics.median(grad),
        "add_us_samples": plain, "add_grad_us_samples": grad,
    }


# ---------------------------------------------------------------- network

class ConvBlock(nn.Module):
    """x + pw2(gelu(pw1(bn(dw7x7(x))))): depthwise conv + pointwise MLP (1x1 convs), residual."""

    def __init__(self, dim, mlp_ratio=4):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, dim * mlp_ratio, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(dim * mlp_ratio, dim, 1)

    def forward(self, x):
        return x + self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))


class AttnBlock(nn.Module):
    """Multi-head self-attention over tokens, pre-norm, residual. window > 0: tokens are attended within
    non-overlapping window x window patches (Swin-style partition); window == 0: over all H*W tokens."""

    def __init__(self, dim, heads, window=0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.window = window
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, C, H, W = x.shape
        ws = self.window
        if ws:
            t = x.reshape(B, C, H // ws, ws, W // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, ws * ws, C)
        else:
            t = x.flatten(2).transpose(1, 2)                               # B, N, C
        b, n = t.shape[0], t.shape[1]
        qkv = self.qkv(self.norm(t)).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                   # b, h, n, d
        attn = (q @ k.transpose(-2, -1)) * self.scale                      # b, h, n, n
        attn = attn.softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(b, n, C)                    # b, n, C
        t = t + self.proj(o)
        if ws:
            return t.reshape(B, H // ws, W // ws, ws, ws, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, H, W)
        return t.transpose(1, 2).reshape(B, C, H, W)


class BenchNet(nn.Module):
    def __init__(self, dims=(64, 128), heads=(2, 4), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), nn.BatchNorm2d(dims[0]), nn.GELU())
        self.stage1 = nn.Sequential(ConvBlock(dims[0]), AttnBlock(dims[0], heads[0], window=7))
        self.down = nn.Sequential(nn.BatchNorm2d(dims[0]), nn.Conv2d(dims[0], dims[1], 2, stride=2))
        self.stage2 = nn.Sequential(ConvBlock(dims[1]), AttnBlock(dims[1], heads[1]))
        self.norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.stage1(x)
        x = self.down(x)
        x = self.stage2(x)
        x = x.mean(dim=(2, 3))
        return self.head(self.norm(x))


def run_train(args):
    rss_start = rss_mb()
    torch.manual_seed(0)
    model = BenchNet()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    phases = [0.0] * 4

    def step():
        t0 = time.perf_counter()
        out = model(x)
        loss = F.cross_entropy(out, y, label_smoothing=0.1)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()   # torch 1.13 on CPU: the single-tensor AdamW, as the C# AdamW
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)   # the C# Optimizer.ZeroGrad sets grads to None too
        t4 = time.perf_counter()
        phases[:] = [t1 - t0, t2 - t1, t3 - t2, t4 - t3]
        return loss

    first_loss = float("nan")
    for i in range(args.warmup):
        loss = step()
        if i == 0:
            first_loss = float(loss)
    del loss
    gc.collect()
    rss_before = rss_mb()
    rss_before_trim = trimmed_rss_mb()
    times, per_phase = [], [[], [], [], []]
    last = None
    for _ in range(args.steps):
        t0 = time.perf_counter()
        last = step()
        times.append(time.perf_counter() - t0)
        for k in range(4):
            per_phase[k].append(phases[k])
    rss_after = rss_mb()
    rss_after_trim = trimmed_rss_mb()
    med = statistics.median(times)
    names = ["forward", "backward", "optimizer_step", "zero_grad"]
    return {
        "side": "py", "mode": "train", "threads": torch.get_num_threads(), "batch": args.batch, "size": args.size,
        "warmup": args.warmup, "steps": args.steps, "step_s_samples": times, "step_s": med,
        "ips": args.batch / med, "ips_total": args.batch * len(times) / sum(times),
        "phase_s": {n: statistics.median(v) for n, v in zip(names, per_phase)},
        "first_loss": first_loss, "loss": float(last), "params": sum(p.numel() for p in model.parameters()),
        "rss_start_mb": rss_start, "rss_before_mb": rss_before, "rss_after_mb": rss_after,
        "rss_peak_mb": rss_mb("VmHWM:"), "rss_before_trim_mb": rss_before_trim, "rss_after_trim_mb": rss_after_trim,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ops", "train"])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--iters", type=int, default=100000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = run_ops(args) if args.mode == "ops" else run_train(args)
    result["torch"] = torch.__version__
    result["blas"] = blas_library()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
