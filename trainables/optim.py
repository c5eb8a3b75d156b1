"""Optimizer, per-batch LR schedule and backbone freezing, all from the config.

Parameter groups: group 0 is the head (`head_parameters`) at `lr`, group 1 the rest ("backbone")
at `lr * backbone_lr_mult`. Weight decay applies to every parameter, as in torch's defaults and the
seed's recipes, so results stay comparable with theirs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import TrainConfig
from .models import head_parameters


def group_lr_mults(config: TrainConfig) -> list[float]:
    """Each group's LR as a multiple of the head's: head, backbone (a model without a backbone has the head alone)."""
    return [1.0, config.backbone_lr_mult]


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    head_ids = {id(p) for p in head_parameters(model)}
    head = [p for p in model.parameters() if id(p) in head_ids]
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": config.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": config.lr * group_lr_mults(config)[1]})
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
