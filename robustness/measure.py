"""Labelled OOD accuracy: per corruption x severity, the mean over all, and clean accuracy beside it.

Three layouts are understood:
- a generated set (robustness.generate): distortionNN.npy + labels.npy (n,);
- CIFAR-100-C as published: gaussian_noise.npy … saturate.npy + labels.npy (5n,: the labels repeated per
  severity);
- the DL4DS files, which carry no labels: pass `labels` (the CIFAR-100 test labels in the official order;
  per-corruption names then assume distortionNN follows the generator order, see CHALLENGE.md).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from trainables.errors import DataError
from trainables.inference import predict

from .ood import DL4DS_ORDER, OOD_FILES, check_file, check_ood_dir
from .predict import predict_ood


def find_ood(directory: str) -> list[str]:
    """The 19 .npy paths of a DL4DS-named or a CIFAR-100-C-named directory, in DL4DS_ORDER (file i holds
    corruption DL4DS_ORDER[i])."""
    if all(os.path.isfile(os.path.join(directory, f)) for f in OOD_FILES):
        check_ood_dir(directory)
        return [os.path.join(directory, f) for f in OOD_FILES]
    named = [os.path.join(directory, f"{c}.npy") for c in DL4DS_ORDER]
    if all(os.path.isfile(p) for p in named):
        n = None
        for path in named:
            n = check_file(path, n)
        return named
    raise DataError(f"'{directory}' holds neither distortion00..18.npy (DL4DS / robustness.generate) nor "
                    f"{DL4DS_ORDER[0]}.npy … {DL4DS_ORDER[-1]}.npy (CIFAR-100-C)")


def load_labels(directory: str, labels=None, n: int | None = None) -> np.ndarray:
    """Labels as (5, n) int64: one row per severity (the same n labels repeated unless given per severity)."""
    if labels is None:
        path = os.path.join(directory, "labels.npy")
        if not os.path.isfile(path):
            raise DataError(f"no labels for '{directory}': it has no labels.npy (the DL4DS files are unlabelled; "
                            f"pass the CIFAR-100 test labels in the official order)")
        labels = path
    if isinstance(labels, (str, os.PathLike)):
        labels = np.load(labels)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if n is not None and len(labels) not in (n, 5 * n):
        raise DataError(f"{len(labels)} labels for {n} images per severity: need {n} or {5 * n}")
    if labels.size == 0 or labels.min() < 0 or labels.max() > 99:
        raise DataError("labels must be class ids 0..99")
    return labels.reshape(5, -1) if n is not None and len(labels) == 5 * n else np.tile(labels, (5, 1))


def accuracy_table(preds: np.ndarray, labels: np.ndarray, names=DL4DS_ORDER, clean_acc: float | None = None) -> dict:
    """Accuracies from predictions (files, 5n) and labels (5, n) or (n,); row i of preds is corruption names[i]."""
    preds = np.asarray(preds)
    n = preds.shape[1] // 5
    labels = np.asarray(labels).reshape(-1, n)
    labels = np.tile(labels, (5, 1)) if len(labels) == 1 else labels
    correct = preds.reshape(len(preds), 5, n) == labels[np.newaxis]
    per = correct.mean(axis=2)  # (files, 5)
    result = {
        "n": n,
        "accuracy": {name: [float(a) for a in row] for name, row in zip(names, per)},
        "corruption_mean": {name: float(row.mean()) for name, row in zip(names, per)},
        "severity_mean": [float(a) for a in per.mean(axis=0)],
        "ood_acc": float(correct.mean()),
        "clean_acc": clean_acc,
    }
    result["ood_to_clean"] = result["ood_acc"] / clean_acc if clean_acc else None
    return result


def measure(model: torch.nn.Module, ood_dir: str, labels=None, clean_x=None, clean_y=None, batch_size: int = 1024,
            device: str | torch.device = "cpu", progress=None, **kw) -> dict:
    """Predict every OOD image of `ood_dir` (streaming) and score it; clean accuracy too if clean_x/y given."""
    paths = find_ood(ood_dir)
    preds = predict_ood(model, paths, batch_size, device, progress, **kw)
    labels = load_labels(ood_dir, labels, preds.shape[1] // 5)
    clean = None
    if clean_x is not None:
        clean = float((predict(model, clean_x, batch_size, device, **kw) == np.asarray(clean_y)).mean())
    return accuracy_table(preds, labels, DL4DS_ORDER, clean)


def format_table(result: dict) -> str:
    """Markdown: one row per corruption (accuracy % at severity 1..5 and mean), then the means and clean."""
    lines = ["| corruption | s1 | s2 | s3 | s4 | s5 | mean |", "|---|---|---|---|---|---|---|"]
    for name, row in result["accuracy"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in row)
                     + f" | {100 * result['corruption_mean'][name]:.1f} |")
    lines.append("| **all** | " + " | ".join(f"{100 * a:.1f}" for a in result["severity_mean"])
                 + f" | **{100 * result['ood_acc']:.1f}** |")
    if result.get("clean_acc") is not None:
        lines.append(f"| clean | | | | | | {100 * result['clean_acc']:.1f} |")
        ratio = result.get("ood_to_clean")  # None when clean accuracy is 0: a model that learnt nothing yet
        lines.append(f"\nOOD / clean = {'n/a' if ratio is None else f'{ratio:.3f}'} "
                     f"({result['n']} images per severity)")
    else:
        lines.append(f"\n{result['n']} images per severity")
    return "\n".join(lines)
