"""Shared fixtures: small synthetic data in the real .npz format, a tiny fast model, a tiny config.

The synthetic images are learnable in seconds: each of 10 classes (labels spread over 0-99) is a
coloured square at its own place on a noisy background.
"""
from __future__ import annotations

import os
import signal
from contextlib import ExitStack

import numpy as np
import pytest
import torch
import torch.nn as nn

from trainables import models
from trainables.config import TrainConfig

REAL_NPZ = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar100.npz")
SYNTH_CLASSES = np.arange(0, 100, 10)  # 10 classes -> chance is 10%

# A test run started in the background by a non-interactive shell (`make test &`) inherits SIGINT ignored, and
# so would every process it starts (Python then installs no Ctrl-C handler): the tests that send a Ctrl-C to an
# orchestrator would see it ignored. With a handler here, the processes the tests start get the default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 NHWC images (balanced over SYNTH_CLASSES) + int64 labels."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) % len(SYNTH_CLASSES)
    x = rng.integers(0, 80, size=(n, 32, 32, 3), dtype=np.uint8)
    colours = np.array([[(c * 37) % 256, (c * 91 + 80) % 256, (c * 53 + 160) % 256] for c in range(len(SYNTH_CLASSES))])
    for i, c in enumerate(k):
        r, col = divmod(int(c), 4)
        top, left = 2 + 8 * r + rng.integers(0, 3), 2 + 6 * col + rng.integers(0, 3)
        x[i, top:top + 10, left:left + 10] = colours[c]
    return x, SYNTH_CLASSES[k].astype(np.int64)


def write_npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="session")
def synth_arrays() -> dict:
    x_train, y_train = blobs(400, seed=1)
    x_test, y_test = blobs(100, seed=2)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="session")
def synth_npz(tmp_path_factory, synth_arrays) -> str:
    """A small .npz in exactly the real file's format (keys, dtypes, NHWC)."""
    return write_npz(tmp_path_factory.mktemp("data") / "synth.npz", **synth_arrays)


class TinyNet(nn.Module):
    """Fast stand-in for engine mechanics: conv, batch norm (buffers), dropout (global RNG), head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Dropout(0.1))
        self.classifier = nn.Linear(8 * 16, 100)

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture
def add_model():
    """add_model(name, builder, **options) -> name: a model in the registry (trainables.models.register_model)
    for this test only."""
    with ExitStack() as stack:
        yield lambda name, builder, **options: stack.enter_context(models.registered_model(name, builder, **options))


@pytest.fixture
def tiny_model(add_model) -> str:
    """Registers 'tiny_net' for this test only; returns its name."""
    return add_model("tiny_net", TinyNet)


NO_AUG = dict(crop_padding=0, hflip=False)


@pytest.fixture
def tiny_config(tiny_model, synth_npz):
    """TrainConfig factory: tiny model, synthetic data, CPU fp32, no augmentation unless overridden."""

    def make(**kw) -> TrainConfig:
        base = dict(model=tiny_model, data=synth_npz, epochs=2, batch_size=32, lr=0.05, scheduler="cosine",
                    device="cpu", precision="fp32", val_fraction=0.2, **NO_AUG)
        return TrainConfig.from_dict({**base, **kw})

    return make


@pytest.fixture(autouse=True, scope="session")
def _private_corruption_cache(tmp_path_factory):
    """Corrupted test sets are cached across sweeps (robustness/corrupted_set.py): tests keep theirs to themselves
    (also the orchestrator processes they start, which inherit the environment)."""
    old = os.environ.get("CIFAR_SWEEP_CACHE")
    os.environ["CIFAR_SWEEP_CACHE"] = str(tmp_path_factory.mktemp("corruption-cache"))
    yield
    if old is None:
        os.environ.pop("CIFAR_SWEEP_CACHE", None)
    else:
        os.environ["CIFAR_SWEEP_CACHE"] = old


@pytest.fixture(autouse=True)
def _fast_torch():
    torch.set_num_threads(min(2, torch.get_num_threads()))
