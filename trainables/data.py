"""Data sources, validation and the train/validation split. (Normalisation constants first: everything shares them.)

Two sources give the same `Arrays`: a `.npz` (x_train, y_train, x_test, y_test) or a torchvision
CIFAR-100 root (`<root>/cifar-100-python/{train,test}`). Every array is checked here, once, so a
bad file fails before any training with the file, the key and what was expected.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import zipfile
import zlib
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .errors import DataError

if TYPE_CHECKING:
    import torch

# The challenge's OOD evaluation normalises with these (CHALLENGE.md); training must match or OOD collapses.
MEAN = (0.5071, 0.4867, 0.4408)
STD = (0.2675, 0.2565, 0.2761)

NUM_CLASSES = 100
IMAGE_SHAPE = (32, 32, 3)
KEYS = ("x_train", "y_train", "x_test", "y_test")
# The validation split is data, not training randomness: one fixed seed, so trials that differ only in
# `seed` are scored on the same images and the sweep can rebuild the split.
SPLIT_SEED = 0


def normalize(x_uint8_nchw: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 normalised exactly as the official evaluation does (x/255, mean/std)."""
    import torch  # here: the sweep's driver reads the data without torch (its import slowed Ray's start)

    mean = torch.tensor(MEAN, device=x_uint8_nchw.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8_nchw.device).view(1, 3, 1, 1)
    return (x_uint8_nchw.float().div_(255) - mean) / std


class Arrays(NamedTuple):
    """uint8 NHWC (N, 32, 32, 3) images + int64 labels 0-99, validated."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Split(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def load_arrays(source: str, download: bool = False) -> Arrays:
    """Read a `.npz` file or a torchvision CIFAR-100 root into validated `Arrays` (read once, in memory)."""
    source = os.fspath(source)
    if not source:
        raise DataError("no data source given; set data to a .npz file or a CIFAR-100 root folder")
    if os.path.isdir(source) or download:
        return _load_cifar_root(source, download)
    if not os.path.exists(source):
        raise DataError(f"data file '{source}' does not exist; expected a .npz with keys {', '.join(KEYS)} "
                        "or a torchvision CIFAR-100 root folder")
    return _load_npz(source)


def _load_npz(path: str) -> Arrays:
    key = None
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"data file '{path}' is a single .npy array; expected a .npz with keys {', '.join(KEYS)}")
        if not magic.startswith(b"PK"):
            raise DataError(f"data file '{path}' is not a .npz (zip) file; expected keys {', '.join(KEYS)}")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DataError(f"data file '{path}' has no key '{missing[0]}'; expected keys {', '.join(KEYS)} "
                                f"(found: {', '.join(npz.files) or 'none'})")
            raw, key = {}, None
            for key in KEYS:
                raw[key] = npz[key]
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        where = f", key '{key}'" if key else ""
        raise DataError(f"data file '{path}'{where} could not be read ({type(exc).__name__}: {exc}); "
                        f"expected an uncorrupted .npz of uint8 images and integer labels") from None
    return _validated(raw, path)


def _validated(raw: dict, where: str) -> Arrays:
    out = {}
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"'{where}': key 'x_{split}' is {x.dtype} of shape {x.shape}; "
                            f"expected uint8 of shape (N, 32, 32, 3) (NHWC, RGB)")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"'{where}': key 'y_{split}' is {y.dtype} of shape {y.shape}; "
                            f"expected integer labels of shape (N,)")
        if len(y) != len(x):
            raise DataError(f"'{where}': key 'y_{split}' has {len(y)} labels but 'x_{split}' has {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise DataError(f"'{where}': key 'y_{split}' has labels in [{y.min()}, {y.max()}]; "
                            f"expected 0-{NUM_CLASSES - 1}")
        out[f"x_{split}"], out[f"y_{split}"] = np.ascontiguousarray(x), y.astype(np.int64)
    if not len(out["x_train"]):
        raise DataError(f"'{where}': key 'x_train' holds no images")
    return Arrays(**out)


def _numpy_pickle_names() -> dict:
    from numpy._core import multiarray, numeric  # numpy >= 2; pickles name the old numpy.core too

    names = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): codecs.encode}  # how protocol-2 pickles written by Python 3 store bytes
    for mod in ("numpy.core", "numpy._core"):
        names[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        names[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # pickle protocol 5
    return names


class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR pickles hold a dict of bytes, lists and numpy arrays; nothing else may be built."""

    allowed = _numpy_pickle_names()

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self.allowed[(module, name)]


def _read_cifar_pickle(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise DataError(f"CIFAR-100 file '{path}' does not exist; pass download=true (torchvision source) "
                        "or point data at a .npz")
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="latin1").load()
        d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
        data, labels = np.asarray(d["data"]), np.asarray(d["fine_labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, ValueError, TypeError, IndexError,
            OverflowError, MemoryError) as exc:  # what random bytes can raise in the unpickler (OverflowError: seen)
        raise DataError(f"CIFAR-100 file '{path}' is not a CIFAR-100 python pickle "
                        f"({type(exc).__name__}: {exc})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-100 file '{path}': key 'data' is {data.dtype} of shape {data.shape}; "
                        f"expected uint8 (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # stored CHW, row-major


def _load_cifar_root(root: str, download: bool) -> Arrays:
    if download:
        import torchvision  # only here: trials never download

        try:
            torchvision.datasets.CIFAR100(root, train=True, download=True)
        except Exception as exc:  # noqa: BLE001 - network errors of many kinds
            raise DataError(f"could not download CIFAR-100 into '{root}' ({type(exc).__name__}: {exc})") from None
    base = os.path.join(root, "cifar-100-python")
    (x_tr, y_tr), (x_te, y_te) = (_read_cifar_pickle(os.path.join(base, n)) for n in ("train", "test"))
    return _validated({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, base)


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts` (largest remainder: sums exactly to total)."""
    exact = counts * (total / max(counts.sum(), 1))
    base = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base


def stratified_subset(y: np.ndarray, n, seed: int | None = SPLIT_SEED) -> np.ndarray:
    """Sorted indices of n items of y, spread over its classes in proportion to their sizes.

    n is a total (shared out by largest remainder, so the shares sum to n and equal classes differ by at most
    one) or an array of how many to take per class (np.unique(y) order). Within each class the items taken
    are the first ones of a permutation drawn from `seed` (one Generator, classes in order), or the first in
    index order when seed is None. Taking more per class only adds items: a smaller selection with the same
    seed is always a subset of a larger one, which is how split() draws its validation images from its subset.
    The one stratified selection of the project: the split, the OOD validation images (sweep/ood_val.py), the
    robustness test images (sweep/robust_eval.py) and `robustness.generate --subset` all use it.
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    take = _allocate(counts, int(n)) if np.ndim(n) == 0 else np.asarray(n, dtype=np.int64)
    if np.ndim(n) == 0 and not 0 <= n <= len(y):
        raise DataError(f"cannot take {n} of {len(y)} items")
    rng = None if seed is None else np.random.default_rng(seed)
    members = (np.flatnonzero(y == c) for c in classes)
    per_class = [m if rng is None else rng.permutation(m) for m in members]
    return np.sort(np.concatenate([m[:k] for m, k in zip(per_class, take)] + [np.empty(0, np.int64)]))


def split(arrays: Arrays, val_fraction: float, seed: int = SPLIT_SEED, subset: int = 0) -> Split:
    """Seeded, per-class (stratified) split of the training images; `subset` > 0 first keeps that many."""
    y = arrays.y_train
    if subset > len(y):
        raise DataError(f"subset {subset} is larger than the {len(y)} training images")
    _, counts = np.unique(y, return_counts=True)
    keep_per_class = _allocate(counts, subset) if subset else counts
    keep = stratified_subset(y, keep_per_class, seed)
    # Same seed, fewer per class: the validation images are the first of each class's draw, inside `keep`.
    val = stratified_subset(y, _allocate(keep_per_class, int(round(val_fraction * keep_per_class.sum()))), seed)
    train = np.setdiff1d(keep, val, assume_unique=True)
    if not len(train):
        raise DataError(f"no training images left after subset={subset} and val_fraction={val_fraction}")
    return Split(arrays.x_train[train], y[train], arrays.x_train[val], y[val])


_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint(path: str) -> str:
    """sha256 of the data file (of train + test for a CIFAR root); cached by (path, size, mtime)."""
    path = os.path.abspath(path)
    files = [os.path.join(path, "cifar-100-python", n) for n in ("train", "test")] if os.path.isdir(path) else [path]
    try:
        key = tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files)
    except OSError as exc:
        raise DataError(f"cannot fingerprint data '{path}': {exc}") from None
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]
