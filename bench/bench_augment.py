"""Part-3 augmentations on 256 CIFAR-100 images: our batched per-image pipeline vs the seed's per-image PIL loop.

    python bench/bench_augment.py --data ../shared/data/cifar100.npz [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainables import augment as A  # noqa: E402
from trainables.config import TrainConfig  # noqa: E402
from trainables.data import MEAN, STD, load_arrays  # noqa: E402


def rate(fn, n: int) -> float:
    fn()
    times = []
    for _ in range(7):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / sorted(times)[3]  # the median of 7: robust to a neighbour's burst of load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    from PIL import Image
    from torchvision import transforms as T

    torch.set_num_threads(a.threads)
    x = torch.from_numpy(np.ascontiguousarray(load_arrays(a.data).x_train[:256])).permute(0, 3, 1, 2).contiguous()
    aug = A.BatchAugment(TrainConfig.from_dict(dict(crop_padding=4, hflip=True, auto_augment="autoaugment",
                                                    color_jitter=0.4)))
    pil = T.Compose([T.RandomCrop(32, 4), T.RandomHorizontalFlip(), T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
                     T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.ToTensor(), T.Normalize(MEAN, STD)])
    pics = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
    g = torch.Generator().manual_seed(0)
    ours = rate(lambda: aug(x, g), len(x))
    seed = rate(lambda: torch.stack([pil(q) for q in pics]), len(x))
    print(f"batched {ours:.0f} img/s, PIL loop {seed:.0f} img/s, ratio {ours / seed:.1f}x "
          f"(torch threads {a.threads}, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
