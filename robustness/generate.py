"""Generate a labelled CIFAR-100-C-style OOD set in the DL4DS layout from a CIFAR-100 .npz.

    python -m robustness.generate --npz ../shared/data/cifar100.npz --out data/ood-gen [--subset 1000] [--seed 0]

Writes distortion00.npy … distortion18.npy (file i holds corruption ood.DL4DS_ORDER[i], each
(5·n, 32, 32, 3) uint8, severity blocks 1..5 of the same n images), labels.npy (n,) int64 and
generate.json (what produced it). Each file is written to a temp name and renamed, so an interrupted run
never leaves a half file under a final name. Randomness: one Generator per (seed, corruption, severity),
so a file does not depend on --workers or on which other files were generated.
Full set (n=10000): ≈ 12 ms per image for all 19 corruptions on one core (zoom_blur ≈ 5 ms of it).
"""
from __future__ import annotations

import os
import sys
import time
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from trainables import atomic, cli
from trainables.corruption_table import SEVERITIES
from trainables.data import stratified_subset
from trainables.errors import DataError, UserError

from .corrupted_set import corrupt_block
from .ood import DL4DS_ORDER, OOD_FILES


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


def corrupt_file(x: np.ndarray, index: int, seed: int) -> np.ndarray:
    """All 5 severities of the corruption of file `index` over x: (5·n, 32, 32, 3) uint8."""
    return np.concatenate([corrupt_block(x, DL4DS_ORDER[index], s, seed) for s in SEVERITIES])


def save_atomic(path: str, array: np.ndarray) -> None:
    with atomic.open_writer(path, "wb") as f:
        np.save(f, array)


def _job(args):
    x, index, seed, path = args
    t = time.perf_counter()
    save_atomic(path, corrupt_file(x, index, seed))
    return index, time.perf_counter() - t


def generate(x: np.ndarray, y: np.ndarray, out: str, seed: int = 0, workers: int = 1, log=print) -> None:
    os.makedirs(out, exist_ok=True)
    jobs = [(x, i, seed, os.path.join(out, OOD_FILES[i])) for i in range(len(DL4DS_ORDER))]
    log(f"generating {len(jobs)} files x {5 * len(x)} images into '{out}' ({workers} worker(s))")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(_job, jobs)
            for k, (i, seconds) in enumerate(done, 1):
                log(f"[{k:2d}/{len(jobs)}] {OOD_FILES[i]} {DL4DS_ORDER[i]} {seconds:.1f}s")
    else:
        for k, job in enumerate(jobs, 1):
            i, seconds = _job(job)
            log(f"[{k:2d}/{len(jobs)}] {OOD_FILES[i]} {DL4DS_ORDER[i]} {seconds:.1f}s")
    save_atomic(os.path.join(out, "labels.npy"), y)


def main(argv=None) -> int:
    p = cli.parser("python -m robustness.generate", __doc__.split("\n\n")[0])
    p.add_argument("--npz", required=True, help="CIFAR-100 .npz with x_test/y_test (or x_train/y_train)")
    p.add_argument("--out", required=True, help="directory for distortionNN.npy + labels.npy")
    p.add_argument("--subset", type=int, help="n images per severity, stratified over classes (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--workers", type=int, default=1, help="processes (one file each at a time)")
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), after_interrupt="The files written so far are whole; run the same command again")


def _run(args) -> int:
    x, y = load_split(args.npz, args.split)
    if args.subset is not None:
        if not 0 < args.subset <= len(y):
            raise UserError(f"--subset must be 1..{len(y)}, got {args.subset}")
        keep = stratified_subset(y, args.subset, seed=None)  # each class's first images, in file order
        x, y = x[keep], y[keep]
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    started = time.perf_counter()
    generate(x, y, args.out, args.seed, args.workers, log=lambda m: print(m, file=sys.stderr, flush=True))
    meta = {"npz": os.path.abspath(args.npz), "split": args.split, "subset": args.subset, "n": len(y),
            "seed": args.seed, "files": dict(zip(OOD_FILES, DL4DS_ORDER)),
            "seconds": round(time.perf_counter() - started, 1)}
    atomic.write_json(os.path.join(args.out, "generate.json"), meta)
    print(f"wrote {len(OOD_FILES)} files of {5 * len(y)} images + labels.npy to '{args.out}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
