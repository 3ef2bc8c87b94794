#!/usr/bin/python3
"""Python side of the training-throughput benchmark (twin of bench/TrainBench). The OFFICIAL model of a family
(tests/fixtures/<family>/reference.py builds it from the fetched official code), in train mode, one JSON line per
measurement:

  path "model"  the training step on pre-made tensors: forward, CrossEntropyLoss(label_smoothing=0.1), backward,
                clip_grad_norm_(5.0), AdamW with two groups (no weight decay for 1-D tensors and biases), zero_grad.
                Compares with the C# "model" path.
  path "full"   the same step fed by a torchvision DataLoader over in-memory 256x256 PIL images with
                RandomResizedCrop(scale 0.35-1, bicubic) + horizontal flip + ColorJitter(0.3, 0.3, 0.3) + normalise,
                num_workers = --workers. Compares with the C# "full" path (the estimator's Fit).
  path "infer"  eval-mode forward under torch.inference_mode on pre-made tensors (the C# "infer" path).

--device cuda runs on the GPU (inputs moved there, torch.cuda.synchronize() before each clock read). --precision
fp32|bf16|fp32,bf16: float32, or forward and loss in torch.autocast(device, bfloat16), what our trainer does on CUDA
by default (the default here too: bf16 on CUDA, fp32 on the CPU); each path runs once per precision.

images/s = steps * batch / (time of the steps after the warm-up)."""
import argparse
import importlib.util
import json
import os
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference(family):
    path = os.path.join(ROOT, "tests", "fixtures", family, "reference.py")
    if not os.path.isfile(path):
        raise SystemExit(f"error: no Python reference for family '{family}' ({path})")
    spec = importlib.util.spec_from_file_location(f"{family}_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(family, variant, num_classes, drop_path):
    """The official model with the drop-path rate our trainer uses (so both sides do the same work in train mode)."""
    ref = reference(family)
    if family in ("transxnet", "transnext"):
        return ref.build(variant, num_classes, drop_path_rate=drop_path)
    if family == "smt":
        return ref.build_from_kwargs(num_classes=num_classes, **dict(ref.VARIANT_KWARGS[variant], drop_path_rate=drop_path))
    if family == "mixformer":
        kwargs = dict(ref.VARIANTS[variant], drop_path_rate=drop_path)
        return ref.build_port(kwargs, num_classes) if os.path.isdir(ref.MIRROR) else ref.build_reference(kwargs, num_classes)
    raise SystemExit(f"error: unknown family '{family}' (expected transxnet, transnext, smt, mixformer)")


def blas_library():
    """The BLAS this process mapped (libtorch takes whatever provides libblas.so.3; see --py-blas in the driver)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.split()[-1].rsplit("/", 1)[-1]}
    return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "unknown"


def optimizer(model, lr):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.05}], lr=lr)


def synthetic_images(count, size, classes):
    """The C# side's pattern: colour gradients plus noise (different generator, same statistics)."""
    from PIL import Image
    rng = np.random.default_rng(1)
    ramp = np.arange(size) * 255 // size
    images = []
    for i in range(count):
        a = np.empty((size, size, 3), np.int32)
        a[..., 0] = ramp[None, :]
        a[..., 1] = ramp[:, None]
        a[..., 2] = (i % classes) * 255 // classes
        a += rng.integers(-20, 21, a.shape)
        images.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB"))
    return images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workers", type=int, default=None, help="DataLoader num_workers (default: threads)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--source-size", type=int, default=256)
    ap.add_argument("--drop-path", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mode", default="model,full")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--precision", default=None, help="comma list of fp32, bf16 (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): the official MixFormer port keeps torch's default init, its "
                         "training values reach the denormal range and its backward slows ~5x on x86 (ours does not flush)")
    ap.add_argument("--profile", metavar="FILE",
                    help="torch.autograd.profiler over the timed 'model' steps, written as TSV (name, calls, self_us, "
                         "total_us), the format TrainBench --profile writes")
    a = ap.parse_args()
    modes = [m.strip() for m in a.mode.split(",") if m.strip()]
    for m in modes:
        if m not in ("model", "full", "infer"):
            raise SystemExit(f"error: --mode expects a comma list of model, full, infer; found '{m}'")
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {a.device}: this torch sees no CUDA device")
    # cuDNN's autotuner, as the official training scripts (TransXNet, TransNeXt, SMT) and our trainer set it on CUDA
    torch.backends.cudnn.benchmark = device.type == "cuda"
    precisions = [p.strip() for p in (a.precision or ("bf16" if device.type == "cuda" else "fp32")).split(",") if p.strip()]
    for p in precisions:
        if p not in ("fp32", "bf16"):
            raise SystemExit(f"error: --precision expects a comma list of fp32, bf16; found '{p}'")
    workers = a.threads if a.workers is None else a.workers
    torch.set_num_threads(a.threads)
    if a.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("error: --flush-denormal: this CPU does not support flushing denormals")
    common = {"side": "python", "variant": a.variant, "batch": a.batch, "size": a.size, "threads": a.threads,
              "warmup": a.warmup, "steps": a.steps, "drop_path": a.drop_path, "torch": torch.__version__,
              "flush_denormal": a.flush_denormal, "blas": blas_library(), "device": str(device)}
    if device.type == "cuda":
        common["gpu"] = torch.cuda.get_device_name(device)
    family = a.variant.split("_")[0]

    # One model for both paths (each path has its own warm-up steps).
    torch.manual_seed(0)
    model = build(family, a.variant, a.classes, a.drop_path).to(device)
    model.train()
    opt = optimizer(model, a.lr)
    params = [p for p in model.parameters()]
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    last = {}
    bf16 = False  # the precision of the path being run

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step(x, y):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(x), y)
        last["loss"] = loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()

    for mode, precision in [(m, p) for m in modes for p in precisions]:
        bf16 = precision == "bf16"
        out = dict(common, path=mode, precision=precision)
        if mode == "infer":
            x = torch.randn(a.batch, 3, a.size, a.size, device=device)
            model.eval()
            times = []
            for i in range(a.warmup + a.steps):
                t = time.perf_counter()
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x)
                sync()
                times.append(time.perf_counter() - t)
            model.train()
            out["img_s"] = a.steps * a.batch / sum(times[a.warmup:])
            out["step_s"] = [round(s, 4) for s in times[a.warmup:]]
            out["first_step_s"] = round(times[0], 3)
            out["logits_abs_mean"] = logits.float().abs().mean().item()
            print(json.dumps(out), flush=True)
            continue
        if mode == "model":
            x = torch.randn(a.batch, 3, a.size, a.size).to(device)
            y = torch.randint(0, a.classes, (a.batch,)).to(device)
            times = []
            for i in range(a.warmup + a.steps):
                if i == a.warmup:
                    cpu0 = time.process_time()
                    if a.profile:
                        profiler = torch.autograd.profiler.profile()
                        profiler.__enter__()
                t = time.perf_counter()
                step(x, y)
                times.append(time.perf_counter() - t)
            if a.profile:
                profiler.__exit__(None, None, None)
                with open(a.profile, "w") as f:
                    f.write("name\tcalls\tself_us\ttotal_us\n")
                    for e in sorted(profiler.key_averages(), key=lambda e: -e.self_cpu_time_total):
                        f.write(f"{e.key}\t{e.count}\t{e.self_cpu_time_total:.0f}\t{e.cpu_time_total:.0f}\n")
                out["profile"] = a.profile
            out["img_s"] = a.steps * a.batch / sum(times[a.warmup:])
            out["cpu_util"] = round((time.process_time() - cpu0) / sum(times[a.warmup:]) / a.threads, 3)
            out["step_s"] = [round(s, 3) for s in times[a.warmup:]]
            out["first_step_s"] = round(times[0], 3)
        else:
            from torchvision import transforms as T
            images = synthetic_images((a.warmup + a.steps) * a.batch, a.source_size, a.classes)
            labels = [i % a.classes for i in range(len(images))]
            tf = T.Compose([
                T.RandomResizedCrop(a.size, scale=(0.35, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(),
                T.ColorJitter(0.3, 0.3, 0.3),
                T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ])

            class Data(torch.utils.data.Dataset):
                def __len__(self):
                    return len(images)

                def __getitem__(self, i):
                    return tf(images[i]), labels[i]

            loader = torch.utils.data.DataLoader(Data(), batch_size=a.batch, shuffle=True, num_workers=workers)
            t0 = time.perf_counter()
            stamps = []
            cpu = []
            for x, y in loader:
                step(x, y)
                stamps.append(time.perf_counter() - t0)
                cpu.append(time.process_time())
            n = a.warmup + a.steps
            if len(stamps) != n:
                raise SystemExit(f"error: expected {n} batches, got {len(stamps)}")
            out["img_s"] = a.steps * a.batch / (stamps[-1] - stamps[a.warmup - 1])
            out["step_s"] = [round(stamps[i] - stamps[i - 1], 3) for i in range(a.warmup, n)]
            # this process only: the DataLoader's worker processes are not counted
            out["cpu_util"] = round((cpu[-1] - cpu[a.warmup - 1]) / (stamps[-1] - stamps[a.warmup - 1]) / a.threads, 3)
            out["first_step_s"] = round(stamps[0], 3)
            out["workers"] = workers
        out["loss_last"] = last["loss"]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
