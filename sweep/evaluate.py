"""Scoring the final model(s) on the clean test set: the seeds' ensemble is the mean of their softmax outputs."""
from __future__ import annotations

import numpy as np
import torch

from trainables.inference import predict_logits_batches


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
