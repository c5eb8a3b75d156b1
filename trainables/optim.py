"""Optimizer, per-batch LR schedule and backbone freezing, all from the config.

Parameter groups: group 0 is the head (`head_parameters`) at `lr`, group 1 the rest ("backbone")
at `lr * backbone_lr_mult`. Weight decay applies to every parameter, as in torch's defaults and the
seed's recipes, so results stay comparable with theirs.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn

from .config import TrainConfig
from .models import head_parameters


def group_lr_mults(backbone_lr_mult: float) -> list[float]:
    """Each group's LR as a multiple of the head's: head, backbone (a model without a backbone has the head alone)."""
    return [1.0, backbone_lr_mult]


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    head_ids = {id(p) for p in head_parameters(model)}
    head = [p for p in model.parameters() if id(p) in head_ids]
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": config.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": config.lr * group_lr_mults(config.backbone_lr_mult)[1]})
    return groups


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Stepped once per batch. Closed-form LambdaLR factors: the only state is the step count, so resume is exact."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # OneCycleLR cycles momentum (SGD momentum / AdamW beta1) by default; SGD without momentum cannot.
        cycle = config.optimizer == "adamw" or config.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total,
                                                   pct_start=config.pct_start, cycle_momentum=cycle)
    warmup = config.warmup_epochs * steps_per_epoch
    step_every = config.step_size * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup  # linear warm-up; never exactly 0 on the first batch
        if config.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
        if config.scheduler == "step":
            return config.gamma ** (step // step_every)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """freeze_epochs: only the head trains. Frozen params get no grad, so the optimizer skips them
    (no momentum, no weight decay). Norm layers keep updating running statistics (still in train mode)."""
    head_ids = {id(p) for p in head_parameters(model)}
    for p in model.parameters():
        if id(p) not in head_ids:
            p.requires_grad_(not frozen)


# Every LR a param group holds under our schedules (LambdaLR: initial_lr; OneCycleLR: initial, max and min).
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


def apply_mutation(optimizer: torch.optim.Optimizer, scheduler, before: Mapping[str, Any], config: TrainConfig,
                   schedule_drives_lr: bool = True) -> None:
    """PBT: a checkpoint written under the config `before` has been loaded; from the next step `config`'s lr,
    backbone_lr_mult, weight_decay and momentum apply. The schedule keeps its position and every LR it holds is
    rescaled to the new base lr (LambdaLR and OneCycleLR are linear in it), each group at its multiplier. Where
    SWALR drives the LR (schedule_drives_lr False) it stays swa_lr's; only the multipliers change.
    """
    groups, mults = optimizer.param_groups, group_lr_mults(config.backbone_lr_mult)
    if (config.lr, mults) != (before["lr"], group_lr_mults(before["backbone_lr_mult"])):  # else: resume bit-exact
        head = groups[0]
        new_head = {k: head[k] * (config.lr / before["lr"]) for k in LR_KEYS if k in head}
        if not schedule_drives_lr:
            new_head["lr"] = head["lr"]
        if "swa_lr" in head:  # SWALR's target: swa_lr (structural) times each group's multiplier
            new_head["swa_lr"] = head["swa_lr"]
        for group, mult in zip(groups, mults):
            group.update({k: v * mult for k, v in new_head.items()})
        scheduler.base_lrs = [g["initial_lr"] for g in groups]
    # OneCycleLR writes momentum itself at every step (0.85-0.95, as in a fresh run): nothing to set there
    cycled = isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) and scheduler.cycle_momentum
    for group in groups:
        group["weight_decay"] = config.weight_decay
        if "momentum" in group and not cycled:
            group["momentum"] = config.momentum
