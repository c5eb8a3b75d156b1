"""The best config, retrained per seed (train+val, the configured epochs).

Each seed's model is saved on its own as soon as it is trained, and its training checkpoints every
epoch, so an interrupted retrain continues where it stopped.
"""
from __future__ import annotations

import os
import time

import torch

from trainables import atomic
from trainables.config import TrainConfig
from trainables.models import model_from_config

from .data_check import DataShape, check_config
from .outcome import StopReason, StopRequested


def retrain_config(best: dict, spec, seed: int) -> TrainConfig:
    overrides = {"seed": seed}
    if spec.retrain.epochs:
        overrides["epochs"] = spec.retrain.epochs
    if spec.retrain.train_on_val:
        overrides["val_fraction"] = 0.0
    # The trial's warm-up / head-only epochs may not fit a shorter retrain: clip them to what fits.
    epochs = overrides.get("epochs", best.get("epochs", TrainConfig.epochs))
    overrides["warmup_epochs"] = min(best.get("warmup_epochs", 0), epochs - 1)
    overrides["freeze_epochs"] = min(best.get("freeze_epochs", 0), epochs)
    return TrainConfig.from_dict(best, **overrides)


def train_one(cfg_dict: dict, data, ckpt_path: str | None, progress=None):
    """Train one seed; checkpoint every epoch to ckpt_path (when given) and resume from it."""
    from trainables.engine import train

    cfg = TrainConfig.from_dict(cfg_dict)
    state = None
    if ckpt_path and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)

    def report(metrics: dict, checkpoint: dict) -> None:
        if ckpt_path:
            atomic.torch_save(checkpoint, ckpt_path)
        if progress:
            progress(metrics)

    result = train(cfg, report, checkpoint=state, data=data)
    return {k: v.cpu() for k, v in result.model.state_dict().items()}, result.history


def retrain_seeds(folder: str, spec, best: dict, arrays, say, deadline=None, read_checkpoint=None) -> list[dict]:
    """Per seed: {seed, model, history, path, config}. A seed already saved is loaded; the best trial's own
    checkpoint is reused when retraining would repeat it exactly; otherwise trained (resumably)."""
    final_dir = os.path.join(folder, "final")
    os.makedirs(final_dir, exist_ok=True)
    shape = DataShape.of(arrays, best["data"]["path"])
    out = []
    for seed in spec.retrain.seeds:
        cfg = retrain_config(best["config"], spec, seed)
        check_config(cfg, shape, what=f"the retrain of trial {best['trial_id']}")  # one line, before any epoch
        model_path = os.path.join(final_dir, f"model_seed{seed}.pt")
        model = model_from_config(cfg, pretrained=False)  # same stem and input wrapper as the saved state
        reuse = reusable_checkpoint(best, cfg)
        if reuse and read_checkpoint and not os.path.exists(model_path):
            state = read_checkpoint(reuse)
            atomic.torch_save({"model": state["model"], "config": cfg.to_dict(), "seed": seed,
                               "history": state.get("history", []), "commit": atomic.git_commit(),
                               "data": best["data"], "from_trial": best["trial_id"]}, model_path)
            say(f"retrain seed {seed}: same config, data and epochs as trial {best['trial_id']}: "
                f"reusing its final checkpoint instead of training again")
        if os.path.exists(model_path):  # finished before an interruption (or reused): keep it
            saved = torch.load(model_path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["model"])
            history = saved["history"]
            say(f"retrain seed {seed}: already done ({model_path})")
        else:
            history = _train_seed(cfg, seed, arrays, final_dir, model, model_path, best, say, deadline)
        out.append({"seed": seed, "model": model, "history": history, "path": model_path, "config": cfg})
    return out


def _train_seed(cfg, seed, arrays, final_dir, model, model_path, best, say, deadline) -> list[dict]:
    say(f"retrain seed {seed}: {cfg.model}, {cfg.epochs} epochs on "
        f"{'train+val' if cfg.val_fraction == 0 else 'train'}")
    t0 = time.time()
    ckpt = os.path.join(final_dir, f"retrain_seed{seed}.ckpt")

    def progress(m, total=cfg.epochs):
        say(f"retrain seed {seed}: epoch {m['epoch']}/{total} train_loss {m['train_loss']:.3f} "
            f"train_acc {100 * m['train_acc']:.1f}% ({m['epoch_time_s']:.0f}s)")
        if deadline is not None and m["epoch"] < total and not deadline.fits(m["epoch_time_s"]):
            say(f"retrain seed {seed}: the next epoch would not end before the time limit; stopping here")
            raise StopRequested(StopReason.TIME_LIMIT)

    state, history = train_one(cfg.to_dict(), arrays, ckpt, progress)
    model.load_state_dict(state)
    atomic.torch_save({"model": state, "config": cfg.to_dict(), "seed": seed, "history": history,
                       "commit": atomic.git_commit(), "data": best["data"]}, model_path)
    if os.path.exists(ckpt):
        os.unlink(ckpt)
    say(f"retrain seed {seed}: done in {time.time() - t0:.0f}s")
    return history


def reusable_checkpoint(best: dict, cfg) -> str | None:
    """The trial's checkpoint when retraining would repeat it exactly (same config incl. seed, data, epochs)."""
    ckpt = best.get("checkpoint")
    if not ckpt or best.get("status") != "completed":
        return None
    same = {k: v for k, v in cfg.to_dict().items() if k != "data"} == \
        {k: v for k, v in best["config"].items() if k != "data"}
    return ckpt if same else None
