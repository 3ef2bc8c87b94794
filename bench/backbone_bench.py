#!/usr/bin/python3
"""Python side of the backbone benchmark: the OFFICIAL model of a family (tests/fixtures/<family>/reference.py
builds it from the fetched official code), eval forward under inference_mode and a training step (cross-entropy,
backward, AdamW), median seconds per step. Prints one JSON object. Twin of bench/BackboneBench."""
import argparse
import importlib.util
import json
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference(family):
    path = os.path.join(ROOT, "tests", "fixtures", family, "reference.py")
    spec = importlib.util.spec_from_file_location(f"{family}_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timed(step, warmup, iters):
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mode", default="both", choices=["both", "forward", "train"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = reference(a.family).build(a.variant)
    out = {"side": "python", "variant": a.variant, "batch": a.batch, "size": a.size, "threads": a.threads}
    if a.mode in ("both", "forward"):
        model.eval()
        x = torch.randn(a.batch, 3, a.size, a.size)

        def fwd():
            with torch.inference_mode():
                model(x)
        out["forward_img_s"] = a.batch / timed(fwd, a.warmup, a.iters)
    if a.mode in ("both", "train"):
        model.train()
        x = torch.randn(a.batch, 3, a.size, a.size)
        y = torch.randint(0, 1000, (a.batch,))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

        def step():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out["train_img_s"] = a.batch / timed(step, a.warmup, a.iters)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
