"""Python side of the loader benchmark: a torchvision + PIL DataLoader over the same images with the same work per
image (decode + RandomResizedCrop(size, bilinear) + RandomHorizontalFlip + ToTensor + Normalize), the same batch
size and the same number of worker processes. Prints one JSON line (images/s over the timed epochs).

    /usr/bin/python3 bench/loader_bench.py --data DIR --workers N [--batch B] [--size S] [--epochs E] [--warmup W]
"""
import argparse
import json
import os
import time

import torch
import torchvision
import torchvision.transforms as T
from torch.utils.data import ConcatDataset, DataLoader


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()

    tf = T.Compose([
        T.RandomResizedCrop(a.size, interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    parts = [os.path.join(a.data, p) for p in ("train", "val") if os.path.isdir(os.path.join(a.data, p))] or [a.data]
    ds = ConcatDataset([torchvision.datasets.ImageFolder(p, transform=tf) for p in parts])
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0, prefetch_factor=2 if a.workers > 0 else None)

    def epoch():
        n = 0
        for x, y in loader:
            n += x.shape[0]
        return n

    for _ in range(a.warmup):
        epoch()
    times, images = [], 0
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        images += epoch()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    print(json.dumps({"side": "py", "workers": a.workers, "batch": a.batch, "size": a.size, "images": images,
                      "epochs": a.epochs, "seconds": total, "ips": images / total, "epoch_s": times,
                      "dataset": len(ds), "torch": torch.__version__, "torchvision": torchvision.__version__}))


if __name__ == "__main__":
    main()
