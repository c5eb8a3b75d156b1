"""Weight averaging beside the trained model: EMA or SWA (torch.optim.swa_utils), or neither, from the config.

Once averaging has begun, validation, the returned model and the checkpoint's inference weights
(`checkpoint.inference_weights`) are the averaged ones. What it costs:
- EMA: one more copy of the model (parameters and buffers) on the device, lerped after every optimizer step
  (one parameter-sized update per step).
- SWA: one more copy of the model, averaged once at the end of each of the last `swa_epochs` epochs, then its
  batch-norm statistics recomputed by `update_bn`: one extra forward pass over the training images per SWA epoch.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

from .config import TrainConfig
from .data import normalize
from .optim import group_lr_mults


class Raw:
    """No averaging: the trained weights are the ones evaluated and returned."""

    key = ""  # the checkpoint entry holding the averaged model's state (AveragedModel.state_dict, n_averaged in it)

    def __init__(self, model: nn.Module):
        self.raw = model

    def after_step(self) -> None:
        """Called after every optimizer step."""

    def scheduler(self, epoch: int) -> LRScheduler | None:
        """The LR scheduler that drives `epoch` instead of the configured one; None: the configured one."""
        return None

    def end_epoch(self, epoch: int, x_train: torch.Tensor) -> None:
        """Called after each epoch's last step, with the training images (uint8 NCHW on the device)."""

    def model(self) -> nn.Module:
        """The weights to evaluate and return now."""
        return self.raw

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Ema(Raw):
    """Exponential moving average of the parameters and the batch-norm buffers, after every optimizer step."""

    key = "ema"

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model)
        self.avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def after_step(self) -> None:
        self.avg.update_parameters(self.raw)

    def model(self) -> nn.Module:
        return self.avg.module if self.avg.n_averaged > 0 else self.raw

    def state_dict(self) -> dict:
        return {self.key: self.avg.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.avg.load_state_dict(state[self.key])


class Swa(Raw):
    """Stochastic weight averaging of the weights at the end of each of the last `swa_epochs` epochs.

    With swa_lr > 0, SWALR drives those epochs: a cosine anneal from the schedule's LR to swa_lr over the first SWA
    epoch's steps, then swa_lr held (each group at its backbone_lr_mult), so the snapshots are samples around one
    basin rather than points of a decaying schedule. Batch-norm statistics are not averaged but recomputed for the
    averaged weights (update_bn), on the training images normalised as training normalises them, unaugmented.
    """

    key = "swa"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                 steps_per_epoch: int, amp_dtype: torch.dtype | None):
        super().__init__(model)
        self.avg = AveragedModel(model)
        self.first = config.epochs - config.swa_epochs + 1
        # batch_size, not eval_batch_size: update_bn weighs each batch equally, and eval_batch_size may change on
        # resume (a runtime key) while the statistics must not
        self.batch_size, self.channels_last, self.amp_dtype = config.batch_size, config.channels_last, amp_dtype
        # Built now, at no cost to the LR (its first step keeps every group's LR), so resuming finds it to load into;
        # stepped per batch, so anneal_epochs counts steps.
        mults = group_lr_mults(config.backbone_lr_mult)[:len(optimizer.param_groups)]
        self.swalr = None if not config.swa_lr else SWALR(
            optimizer, [config.swa_lr * m for m in mults], anneal_epochs=steps_per_epoch, anneal_strategy="cos")

    def scheduler(self, epoch: int) -> LRScheduler | None:
        return self.swalr if epoch >= self.first else None

    def end_epoch(self, epoch: int, x_train: torch.Tensor) -> None:
        if epoch < self.first:
            return
        self.avg.update_parameters(self.raw)
        # fork_rng: dropout draws in update_bn's train-mode pass leave the training's random stream as it was
        devices = [x_train.device] if x_train.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.autocast(
                x_train.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            update_bn(self._batches(x_train), self.avg.module)

    def _batches(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        for start in range(0, len(x), self.batch_size):
            xb = normalize(x[start:start + self.batch_size])
            yield xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def model(self) -> nn.Module:
        return self.avg.module if self.avg.n_averaged > 0 else self.raw

    def state_dict(self) -> dict:
        return {self.key: self.avg.state_dict(), **({"swa_scheduler": self.swalr.state_dict()} if self.swalr else {})}

    def load_state_dict(self, state: dict) -> None:
        self.avg.load_state_dict(state[self.key])
        if self.swalr is not None:
            self.swalr.load_state_dict(state["swa_scheduler"])


STATE_KEYS = (Ema.key, Swa.key)  # checkpoint entries that hold averaged weights


def build(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
          amp_dtype: torch.dtype | None) -> Raw:
    """The config allows at most one of EMA and SWA (TrainConfig.validate)."""
    if config.ema_decay:
        return Ema(model, config.ema_decay)
    if config.swa_epochs:
        return Swa(model, optimizer, config, steps_per_epoch, amp_dtype)
    return Raw(model)
