"""Which TrainConfig keys may differ between a checkpoint and the config that continues it, and why the others may
not. No torch: the sweep checks a search space's Population Based Training mutations with it when it loads.

A plain resume continues exactly, so only RUNTIME_KEYS may differ. PBT (`train(..., mutated=True)`) copies one
trial's checkpoint into another trial under new values of MUTABLE_KEYS: each of those is read afresh at every step
(lr, weight_decay and momentum from the optimizer's param groups, rewritten on load; augmentation and loss settings
from the config), so the new value applies from the next step and nothing in the checkpoint contradicts it.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError, did_you_mean

# Where or how fast a run executes, not what it computes: may differ on any resume.
RUNTIME_KEYS = ("device", "threads", "data", "download", "eval_batch_size", "compile")

MUTABLE_KEYS = (
    "lr", "weight_decay", "momentum", "backbone_lr_mult", "clip_grad_norm", "label_smoothing",
    "mixup_alpha", "cutmix_alpha", "color_jitter", "random_erasing", "corruption_aug",
    "augmix", "augmix_severity", "augmix_width", "augmix_depth", "augmix_alpha", "augmix_jsd_weight",
    "randaugment_ops", "randaugment_magnitude",
)

# Every other key, and why it cannot mutate: its value is built into state the checkpoint carries, or into what
# the run's numbers mean. The last group has no state of its own; it is outside PBT's set by choice.
_WHY = {
    "it changes the network: the checkpoint's weights belong to another architecture or initialisation": (
        "model", "pretrained", "weights_path", "stem", "input_size"),
    "it changes the steps per epoch and the schedule's length": ("batch_size", "epochs"),
    "the checkpoint's optimizer state (momentum buffers, Adam moments, nesterov) belongs to one optimizer": (
        "optimizer", "nesterov"),
    "it changes the LR schedule's shape, and the saved position in it would mean another LR": (
        "scheduler", "step_size", "gamma", "warmup_epochs", "pct_start"),
    "the checkpoint's averaged weights (and SWALR state) were accumulated under it": (
        "ema_decay", "swa_epochs", "swa_lr"),
    "the checkpoint restores the run's random streams, so a new seed would change nothing": ("seed",),
    "it changes the training and validation images, so scores before and after would not compare": (
        "val_fraction", "subset"),
    "it sets by epoch number when the backbone starts training, a boundary the run may have passed": (
        "freeze_epochs",),
    "it changes every step's arithmetic and whether fp16's loss scaler (saved state) is on": ("precision",),
    "it changes the weights' memory layout and so every convolution's rounding": ("channels_last",),
    "it picks a kind of augmentation, kept for a trial's whole history (PBT mutates strengths and the augmix "
    "switch; it holds no state, so MUTABLE_KEYS could take it)": (
        "crop_padding", "hflip", "auto_augment", "augmix_jsd"),
}
STRUCTURAL = {key: why for why, keys in _WHY.items() for key in keys}

# Mutable keys whose value may not cross a line: (test on old and new, why)
_VALUE_RULES = {
    "momentum": (lambda old, new: (old == 0) != (new == 0),
                 "it cannot move between 0 and above 0: onecycle cycles momentum only when it starts above 0"),
}


def why_not_mutable(key: str) -> str | None:
    """None when `key` may differ between a checkpoint and the config continuing it under PBT; else one line
    saying why not, e.g. "batch_size cannot mutate under PBT: it changes the steps per epoch and the schedule's
    length". An unknown key is a ConfigError."""
    if key in MUTABLE_KEYS or key in RUNTIME_KEYS:
        return None
    if key not in STRUCTURAL:
        raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, [*MUTABLE_KEYS, *STRUCTURAL])}", key=key)
    return f"{key} cannot mutate under PBT: {STRUCTURAL[key]}"


def mutation_error(key: str, old: Any, new: Any) -> str | None:
    """why_not_mutable, and for a mutable key whether this particular change is allowed."""
    why = why_not_mutable(key)
    rule = _VALUE_RULES.get(key)
    if why is None and rule is not None and rule[0](old, new):
        why = f"{key} cannot mutate from {old!r} to {new!r} under PBT: {rule[1]}"
    return why
