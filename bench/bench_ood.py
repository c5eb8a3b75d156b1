"""OOD prediction on the full DL4DS layout (19 x 50,000 images): images/s, peak RAM, submission write time.

    python bench/bench_ood.py --model simple_cnn --files 1      # a fraction, extrapolated to 950,000
    python bench/bench_ood.py --model pool_linear               # the whole set, streaming cost alone

The 19 full-size files (2.9 GB) are made in a temp dir (or --dir, kept and reused): the CIFAR-100 test
images tiled 5x when ../shared/data/cifar100.npz exists, else random pixels — a speed test, not an
accuracy test. They are freshly written, so they are read from the page cache, not disk.
Prediction runs in a child process so that its peak RSS (ru_maxrss) counts prediction alone.
`pool_linear` (global average pool + linear) costs almost nothing per image: it measures reading,
normalising and batching the memory maps, i.e. the pipeline's own overhead and memory.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
from queue import Empty
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from robustness.ood import FULL_N, OOD_FILES  # noqa: E402
from trainables import atomic  # noqa: E402

CIFAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar100.npz")


def make_full_set(directory: str) -> str:
    """19 files of (50000, 32, 32, 3) uint8; returns what the pixels are."""
    os.makedirs(directory, exist_ok=True)
    if os.path.isfile(CIFAR):
        with np.load(CIFAR) as d:
            block, what = d["x_test"], "CIFAR-100 test images tiled 5x"
    else:
        block, what = np.random.default_rng(0).integers(0, 256, (FULL_N, 32, 32, 3), dtype=np.uint8), "random pixels"
    for name in OOD_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.path.getsize(path) == 153_600_128:
            continue
        with atomic.atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(5 * FULL_N, 32, 32, 3))
            for s in range(5):
                out[s * FULL_N:(s + 1) * FULL_N] = block
            out.flush()
            del out
    return what


def _vm(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))  # kB


def _child(args: dict, queue) -> None:
    import torch

    from robustness.predict import predict_ood
    from robustness.submission import read_submission, write_submission

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    if args["model"] == "pool_linear":
        model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 100))
    else:
        from trainables.models import build_model

        model = build_model(args["model"])
    model.eval()
    paths = [os.path.join(args["dir"], name) for name in OOD_FILES[:args["files"]]]
    before = _vm("VmHWM:")
    t = time.perf_counter()
    preds = predict_ood(model, paths, batch_size=args["batch_size"])
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    full = np.resize(preds, (len(OOD_FILES), preds.shape[1]))  # repeat rows for a 950,000-row file
    out = os.path.join(args["dir"], "submission_ood.csv")
    t = time.perf_counter()
    write_submission(full, out)
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    read_submission(out, n=FULL_N)
    read_s = time.perf_counter() - t
    queue.put({"peak_rss_with_csv_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "images": int(preds.size), "seconds": seconds, "images_per_s": preds.size / seconds,
               "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024, "torch_threads": torch.get_num_threads(),
               "write_s": write_s, "read_validate_s": read_s, "csv_mb": os.path.getsize(out) / 1e6})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="simple_cnn", help="a trainables model name, or pool_linear")
    p.add_argument("--files", type=int, default=19, help="predict the first K files only, then extrapolate")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--dir", help="keep/reuse the 2.9 GB set here (default: a temp dir, deleted)")
    args = p.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="bench_ood_")
    try:
        t = time.perf_counter()
        what = make_full_set(directory)
        made = time.perf_counter() - t
        load = os.getloadavg()[0]
        queue = mp.get_context("spawn").Queue()
        child = mp.get_context("spawn").Process(target=_child, args=(dict(vars(args), dir=directory), queue))
        child.start()
        while True:
            try:
                r = queue.get(timeout=5)
                break
            except Empty:
                if not child.is_alive():
                    raise SystemExit(f"benchmark process died (exit code {child.exitcode})") from None
        child.join()
        r.update(model=args.model, files=args.files, batch_size=args.batch_size, pixels=what,
                 set_seconds=round(made, 1), load_before=load, load_after=os.getloadavg()[0])
        r["extrapolated_950k_minutes"] = 950_000 / r["images_per_s"] / 60
        print(json.dumps(r, indent=1))
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
