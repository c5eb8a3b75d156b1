"""Generate a labelled CIFAR-100-C-style OOD set in the DL4DS layout from a CIFAR-100 .npz.

    python -m robustness.generate --npz ../shared/data/cifar100.npz --out data/ood-gen [--subset 1000] [--seed 0]

Writes distortion00.npy … distortion18.npy (corruptions in the CIFAR-100-C generator order, each
(5·n, 32, 32, 3) uint8, severity blocks 1..5 of the same n images), labels.npy (n,) int64 and
generate.json (what produced it). Each file is written to a temp name and renamed, so an interrupted run
never leaves a half file under a final name. Randomness: one Generator per (seed, corruption, severity),
so a file does not depend on --workers or on which other files were generated.
Full set (n=10000): ≈ 12 ms per image for all 19 corruptions on one core (zoom_blur ≈ 5 ms of it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from trainables.atomic import write_json
from trainables.errors import DataError, UserError

from .ood import CORRUPTIONS, OOD_FILES, SEVERITIES


def load_split(npz: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(npz):
        raise DataError(f"--npz '{npz}' does not exist (a CIFAR-100 .npz with x_{split}, y_{split})")
    try:
        with np.load(npz) as data:
            keys = set(data.files)
            if {f"x_{split}", f"y_{split}"} - keys:
                raise DataError(f"'{npz}' has keys {sorted(keys)}; need x_{split} and y_{split}")
            x, y = data[f"x_{split}"], data[f"y_{split}"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"'{npz}' is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(y) != len(x):
        raise DataError(f"'{npz}': x_{split} must be uint8 (N, 32, 32, 3) with N labels; got {x.dtype} {x.shape}, "
                        f"{len(y)} labels")
    return x, np.asarray(y, dtype=np.int64)


def stratified_subset(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of n images spread over the classes as evenly as possible, in their original order.

    Round-robin over classes by rank within class: the first n of that order, sorted back. Deterministic.
    """
    if not 0 < n <= len(y):
        raise UserError(f"--subset must be 1..{len(y)}, got {n}")
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        rank[where] = np.arange(len(where))
    order = np.lexsort((np.arange(len(y)), rank))  # by rank, then position
    return np.sort(order[:n])


def corrupt_file(x: np.ndarray, index: int, seed: int) -> np.ndarray:
    """All 5 severities of corruption `index` over x: (5·n, 32, 32, 3) uint8."""
    from .corruptions import corrupt_batch  # OpenCV/scikit-image: only where images are made

    out = np.empty((5 * len(x),) + x.shape[1:], np.uint8)
    for s in SEVERITIES:
        rng = np.random.default_rng([seed, index, s])
        corrupt_batch(x, CORRUPTIONS[index], s, rng, out=out[(s - 1) * len(x):s * len(x)])
    return out


def save_atomic(path: str, array: np.ndarray) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _job(args):
    x, index, seed, path = args
    t = time.perf_counter()
    save_atomic(path, corrupt_file(x, index, seed))
    return index, time.perf_counter() - t


def generate(x: np.ndarray, y: np.ndarray, out: str, seed: int = 0, workers: int = 1, log=print) -> None:
    os.makedirs(out, exist_ok=True)
    jobs = [(x, i, seed, os.path.join(out, OOD_FILES[i])) for i in range(len(CORRUPTIONS))]
    log(f"generating {len(jobs)} files x {5 * len(x)} images into '{out}' ({workers} worker(s))")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(_job, jobs)
            for k, (i, seconds) in enumerate(done, 1):
                log(f"[{k:2d}/{len(jobs)}] {OOD_FILES[i]} {CORRUPTIONS[i]} {seconds:.1f}s")
    else:
        for k, job in enumerate(jobs, 1):
            i, seconds = _job(job)
            log(f"[{k:2d}/{len(jobs)}] {OOD_FILES[i]} {CORRUPTIONS[i]} {seconds:.1f}s")
    save_atomic(os.path.join(out, "labels.npy"), y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--npz", required=True, help="CIFAR-100 .npz with x_test/y_test (or x_train/y_train)")
    p.add_argument("--out", required=True, help="directory for distortionNN.npy + labels.npy")
    p.add_argument("--subset", type=int, help="n images per severity, stratified over classes (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--workers", type=int, default=1, help="processes (one file each at a time)")
    args = p.parse_args(argv)
    try:
        x, y = load_split(args.npz, args.split)
        if args.subset is not None:
            keep = stratified_subset(y, args.subset)
            x, y = x[keep], y[keep]
        if args.workers < 1:
            raise UserError(f"--workers must be >= 1, got {args.workers}")
        started = time.perf_counter()
        generate(x, y, args.out, args.seed, args.workers, log=lambda m: print(m, file=sys.stderr, flush=True))
        meta = {"npz": os.path.abspath(args.npz), "split": args.split, "subset": args.subset, "n": len(y),
                "seed": args.seed, "files": dict(zip(OOD_FILES, CORRUPTIONS)),
                "seconds": round(time.perf_counter() - started, 1)}
        write_json(os.path.join(args.out, "generate.json"), meta)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(OOD_FILES)} files of {5 * len(y)} images + labels.npy to '{args.out}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
