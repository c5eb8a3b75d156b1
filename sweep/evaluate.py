"""Scoring the final model(s) on the clean test set: an ensemble is the weighted mean of its models' softmax outputs."""
from __future__ import annotations

import numpy as np
import torch

from trainables.inference import predict_logits_batches


class Ensemble(torch.nn.Module):
    """Log of the weighted mean of the models' softmax outputs (a log-probability, so it composes like logits:
    argmax, softmax and cross-entropy mean what they should); one model is just that model."""

    def __init__(self, models: list[torch.nn.Module], weights: list[float] | None = None):
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        w = torch.tensor(weights if weights else [1.0] * len(models), dtype=torch.float32)
        self.register_buffer("log_weights", (w / w.sum()).log().view(-1, 1, 1), persistent=False)

    def forward(self, x):
        if len(self.models) == 1:
            return self.models[0](x)
        logp = torch.stack([m(x).log_softmax(-1) for m in self.models])
        return (logp + self.log_weights.to(logp.device)).logsumexp(0)


def final_model(models: list[torch.nn.Module], tta: str = "none", weights: list[float] | None = None):
    """What submission_ood.csv and the robustness report predict with: each model under test-time augmentation
    (averaged probabilities over its views), the models averaged with their weights (seeds equally; the ensemble's
    members as ensemble selection chose)."""
    from trainables.inference import with_tta

    return Ensemble([with_tta(m, tta) if tta != "none" else m for m in models], weights)


def test_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: str) -> float:
    correct = 0
    for start, logits in predict_logits_batches(model, x, 1024, device):
        correct += int((logits.argmax(1).numpy() == y[start:start + len(logits)]).sum())
    return correct / max(1, len(y))
