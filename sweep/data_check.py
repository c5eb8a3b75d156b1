"""The space against the data, before Ray starts: every config the space can produce must fit the data it reads.

A trial that cannot fit (a subset larger than the training split, a batch larger than the images a trial trains on,
no validation image to score, more OOD images asked than the split holds) would otherwise start Ray, fail in every
trial and leave nothing: each mistake is one line here, naming the key, its value, what the data allows and the
`--set` that fixes it. Only shapes are needed, and a .npz's come from its array headers (milliseconds, no image
decompressed), so the check costs nothing against the start-up.
"""
from __future__ import annotations

import itertools
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from trainables.config import TrainConfig
from trainables.data import IMAGE_SHAPE, KEYS, Arrays
from trainables.errors import DataError

from .space.conditions import complete
from .space.values import show

SPLIT_KEYS = ("subset", "val_fraction", "batch_size")


@dataclass(frozen=True)
class DataShape:
    """How many images each split of a data source holds, and their shape."""

    source: str
    train: int
    test: int
    image: tuple

    @classmethod
    def of(cls, arrays: Arrays, source: str) -> "DataShape":
        return cls(source, len(arrays.y_train), len(arrays.y_test), tuple(arrays.x_train.shape[1:]))


def probe(path: str) -> DataShape | None:
    """A .npz's shapes from its array headers; None when that cannot say (not a .npz, unreadable: the full read
    then reports the problem with its own message)."""
    if not os.path.isfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            shapes = {}
            for key in KEYS:
                with z.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shapes[key] = read(f)[0]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    x, y, xt, yt = (shapes[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if len(x) != 4 or len(y) != 1 or len(yt) != 1 or not x[0] or x[0] != y[0] or not xt or xt[0] != yt[0]:
        return None  # not a usable file: trainables.data's full read says exactly what is wrong
    return DataShape(path, x[0], xt[0], tuple(x[1:]))


def check_space(spec, shape: DataShape, robustness: bool = True) -> None:
    """DataError (one line) for the first config of the space that cannot fit `shape`."""
    _check_images(shape)
    validated = any(o.metric.startswith(("val_", "ood_val_")) for o in spec.objectives)
    for combo in _combinations(spec):
        values = complete(dict(spec.fixed), spec.params, combo)
        if values is not None:
            _check_split(values, shape, validated, lambda key, value, fit: _where(spec, key, value, fit))
    if spec.ood_val.corruptions:
        fixed = TrainConfig.from_dict({k: v for k, v in spec.fixed.items() if k in ("subset", "val_fraction")})
        val = _sizes(fixed.subset, fixed.val_fraction, shape)[1]
        if spec.ood_val.images > val:
            raise DataError(f"ood_val.images {spec.ood_val.images}: the validation split holds {val} images "
                            f"({_split_text(fixed.subset, fixed.val_fraction, shape)}); allowed: at most {val} "
                            f"(0 = all of them). Fix: --set ood_val.images={val}")
    retrained = spec.retrain.enabled and robustness
    if retrained and spec.ood_val.test_images > shape.test:
        raise DataError(f"ood_val.test_images {spec.ood_val.test_images}: {_name(shape)} holds {shape.test} test "
                        f"images; allowed: at most {shape.test} (0 skips the robustness step). "
                        f"Fix: --set ood_val.test_images={shape.test}")


def check_config(config: TrainConfig, shape: DataShape, what: str = "the retrain") -> None:
    """One concrete config (the retrain's) against the data: the same rules as check_space."""
    _check_images(shape)

    def where(key, value, fit):
        return f"{what}'s {key} {show(value)}", f"--set fixed.{key}={fit}"

    _check_split(config.to_dict(), shape, validated=False, where=where)


def _check_images(shape: DataShape) -> None:
    if shape.image != IMAGE_SHAPE:
        raise DataError(f"data.path {shape.source}: its images are {'x'.join(map(str, shape.image))}; every model "
                        f"here takes {'x'.join(map(str, IMAGE_SHAPE))} images (the challenge scores 32x32; "
                        f"input_size upsamples inside the model). Give CIFAR-100 at its own size")


def _check_split(values: dict, shape: DataShape, validated: bool, where) -> None:
    subset = int(values.get("subset", TrainConfig.subset) or 0)
    val_fraction = float(values.get("val_fraction", TrainConfig.val_fraction))
    batch = int(values.get("batch_size", TrainConfig.batch_size))
    if subset > shape.train:
        key, fix = where("subset", subset, shape.train)
        raise DataError(f"{key}: {_name(shape)} holds {shape.train} training images; allowed: at most "
                        f"{shape.train} (0 = all of them). Fix: {fix}")
    train, val = _sizes(subset, val_fraction, shape)
    split = _split_text(subset, val_fraction, shape)
    if validated and val == 0:
        need = 0.5 / (subset or shape.train)  # the split rounds val_fraction x images to whole images
        key, fix = where("val_fraction", val_fraction, max(0.1, float(f"{need:.1g}")))
        raise DataError(f"{key}: the validation split is empty ({split}) but the metric is a validation metric; "
                        f"allowed: at least {need:.2g}. Fix: {fix}")
    if batch > train:
        key, fix = where("batch_size", batch, train)
        bigger = _subset_for(batch, val_fraction, shape) if subset else None
        if bigger is not None:  # more images rather than another batch size: the space stays as it was written
            fix = where("subset", subset, bigger)[1]
        raise DataError(f"{key}: a trial trains on {train} images ({split}); allowed: at most {train}. Fix: {fix}")


def _sizes(subset: int, val_fraction: float, shape: DataShape) -> tuple[int, int]:
    """(train, validation) images of a trial: trainables.data.split's counts, from the sizes alone."""
    kept = subset or shape.train
    val = int(round(val_fraction * kept))
    return kept - val, val


def _subset_for(batch: int, val_fraction: float, shape: DataShape) -> int | None:
    """The smallest subset whose training part holds `batch` images, if the data has that many."""
    n = batch
    while n <= shape.train:
        if _sizes(n, val_fraction, shape)[0] >= batch:
            return n
        n += 1
    return None


def _split_text(subset: int, val_fraction: float, shape: DataShape) -> str:
    return (f"subset {subset} of {shape.train}" if subset else f"all {shape.train} training images") + \
        f", val_fraction {val_fraction:g}"


def _name(shape: DataShape) -> str:
    return os.path.basename(shape.source) or shape.source


def _combinations(spec):
    """Each combination of the split keys' extreme values that the space can set (searched: every choice or both
    ends of the range; fixed: its value)."""
    options = []
    for key in SPLIT_KEYS:
        param = next((p for p in spec.params if p.name == key), None)
        options.append([(key, v) for v in param.endpoints()] if param else [None])
    for combo in itertools.product(*options):
        yield dict(c for c in combo if c is not None)


def _where(spec, key: str, value, fit) -> tuple[str, str]:
    """(the setting's key path and value, the --set that sets `fit` there: the nearest value the data allows)."""
    param = next((p for p in spec.params if p.name == key), None)
    if param is None:
        return f"fixed.{key} {show(value)}", f"--set fixed.{key}={fit}"
    if param.type == "choice":
        kept = [v for v in param.values if (v <= fit if key != "val_fraction" else v >= fit)] or [fit]
        fix = f"--set 'params.{key}.values=[{', '.join(map(str, kept))}]'"
        if any(key in e and e[key] not in kept for e in spec.enqueue):  # else the space itself would not load
            fix += " --set 'enqueue=[]'"
        return f"params.{key}.values {show(list(param.values))}", fix
    end = "high" if value == param.high else "low"
    return f"params.{key}.{end} {show(value)}", f"--set params.{key}.{end}={fit}"
