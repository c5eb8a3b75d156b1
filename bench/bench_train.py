"""Training throughput: this engine vs the seed's DataLoader pipeline, same model, same machine.

Part-3 augmentation in both: RandomCrop(32, 4) + flip + AutoAugment(CIFAR10) + ColorJitter(0.4, 0.4,
0.4, 0.1) + mixup 0.4 + label smoothing 0.1, AdamW + OneCycleLR. The seed's way: a Dataset of PIL
images through torchvision transforms, DataLoader with 2 workers, mixup in the loop. Measures
whatever device it finds (CPU: fp32, batch 128; CUDA: bf16 autocast, batch 512), a fixed number of
batches after a warm-up, one run each.

    python bench/bench_train.py [--models simple_cnn resnet18_cifar] [--batches 20] [--warmup 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainables.config import TrainConfig  # noqa: E402
from trainables.data import MEAN, STD, load_arrays  # noqa: E402
from trainables.engine import amp_dtype, build_run, resolve_device, train_one_epoch  # noqa: E402
from trainables.models import build_model  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar100.npz")


def part3_config(model: str, batch_size: int, epochs: int = 1) -> TrainConfig:
    return TrainConfig.from_dict(
        model=model, batch_size=batch_size, epochs=epochs, optimizer="adamw", lr=1e-4, weight_decay=0.05,
        scheduler="onecycle", label_smoothing=0.1, mixup_alpha=0.4, crop_padding=4, hflip=True,
        auto_augment="autoaugment", color_jitter=0.4, precision="auto", device="auto",
    )


def bench_engine(model: str, x: np.ndarray, y: np.ndarray, batch_size: int, batches: int, warmup: int) -> float:
    cfg = part3_config(model, batch_size)
    device = resolve_device(cfg.device)
    xt = torch.from_numpy(x).to(device).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y).to(device)
    run = build_run(cfg, steps_per_epoch=warmup + batches)
    n_warm = warmup * batch_size
    train_one_epoch(run, xt[:n_warm], yt[:n_warm], epoch=1)  # warm-up: allocator, kernels, autotuning
    timed = train_one_epoch(run, xt[n_warm:n_warm + batches * batch_size], yt[n_warm:n_warm + batches * batch_size], 1)
    return timed["images_per_s"]


def bench_augment_only(x: np.ndarray, y: np.ndarray, batch_size: int, batches: int) -> float:
    """The engine's part-3 augmentation + mixup alone, in the training process (no model)."""
    from trainables.augment import BatchAugment, mix

    cfg = part3_config("simple_cnn", batch_size)
    device = resolve_device(cfg.device)
    aug, g = BatchAugment(cfg), torch.Generator()
    xt, yt = torch.from_numpy(x).to(device).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).to(device)
    aug(xt[:batch_size], g)  # warm-up
    start = time.perf_counter()
    for b in range(batches):
        xb, *_ = mix(aug(xt[b * batch_size:(b + 1) * batch_size], g), yt[b * batch_size:(b + 1) * batch_size], cfg, g)
    xb.sum().item()  # waits for the device
    return batches * batch_size / (time.perf_counter() - start)


def bench_seed_way(model_name: str, x: np.ndarray, y: np.ndarray, batch_size: int, batches: int, warmup: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    class SeedDataset(Dataset):
        def __init__(self, x, y, transform):
            self.x, self.y, self.transform = x, y, transform

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), int(self.y[i])

    transform = T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
        T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.ToTensor(), T.Normalize(MEAN, STD),
    ])
    device = resolve_device("auto")
    dtype = amp_dtype("auto", device)
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-4, total_steps=warmup + batches)
    loader = DataLoader(SeedDataset(x, y, transform), batch_size=batch_size, shuffle=True, num_workers=2,
                        pin_memory=device.type == "cuda", drop_last=True)
    model.train()
    start = None
    for step, (xb, yb) in enumerate(loader):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        if step == warmup + batches:
            break
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        lam = float(np.random.beta(0.4, 0.4))
        perm = torch.randperm(len(xb), device=device)
        xb = lam * xb + (1 - lam) * xb[perm]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(xb)
        out = out.float()
        loss = (lam * F.cross_entropy(out, yb, label_smoothing=0.1)
                + (1 - lam) * F.cross_entropy(out, yb[perm], label_smoothing=0.1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    loss.item()  # waits for the device
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--models", nargs="+", default=["simple_cnn", "resnet18_cifar"])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=0, help="0: 512 on CUDA, 128 on CPU")
    args = p.parse_args()

    device = resolve_device("auto")
    bs = args.batch_size or (512 if device.type == "cuda" else 128)
    n = (args.warmup + args.batches) * bs
    arrays = load_arrays(args.data)
    x, y = arrays.x_train[:n], arrays.y_train[:n]
    where = (torch.cuda.get_device_name() if device.type == "cuda" else
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{torch.get_num_threads()} torch threads")
    print(f"device: {device} ({where}); torch {torch.__version__}; precision {amp_dtype('auto', device) or 'fp32'}; "
          f"batch {bs}; {args.batches} timed batches after {args.warmup} warm-up")
    print(f"engine augmentation + mixup alone (no model): {bench_augment_only(x, y, bs, args.batches):.0f} img/s")
    print("| model | engine img/s | seed DataLoader img/s | ratio |")
    print("|---|---|---|---|")
    for model in args.models:
        ours = bench_engine(model, x, y, bs, args.batches, args.warmup)
        seed = bench_seed_way(model, x, y, bs, args.batches, args.warmup)
        print(f"| {model} | {ours:.0f} | {seed:.0f} | {ours / seed:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
