"""Checkpoint dicts: everything that makes resumed training continue exactly, in plain types only.

Only tensors, dicts, lists, numbers and strings, so `torch.load(weights_only=True)` reads them back.
"""
from __future__ import annotations

from typing import Any

import torch

from .averaging import STATE_KEYS
from .errors import ConfigError, WeightsError, first_line
from .mutable import RUNTIME_KEYS, mutation_error


def snapshot(obj: Any) -> Any:
    """Detached CPU copies: the dict stays valid while training keeps updating the live tensors."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


def rng_state(generator: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "augment": generator.get_state(),
    }


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["augment"])


def check_compatible(saved: dict, config_dict: dict, mutated: bool = False) -> None:
    """A checkpoint continues only the run that wrote it (RUNTIME_KEYS aside); with mutated=True (PBT) the
    MUTABLE_KEYS may differ too. Says which setting differs, and under PBT why it cannot."""
    for key, value in config_dict.items():
        if key in RUNTIME_KEYS or key not in saved or saved[key] == value:
            continue
        why = mutation_error(key, saved[key], value) if mutated else "resume with the same config or start a new run"
        if why:
            raise ConfigError(f"checkpoint was written with {key}={saved[key]!r} but this config has "
                              f"{key}={value!r}; {why}", key=key)


def inference_weights(state: dict) -> dict:
    """The state dict to predict with from a training checkpoint, for model_from_config(state's config): the
    averaged weights where EMA or SWA has begun averaging (what that epoch's validation measured), else "model"."""
    for key in STATE_KEYS:
        averaged = state.get(key)
        if averaged is not None and int(averaged["n_averaged"]) > 0:
            return {name[len("module."):]: value for name, value in averaged.items() if name.startswith("module.")}
    return state["model"]


def load(path: str) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated / not a torch file / unsafe pickle content
        raise WeightsError(f"checkpoint '{path}' could not be read ({first_line(exc)})") from None
    if not isinstance(ckpt, dict) or not {"epoch", "model", "optimizer", "config"} <= set(ckpt):
        raise WeightsError(f"'{path}' is not a training checkpoint (expected keys epoch, model, optimizer, config)")
    return ckpt
