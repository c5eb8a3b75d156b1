"""The small sections of a search space: sampler, trials, resources, retrain, data, ood_val. (The trial scheduler's
section, `trial_scheduler:` or its shorthand `asha:`, is sweep/trial_schedulers/: a table of its own.)

Each is a frozen dataclass whose defaults are the documented ones (search_spaces/README.md); `read`
builds them from the top-level mapping.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from trainables.errors import did_you_mean

from .errors import Invalid
from .samplers import check_type
from .values import boolean, mapping, number, show, string


@dataclass(frozen=True)
class Sampler:
    type: str = "tpe"  # a key of samplers.SAMPLERS
    seed: int = 0
    n_startup_trials: int = 4  # reached random search's best sooner than 8 (BENCHMARKS.md, "Search efficiency")


@dataclass(frozen=True)
class Trials:
    num_samples: int = 20
    max_concurrent: int = 2
    max_failures: int = 0  # Ray retries of a crashed trial; a diverged trial is not retried by the adapter
    # Save a trial's training state every N epochs (and at its last). 1: a kill -9 loses no finished epoch;
    # N: up to N-1 epochs per running trial are trained again after a kill, and N times fewer saves (each a
    # model+optimizer torch.save, a copy into the results folder and a sync of Tune's state).
    checkpoint_every: int = 1


@dataclass(frozen=True)
class Resources:
    cpu: float = 1
    gpu: float = 0


@dataclass(frozen=True)
class Retrain:
    enabled: bool = True
    epochs: int = 50
    train_on_val: bool = True
    seeds: tuple = (0,)  # one model per seed; several are averaged (an ensemble: n x inference)
    tta: str = "none"  # test-time augmentation of the final predictions: none | flip (2x) | flip_shift (10x)


@dataclass(frozen=True)
class Data:
    path: str = "data/cifar-100"  # torchvision CIFAR-100 root or a .npz; relative = to the working directory
    ood_dir: str = "data/ood-test"
    download: bool = False


@dataclass(frozen=True)
class OodVal:
    """OOD-aware tuning: trials are also scored on their validation images under these corruptions
    (metric ood_val_acc); the other corruptions are held out and measured on the test set after the retrain."""

    corruptions: tuple = ()  # empty: off
    severities: tuple = (1, 3, 5)
    images: int = 500  # validation images corrupted (class-balanced); 0 = all
    test_images: int = 1000  # test images per severity for the held-out measurement; 0 = skip it
    seed: int = 0


def read(raw: dict, epochs: int, n_objectives: int = 1) -> dict[str, Any]:
    """sampler/trials/resources/retrain/data/ood_val from a top-level mapping; `epochs` = fixed.epochs."""
    whole = lambda minimum: lambda v, p: number(v, p, integer=True, minimum=minimum)  # noqa: E731
    parts = {
        "sampler": _section(raw, "sampler", Sampler, {"type": lambda v, p: check_type(v, n_objectives),
                                                      "seed": whole(0),
                                                      "n_startup_trials": whole(0)}),
        "trials": _section(raw, "trials", Trials, {"num_samples": whole(1), "max_concurrent": whole(1),
                                                   "max_failures": whole(0), "checkpoint_every": whole(1)}),
        "resources": _section(raw, "resources", Resources, {"cpu": lambda v, p: number(v, p, minimum=0),
                                                            "gpu": lambda v, p: number(v, p, minimum=0)}),
        "retrain": _section(raw, "retrain", Retrain, {"enabled": boolean, "train_on_val": boolean,
                                                      "epochs": whole(1), "seeds": _seeds, "tta": _tta},
                            epochs=epochs),
        "data": _section(raw, "data", Data, {"path": data_path, "ood_dir": data_path, "download": boolean},
                         path=data_path(Data.path, ""), ood_dir=data_path(Data.ood_dir, "")),
        "ood_val": _section(raw, "ood_val", OodVal, {"corruptions": _corruptions, "severities": _severities,
                                                     "images": whole(0), "test_images": whole(0), "seed": whole(0)}),
    }
    return parts


def data_path(value: Any, path: str) -> str:
    text = string(value, path)
    if not text.strip():
        raise Invalid(path, "'' is not a path")
    return os.path.abspath(os.path.expanduser(text))  # absolute: Tune moves each trial's working directory


def _section(raw: dict, key: str, cls, readers: dict, **defaults):
    section = {} if raw.get(key) is None else raw[key]  # 'trials:' with nothing under it = defaults
    mapping(section, key, readers)
    values = {k: readers[k](v, f"{key}.{k}") for k, v in section.items()}
    return cls(**{**defaults, **values})


def _tta(value: Any, path: str) -> str:
    from trainables.tta_views import TTA_MODES, tta_cost

    text = string(value, path)
    if text not in TTA_MODES:
        costs = ", ".join(f"{m} ({tta_cost(m)}x inference)" for m in TTA_MODES)
        raise Invalid(path, f"{show(value)} is not a test-time augmentation; choose one of {costs}")
    return text


def _seeds(value: Any, path: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise Invalid(path, f"{show(value)} is not allowed; give a non-empty list of seeds, e.g. [0, 1, 2]")
    seeds = tuple(number(v, f"{path}[{i}]", integer=True, minimum=0) for i, v in enumerate(value))
    if len(set(seeds)) != len(seeds):
        raise Invalid(path, f"{show(value)} repeats a seed")
    return seeds


def _corruptions(value: Any, path: str) -> tuple:
    from trainables.corruption_table import NAMES as CORRUPTIONS  # the suite's corruptions: one table

    if not isinstance(value, list):
        raise Invalid(path, f"{show(value)} is not allowed; give a list of corruption names, e.g. "
                            f"[gaussian_noise, fog, jpeg_compression]")
    for i, name in enumerate(value):
        if name not in CORRUPTIONS:
            raise Invalid(f"{path}[{i}]", f"unknown corruption {show(name)}{did_you_mean(name, CORRUPTIONS)}")
    if len(set(value)) != len(value):
        raise Invalid(path, f"{show(value)} repeats a corruption")
    return tuple(value)


def _severities(value: Any, path: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise Invalid(path, f"{show(value)} is not allowed; give a non-empty list of severities from 1..5")
    out = tuple(number(v, f"{path}[{i}]", integer=True, minimum=1) for i, v in enumerate(value))
    if max(out) > 5 or len(set(out)) != len(out):
        raise Invalid(path, f"{show(value)}: severities are distinct whole numbers from 1 to 5")
    return out
