"""The sweep's robustness step (sweep/robust_eval.generated) timed per ood_val.test_images: corrupting the test
images (all cores; cold cache, then warm) and predicting them with the model.

    python bench/bench_robustness.py --images 100 200 500 [--model simple_cnn] [--workers 0]

A speed test: the model is untrained (its speed does not depend on its weights). Real CIFAR-100 test images
from ../shared/data/cifar100.npz (random pixels without it). The cache is a fresh temp folder per size, so
"cold" is the first sweep on a machine and "warm" every later one with the same data, images and seed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from robustness import corrupted_set  # noqa: E402
from sweep import robust_eval  # noqa: E402
from trainables.data import Arrays  # noqa: E402
from trainables.models import build_model  # noqa: E402

CIFAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar100.npz")


def _arrays() -> Arrays:
    if os.path.isfile(CIFAR):
        with np.load(CIFAR) as d:
            x, y = d["x_test"], d["y_test"].astype(np.int64)
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8), np.arange(10000) % 100
    return Arrays(x[:10], y[:10], x, y)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, nargs="+", default=[100, 200, 500], help="ood_val.test_images values")
    p.add_argument("--model", default="simple_cnn")
    p.add_argument("--workers", type=int, default=0, help="corrupting processes (0: all cores)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for predicting (0: torch's choice)")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    arrays, model = _arrays(), build_model(args.model).eval()
    workers = args.workers or corrupted_set.cpu_count()
    real = corrupted_set.corrupt_all
    print(f"{args.model}, {workers} corrupting worker(s), {corrupted_set.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| test_images | corrupted images | corrupting (cold cache) | whole step, cold | whole step, warm |")
    print("|---|---|---|---|---|")
    timed = {}

    def corrupt(*a, **k):
        t = time.perf_counter()
        x, names, severities, seed = a[:4]  # cached_corrupt_all passes its own workers (None: all cores)
        out = real(x, names, severities, seed, workers, k.get("desc", "corrupting"))
        timed["corrupt"] = time.perf_counter() - t
        return out

    corrupted_set.corrupt_all = corrupt
    for n in args.images:
        ood = SimpleNamespace(corruptions=(), severities=(1, 3, 5), images=0, test_images=n, seed=0)
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            os.environ[corrupted_set.CACHE_ENV] = cache
            steps = []
            for _ in range(2):  # cold, then warm
                t = time.perf_counter()
                robust_eval.generated(model, arrays, ood, 0.5, "cpu", out, lambda m: None)
                steps.append(time.perf_counter() - t)
        # warm: the cache is read in well under a second, so that column is predicting + drawing the report
        print(f"| {n} | {n * 95:,} | {timed['corrupt']:.1f} s | {steps[0]:.1f} s | {steps[1]:.1f} s |", flush=True)
    corrupted_set.corrupt_all = real
    return 0


if __name__ == "__main__":
    sys.exit(main())
