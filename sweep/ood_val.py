"""OOD-aware tuning: score trials on a corrupted copy of the validation split, so ASHA and the sampler optimise
what Kaggle scores; corruptions not tuned on are held out and measured on the test set after the retrain.

Built once in the driver, before any trial, and handed to every trial with the data (Ray's object store).
"""
from __future__ import annotations

import numpy as np

from robustness.corruptions import corrupt_batch
from robustness.ood import CORRUPTIONS
from trainables.config import TrainConfig
from trainables.data import Arrays, split


def _stratified(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices spread evenly over the classes of y (all of them when n is 0 or too large)."""
    if not n or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    # Round-robin over classes in a random order: balanced, and deterministic for the seed.
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = order[y[order] == c]
        rank[members] = np.arange(len(members))
    pick = np.lexsort((order.argsort(), rank))[:n]
    return np.sort(pick)


def corrupted_copy(x: np.ndarray, y: np.ndarray, corruptions, severities, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every image under every (corruption, severity); one Generator per pair, so adding one changes no other."""
    xs, ys = [], []
    for name in corruptions:
        for s in severities:
            rng = np.random.default_rng([seed, CORRUPTIONS.index(name), s])
            xs.append(corrupt_batch(x, name, s, rng))
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def build_ood_val(arrays: Arrays, fixed: dict, ood) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"ood_val": (images, labels)}: the trials' own validation images (same split), corrupted."""
    cfg = TrainConfig.from_dict(fixed)
    val = split(arrays, cfg.val_fraction, subset=cfg.subset)
    pick = _stratified(val.y_val, ood.images, ood.seed)
    return {"ood_val": corrupted_copy(val.x_val[pick], val.y_val[pick], ood.corruptions, ood.severities, ood.seed)}


def held_out(ood) -> list[str]:
    return [c for c in CORRUPTIONS if c not in ood.corruptions]
