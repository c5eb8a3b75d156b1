"""Predict the whole OOD set file by file, batch by batch, straight from the memory maps.

Memory stays bounded: only one batch is ever float (batch_size·12 KB), and each file's mapping is dropped
when its predictions are done, so touched pages stop counting in this process's RSS. Loading a whole file
as float32 would take 614 MB per file, 11.7 GB for the set.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from trainables.errors import DataError
from trainables.inference import predict_logits_batches

from .ood import OOD_FILES, check_file, check_ood_dir
from .progress import bar

Progress = Callable[[int, int, int], None]  # (file index, images done in that file, images in that file)


def _open(item, n: int | None):
    """A path becomes a memory map (validated); an array is used as is."""
    if isinstance(item, (str, os.PathLike)):
        check_file(os.fspath(item), n)
        return np.load(item, mmap_mode="r")
    if getattr(item, "dtype", None) != np.uint8 or getattr(item, "ndim", 0) != 4 or item.shape[1:] != (32, 32, 3):
        raise DataError(f"OOD arrays must be uint8 (5*n, 32, 32, 3); got {getattr(item, 'dtype', type(item))} "
                        f"{getattr(item, 'shape', '')}")
    return item


def predict_ood(model: torch.nn.Module, source: str | Sequence, batch_size: int = 1024,
                device: str | torch.device = "cpu", progress: Progress | None = None, **kw) -> np.ndarray:
    """Labels (len(files), 5n) int64 for a DL4DS directory, or a sequence of arrays and/or .npy paths.

    Paths are opened one at a time and released after use; arrays given by the caller stay mapped as
    long as the caller holds them. `kw` goes to `trainables.inference.predict_logits_batches`
    (channels_last, autocast_dtype). A progress bar with an estimate goes to stderr (95,000 images took
    6.5 silent minutes on a 2-core CPU before it); `progress` is called as well, for callers that log.
    """
    if isinstance(source, (str, os.PathLike)):
        check_ood_dir(os.fspath(source))  # fail before any work; the maps it returns are dropped at once
        source = [os.path.join(source, name) for name in OOD_FILES]
    items = list(source)
    if not items:
        raise DataError("no OOD files or arrays to predict")
    first = _open(items[0], None)
    n = len(first) // 5
    if len(first) % 5 or n == 0:
        raise DataError(f"OOD arrays need 5*n rows (one block per severity); the first has {len(first)}")
    out = np.empty((len(items), 5 * n), dtype=np.int64)
    with bar(out.size, "predicting OOD set") as shown, warnings.catch_warnings():
        # Read-only maps: torch warns that it cannot write into them; inference never writes its input.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for i in range(len(items)):
            x = first if i == 0 else _open(items[i], n)
            first = None
            if len(x) != 5 * n:
                raise DataError(f"OOD array {i} has {len(x)} rows, the first has {5 * n}")
            for start, logits in predict_logits_batches(model, x, batch_size, device, **kw):
                out[i, start:start + len(logits)] = logits.argmax(1).numpy()
                shown.update(len(logits))
                if progress:
                    progress(i, start + len(logits), len(x))
            del x  # unmap: pages of finished files must not pile up in RSS
    return out
