"""Scoring the final model(s) on the clean test set: the seeds' ensemble is the mean of their softmax outputs."""
from __future__ import annotations

import math

import numpy as np
import torch

from trainables.inference import predict_logits_batches


class Ensemble(torch.nn.Module):
    """Log of the mean of the seeds' softmax outputs (a log-probability, so it composes like logits: argmax,
    softmax and cross-entropy mean what they should); one seed is just that model."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, x):
        if len(self.models) == 1:
            return self.models[0](x)
        return torch.stack([m(x).log_softmax(-1) for m in self.models]).logsumexp(0) - math.log(len(self.models))


def final_model(models: list[torch.nn.Module], tta: str = "none") -> torch.nn.Module:
    """What submission_ood.csv and the robustness report predict with: each seed's model under test-time
    augmentation (averaged probabilities over its views), the seeds averaged."""
    from trainables.inference import with_tta

    return Ensemble([with_tta(m, tta) if tta != "none" else m for m in models])


def test_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: str) -> float:
    correct = 0
    for start, logits in predict_logits_batches(model, x, 1024, device):
        correct += int((logits.argmax(1).numpy() == y[start:start + len(logits)]).sum())
    return correct / max(1, len(y))
