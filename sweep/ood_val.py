"""OOD-aware tuning: score trials on a corrupted copy of the validation split, so ASHA and the sampler optimise
what Kaggle scores; corruptions not tuned on are held out and measured on the test set after the retrain.

Built once in the driver, before any trial, and handed to every trial with the data (Ray's object store).
The corrupting runs on all cores and is cached across sweeps (robustness/corrupted_set.py).
"""
from __future__ import annotations

import numpy as np

from robustness.corrupted_set import cached_corrupt_all
from trainables.config import TrainConfig
from trainables.data import Arrays, split, stratified_subset


def pick(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n class-balanced indices of y (all of them when n is 0 or not smaller than len(y))."""
    return stratified_subset(y, n, seed) if 0 < n < len(y) else np.arange(len(y))


def corrupted_copy(x: np.ndarray, y: np.ndarray, corruptions, severities, seed: int,
                   desc: str = "corrupting") -> tuple[np.ndarray, np.ndarray]:
    """Every image under every (corruption, severity), corruption-major then severity; labels alongside.
    One Generator per pair (robustness.corrupted_set.corruption_rng), so adding one changes no other."""
    images = cached_corrupt_all(x, corruptions, severities, seed, desc=desc)
    return images.reshape((-1,) + x.shape[1:]), np.tile(y, len(corruptions) * len(severities))


def build_ood_val(arrays: Arrays, fixed: dict, ood) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"ood_val": (images, labels)}: the trials' own validation images (same split), corrupted."""
    cfg = TrainConfig.from_dict(fixed)
    val = split(arrays, cfg.val_fraction, subset=cfg.subset)
    keep = pick(val.y_val, ood.images, ood.seed)
    return {"ood_val": corrupted_copy(val.x_val[keep], val.y_val[keep], ood.corruptions, ood.severities, ood.seed,
                                      desc="OOD validation set: corrupting")}
