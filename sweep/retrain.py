"""The best config, retrained (train+val, the configured epochs and seeds), scored on the clean test set,
and its OOD predictions written as submission_ood.csv.

Each seed's model is saved on its own as soon as it is trained, and its training checkpoints every
epoch, so an interrupted retrain continues where it stopped.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from trainables import atomic
from trainables.config import TrainConfig
from trainables.inference import predict_logits_batches

OOD_HOWTO = ("no OOD data given, so no submission_ood.csv was written. Get the 19 files "
             "distortion00.npy … distortion18.npy (GitHub: DL4DS/ood-test-files, folder ood-test/) into a "
             "folder and pass it with --ood-dir, or run `python -m robustness.generate` for a local labelled set")


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


class Ensemble(torch.nn.Module):
    """Mean of the seeds' softmax outputs; one seed is just that model."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, x):
        return torch.stack([m(x).softmax(-1) for m in self.models]).mean(0)


def test_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: str) -> float:
    correct = 0
    for start, logits in predict_logits_batches(model, x, 1024, device):
        correct += int((logits.argmax(1).numpy() == y[start:start + len(logits)]).sum())
    return correct / max(1, len(y))
