"""An ensemble of the sweep's best distinct trials (`retrain: {ensemble_top: K}`).

The top K trials that trained every epoch keep their weights after the sweep (the rest are dropped). Each predicts
the validation images the trials were ranked on (the corrupted ones when the rule ranks by ood_val_*), with the
weights it trained on the training split only: never the test set. Members are chosen greedily, with replacement
(Caruana et al., "Ensemble selection from libraries of models", ICML 2004): start empty, add the candidate that most
improves the averaged probabilities' score, 2K times, keep the best prefix; a member's weight is how often it was
added. The choice is saved in final/ensemble.json, so a stopped retrain goes on with the same members.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from trainables import atomic

ENSEMBLE_FILE = "ensemble.json"


@dataclass(frozen=True)
class Member:
    trial_id: str
    weight: float  # its share of the ensemble's averaged probabilities
    config: dict  # the trial's config (best.json's form)
    checkpoint: str | None  # its final training state, while the sweep keeps it
    status: str = "completed"


def greedy(probs: list[np.ndarray], labels: np.ndarray, steps: int, score) -> tuple[list[int], list[float]]:
    """(how often each candidate was picked, the ensemble's score after each step), on `labels`."""
    counts, total, scores = [0] * len(probs), np.zeros_like(probs[0]), []
    best_counts, best_score = None, -np.inf
    for step in range(1, steps + 1):
        trials = [score((total + p) / step, labels) for p in probs]
        pick = int(np.argmax(trials))  # ties: the earlier candidate, i.e. the better-ranked trial
        counts[pick] += 1
        total = total + probs[pick]
        scores.append(trials[pick])
        if trials[pick] > best_score + 1e-12:  # a longer prefix must do strictly better
            best_counts, best_score = list(counts), trials[pick]
    return best_counts, scores


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def neg_log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def choose(folder: str, candidates: list[dict], rule, images: np.ndarray, labels: np.ndarray, device: str,
           say) -> list[Member]:
    """The members (saved: a second call returns the same), from best.json's `candidates` (best first)."""
    path = os.path.join(folder, "final", ENSEMBLE_FILE)
    if os.path.exists(path):
        import json

        with open(path) as f:
            saved = json.load(f)
        say(f"ensemble: the members chosen before ({', '.join(m['trial_id'] for m in saved['members'])})")
        return [Member(**m) for m in saved["members"]]
    usable = [c for c in candidates if c.get("checkpoint")]
    say(f"ensemble: {len(usable)} candidate trials predict {len(labels)} validation images "
        f"(the ones trials were ranked on)")
    probs = [_probabilities(c, images, device) for c in usable]
    score = accuracy if rule.metric.endswith("_acc") else neg_log_loss
    counts, scores = greedy(probs, labels, 2 * len(usable), score)
    total = sum(counts)
    members = [Member(c["trial_id"], n / total, c["config"], c["checkpoint"], c.get("status", "completed"))
               for c, n in zip(usable, counts) if n]
    single = [score(p, labels) for p in probs]
    atomic.write_json(path, {
        "members": [asdict(m) for m in members], "selected_on": f"{len(labels)} validation images",
        "metric": "accuracy" if score is accuracy else "mean log-likelihood",
        "ensemble_score": max(scores), "best_single": {"trial_id": usable[int(np.argmax(single))]["trial_id"],
                                                       "score": max(single)},
        "candidates": [{"trial_id": c["trial_id"], "score": s} for c, s in zip(usable, single)],
        "note": "scored on the images it was chosen on: optimistic; the test set is never used to choose"})
    say(f"ensemble: {len(members)} member(s) " + ", ".join(f"{m.trial_id} x{m.weight:.2f}" for m in members)
        + f"; validation {_pct(max(scores), score)} vs the best single trial's {_pct(max(single), score)}")
    return members


def _pct(v: float, score) -> str:
    return f"{100 * v:.1f}%" if score is accuracy else f"{v:.4f}"


def _probabilities(candidate: dict, images: np.ndarray, device: str) -> np.ndarray:
    import torch

    from trainables.checkpoint import inference_weights
    from trainables.config import TrainConfig
    from trainables.inference import predict_logits_batches
    from trainables.models import model_from_config

    from .ray_adapter import read_checkpoint

    model = model_from_config(TrainConfig.from_dict(candidate["config"]), pretrained=False)
    model.load_state_dict(inference_weights(read_checkpoint(candidate["checkpoint"])))
    out = [torch.softmax(logits, 1).numpy() for _, logits in predict_logits_batches(model.to(device), images, 1024,
                                                                                     device)]
    return np.concatenate(out).astype(np.float64)
