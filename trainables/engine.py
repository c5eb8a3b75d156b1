"""The training loop: `train(config, report)` builds everything from the config and reports every epoch.

The whole training split sits on the training device as uint8 NCHW (CIFAR-100 train is 150 MB);
each batch is gathered by index from a seeded permutation and augmented there (airbench's way), so
there are no DataLoader workers and every random draw comes from one `torch.Generator` that the
checkpoint saves: resuming continues exactly.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import averaging
from . import checkpoint as ckpt
from .augment import BatchAugment, mix, split_views
from .augmix import jsd_loss
from .config import TrainConfig
from .data import SPLIT_SEED, Arrays, Split, load_arrays, split
from .errors import DivergedError
from .inference import predict_logits_batches
from .models import model_from_config
from .optim import apply_mutation, build_optimizer, build_scheduler, set_backbone_frozen

Report = Callable[[dict, dict], None]
# On CUDA, checking the loss syncs the GPU; look every this many steps (and always at epoch end).
CHECK_EVERY_CUDA = 50


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict  # the last epoch's
    history: list[dict]


@dataclass
class Run:
    """Everything one epoch needs, built once from the config."""

    config: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    model: nn.Module  # eager module: state dicts and evaluation
    step_model: nn.Module  # what the training step calls (compiled when config.compile)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    mix: Callable
    generator: torch.Generator
    averaging: averaging.Raw  # EMA / SWA weights beside `model`, or none


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None = plain fp32. 'auto' is bf16 on CUDA GPUs that have it (Ampere+; no loss scaling needed), fp16 with
    loss scaling on older ones (a P100 has no bf16: torch would emulate it, slowly), fp32 on CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def build_run(config: TrainConfig, steps_per_epoch: int) -> Run:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # model initialisation; dropout draws from this stream too
    model = model_from_config(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    # Batch order + augmentation draws, apart from the global stream. On the CPU whatever the device:
    # augment.py draws its per-image decisions there, and the state resumes on any machine.
    generator = torch.Generator()
    generator.manual_seed(config.seed + 1)
    dtype = amp_dtype(config.precision, device)
    return Run(
        config=config, device=device, amp_dtype=dtype, model=model,
        step_model=torch.compile(model) if config.compile else model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        augment=BatchAugment(config), mix=mix, generator=generator,
        averaging=averaging.build(config, model, optimizer, steps_per_epoch, dtype),
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    """The last partial batch is dropped (a batch of 1 breaks batch norm); each epoch drops different images."""
    return max(1, n // batch_size)


def train_one_epoch(run: Run, x: torch.Tensor, y: torch.Tensor, epoch: int,
                    progress: Callable[[Iterable, int], Iterable] | None = None) -> dict:
    """One pass over x (uint8 NCHW on the device) -> train_loss, train_acc, lr, images_per_s."""
    cfg, model, dev = run.config, run.step_model, run.device
    run.model.train()
    set_backbone_frozen(run.model, epoch <= cfg.freeze_epochs)
    bs = min(cfg.batch_size, len(x))
    steps = steps_per_epoch(len(x), bs)
    check_every = CHECK_EVERY_CUDA if dev.type == "cuda" else 1  # on CPU a check costs nothing
    perm = torch.randperm(len(x), generator=run.generator).to(dev, non_blocking=True)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev)
    lr = run.optimizer.param_groups[0]["lr"]
    scheduler = run.averaging.scheduler(epoch) or run.scheduler
    start = time.perf_counter()
    for step in progress(range(steps), epoch) if progress else range(steps):
        idx = perm[step * bs:(step + 1) * bs]
        xb = run.augment(x[idx], run.generator)
        xb, ya, yb, lam = run.mix(xb, y[idx], cfg, run.generator)
        xb = split_views(xb)  # AugMix + JSD: clean, aug1, aug2 in one forward pass, so batch norm sees all three
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
            views = model(xb).float().split(len(idx))
        logits = views[0]
        loss = _mixed(F.cross_entropy(logits, ya, reduction="none", label_smoothing=cfg.label_smoothing),
                      F.cross_entropy(logits, yb, reduction="none", label_smoothing=cfg.label_smoothing), lam).mean()
        if len(views) > 1:
            loss = loss + cfg.augmix_jsd_weight * jsd_loss(views)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.clip_grad_norm:
            run.scaler.unscale_(run.optimizer)  # clip the true gradients, not fp16's loss-scaled ones
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.averaging.after_step()
        lr = run.optimizer.param_groups[0]["lr"]  # the head's lr, as used by this step
        scheduler.step()
        loss_sum += loss.detach()
        pred = logits.detach().argmax(1)
        correct += _mixed(pred == ya, pred == yb, lam).sum()
        if (step + 1) % check_every == 0 or step + 1 == steps:
            _check_finite(loss_sum, loss, epoch, step + 1)
    total_loss = loss_sum.item()  # also waits for the device, so the timing below is real
    seconds = time.perf_counter() - start
    return {"train_loss": total_loss / steps, "train_acc": correct.item() / (steps * bs), "lr": lr,
            "images_per_s": steps * bs / seconds}


def _mixed(a: torch.Tensor, b: torch.Tensor, lam) -> torch.Tensor:
    """lam * a + (1 - lam) * b; lam is a number or a per-image tensor (mixup / cutmix)."""
    return lam * a + (1 - lam) * b


def _check_finite(loss_sum: torch.Tensor, loss: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(loss_sum):
        raise DivergedError(epoch, step, float(loss.detach()))


@torch.no_grad()
def evaluate(model: nn.Module, x, y, batch_size: int = 1024, device: str | torch.device = "cpu",
             channels_last: bool = False, autocast_dtype: torch.dtype | None = None) -> dict:
    """Mean cross-entropy and accuracy on uint8 NHWC images, normalised only (never augmented)."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    loss, correct = 0.0, 0
    for start, logits in predict_logits_batches(model, x, batch_size, device, channels_last=channels_last,
                                                autocast_dtype=autocast_dtype):
        yb = y[start:start + len(logits)]
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += int((logits.argmax(1) == yb).sum())
    n = max(len(y), 1)
    return {"loss": loss / n, "acc": correct / n}


def prepare_split(config: TrainConfig, data=None) -> Split:
    """data: None (read config.data), a path, `Arrays` (split here) or a ready `Split`."""
    data = config.data if data is None else data
    if isinstance(data, (str, os.PathLike)):
        data = load_arrays(data, config.download)
    if isinstance(data, Arrays):
        data = split(data, config.val_fraction, SPLIT_SEED, config.subset)
    if not isinstance(data, Split):
        raise TypeError(f"data must be None, a path, Arrays or Split, not {type(data).__name__}")
    return data


def train(config: TrainConfig | Mapping, report: Report | None = None, *, checkpoint: dict | None = None,
          data=None, extra_val: Mapping[str, tuple] | None = None,
          progress: Callable[[Iterable, int], Iterable] | None = None, mutated: bool = False) -> TrainResult:
    """Train config.epochs epochs (from checkpoint['epoch'] + 1 when resuming); report(metrics, checkpoint) each epoch.

    progress(range_of_steps, epoch) may wrap each epoch's steps (the CLI's tqdm bar). mutated=True (PBT): the
    checkpoint may come from a run under other values of trainables.mutable.MUTABLE_KEYS; every state is restored
    and the new values apply from the next step (optim.apply_mutation). Without it a resume continues exactly.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    if checkpoint is not None:
        ckpt.check_compatible(checkpoint.get("config", {}), config.to_dict(), mutated)
    data = prepare_split(config, data)
    device = resolve_device(config.device)
    x_train = torch.from_numpy(data.x_train).to(device).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
    y_train = torch.from_numpy(data.y_train).to(device)
    run = build_run(config, steps_per_epoch(len(x_train), min(config.batch_size, len(x_train))))
    done, history = _restore(run, checkpoint) if checkpoint is not None else (0, [])
    if checkpoint is not None and mutated:
        apply_mutation(run.optimizer, run.scheduler, checkpoint["config"], config,
                       schedule_drives_lr=run.averaging.scheduler(done + 1) is None)
    evals = {"val": (data.x_val, data.y_val)} if len(data.y_val) else {}
    evals.update(extra_val or {})
    for epoch in range(done + 1, config.epochs + 1):
        start = time.perf_counter()
        tr = train_one_epoch(run, x_train, y_train, epoch, progress)
        run.averaging.end_epoch(epoch, x_train)
        metrics = {"epoch": epoch, "train_loss": tr["train_loss"], "train_acc": tr["train_acc"]}
        for name, (x, y) in evals.items():
            ev = evaluate(run.averaging.model(), x, y, config.eval_batch_size, device, config.channels_last,
                          run.amp_dtype)
            metrics.update({f"{name}_loss": ev["loss"], f"{name}_acc": ev["acc"]})
        metrics.update(lr=tr["lr"], epoch_time_s=time.perf_counter() - start, images_per_s=tr["images_per_s"])
        history.append(metrics)
        if report is not None:
            report(dict(metrics), make_checkpoint(run, epoch, history))
    return TrainResult(run.averaging.model(), dict(history[-1]) if history else {}, history)


def make_checkpoint(run: Run, epoch: int, history: list[dict]) -> dict:
    return ckpt.snapshot({
        "epoch": epoch,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": ckpt.rng_state(run.generator),
        "config": run.config.to_dict(),
        "history": [dict(m) for m in history],
        **run.averaging.state_dict(),  # "ema" or "swa" (+ "swa_scheduler" with swa_lr): see averaging.py
    })


def _restore(run: Run, state: dict) -> tuple[int, list[dict]]:
    """Load every piece of state; returns (epochs done, history so far)."""
    run.model.load_state_dict(state["model"])
    # A copy: Optimizer.load_state_dict keeps the given tensors as its state (momentum buffers, Adam moments), so
    # training would change the caller's checkpoint in place and a second run from it would start elsewhere.
    run.optimizer.load_state_dict(ckpt.snapshot(state["optimizer"]))
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.averaging.load_state_dict(state)
    ckpt.set_rng_state(state["rng"], run.generator)
    return int(state["epoch"]), [dict(m) for m in state.get("history", [])][:int(state["epoch"])]
