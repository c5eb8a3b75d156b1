"""Corrupted copies of a set of images: every image under every (corruption, severity), made in parallel over
all cores, shown with a progress bar, and cached on disk across sweeps.

Randomness: one Generator per (seed, corruption, severity), `corruption_rng`, as robustness.generate and the
OOD validation set always drew it, so a block does not depend on the worker count or on the other blocks.
Cache: one .npy per (the images' bytes, corruptions, severities, seed, corruption_table.VERSION) in
$CIFAR_SWEEP_CACHE (default ~/.cache/cifar-sweep; "off" disables it), written atomically; hashing the
selected images stands for the data fingerprint and the image selection together. The 8 most recently used
sets are kept (one set of 1,000 test images x 19 x 5 is 292 MB).

Measured (CPU time, real CIFAR-100 test images): all 95 (corruption, severity) pairs cost 25-26 ms per image on
one core (zoom_blur 1.6 ms and gaussian_noise 0.8 ms per pair are the dearest), so 1,000 test images take ~26 s
of CPU, ~13 s on two idle cores; a cached set loads in well under a second. (Predicting them costs more: simple_cnn
needs ~2 ms of CPU per image, ~190 s for 95,000; see bench/bench_robustness.py.)

The pool starts from a forkserver: like `spawn`, each worker imports the __main__ script again, so a script
that calls this must keep its work under `if __name__ == "__main__":` (orchestrator.py and the benches do).
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from trainables import atomic
from trainables.corruption_table import NAMES, VERSION

from .progress import bar

CACHE_ENV = "CIFAR_SWEEP_CACHE"
KEEP = 8  # cached sets kept, most recently used first
# Below this many corrupted images the pool's start-up (a fresh interpreter importing OpenCV and scikit-image,
# ~1-2 s) costs more than it saves: run in this process.
PARALLEL_FROM = 2000


def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([seed, NAMES.index(name), severity])


def corrupt_block(x: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """x (n, 32, 32, 3) uint8 under one corruption at one severity."""
    from .corruptions import corrupt_batch  # OpenCV/scikit-image: only where images are made

    return corrupt_batch(x, name, severity, corruption_rng(seed, name, severity))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (taskset, cgroups via affinity)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_X = None  # the images, set once per worker process by _init (not pickled again for every block)


def _init(x: np.ndarray) -> None:
    global _X
    _X = x
    # Ctrl-C is the driver's to handle: it cancels what is queued; a block already running ends in seconds.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _block(name: str, severity: int, seed: int) -> np.ndarray:
    return corrupt_block(_X, name, severity, seed)


def corrupt_all(x: np.ndarray, names, severities, seed: int, workers: int | None = None,
                desc: str = "corrupting") -> np.ndarray:
    """(len(names), len(severities) * n, 32, 32, 3) uint8: row i holds names[i], severity blocks in order."""
    x = np.ascontiguousarray(x)
    names, severities = list(names), list(severities)
    n = len(x)
    out = np.empty((len(names), len(severities) * n) + x.shape[1:], np.uint8)
    jobs = [(i, j) for i in range(len(names)) for j in range(len(severities))]
    workers = min(workers or cpu_count(), len(jobs))
    with bar(len(jobs) * n, f"{desc} {n} images x {len(names)} corruptions x {len(severities)} severities") as b:
        if workers <= 1 or len(jobs) * n < PARALLEL_FROM:
            for i, j in jobs:
                out[i, j * n:(j + 1) * n] = corrupt_block(x, names[i], severities[j], seed)
                b.update(n)
            return out
        # forkserver: a clean process to fork from. Plain fork from a driver with Ray's and torch's threads
        # (and OpenMP/OpenCV pools already used) can deadlock a child; spawn would re-import per worker.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["robustness.corruptions"])
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(x,))
        try:
            futures = {pool.submit(_block, names[i], severities[j], seed): (i, j) for i, j in jobs}
            for future in as_completed(futures):
                i, j = futures[future]
                out[i, j * n:(j + 1) * n] = future.result()
                b.update(n)
        finally:
            # On Ctrl-C or an error, drop the queued blocks instead of waiting for all of them (`with` would).
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def cache_dir() -> str | None:
    """The cache folder, or None when $CIFAR_SWEEP_CACHE is "off"."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return os.path.abspath(os.path.expanduser(value))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cifar-sweep")


def cache_key(x: np.ndarray, names, severities, seed: int) -> str:
    h = hashlib.sha256()
    h.update(repr((x.shape, list(names), list(severities), int(seed), VERSION)).encode())
    h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()[:32]


def cached_corrupt_all(x: np.ndarray, names, severities, seed: int, workers: int | None = None,
                       desc: str = "corrupting", mmap: bool = False, say=None) -> np.ndarray:
    """corrupt_all, read from the cache when the same images, corruptions, severities, seed and table were
    corrupted before. mmap=True returns a read-only memory map of the cached file (bounded memory)."""
    folder = cache_dir()
    shape = (len(names), len(severities) * len(x)) + tuple(x.shape[1:])
    path = None
    if folder:
        path = os.path.join(folder, f"corrupted-{cache_key(x, names, severities, seed)}.npy")
        hit = _read(path, shape, mmap)
        if hit is not None:
            if say:
                say(f"{desc}: {shape[0] * shape[1]} corrupted images from the cache ({path})")
            return hit
    out = corrupt_all(x, names, severities, seed, workers, desc)
    if path:
        try:
            with atomic.open_writer(path, "wb") as f:
                np.save(f, out)
            _evict(folder)
        except OSError as exc:  # a full or read-only cache must not fail the sweep: it is only a cache
            print(f"warning: could not cache corrupted images in '{folder}': {exc}", file=sys.stderr)
    return out


def _read(path: str, shape: tuple, mmap: bool) -> np.ndarray | None:
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError):  # absent, or damaged: make it again
        return None
    if arr.shape != shape or arr.dtype != np.uint8:
        return None
    try:
        os.utime(path)  # most recently used: evicted last
    except OSError:
        pass
    return arr


def _evict(folder: str) -> None:
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("corrupted-") and f.endswith(".npy")]
    files.sort(key=os.path.getmtime, reverse=True)
    for old in files[KEEP:]:
        try:
            os.unlink(old)
        except OSError:
            pass
