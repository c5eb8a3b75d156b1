"""Shared by the engine's tests: a checkpoint's trip through disk, histories without their timings."""
from __future__ import annotations

import io

import torch

TIMING = ("epoch_time_s", "images_per_s")


def roundtrip(state: dict) -> dict:
    """Exactly what a checkpoint goes through on disk: torch.save, then a weights_only load."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in history]


def assert_same_state(a: dict, b: dict) -> None:
    """Two state dicts, bit for bit."""
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name
