"""Robustness of the final model, measured wherever labels are known: a generated CIFAR-100-C-style copy of the
clean test set (all 19 corruptions, marking those the sweep tuned on), and the DL4DS files themselves when
the data came in the official test order (torchvision's CIFAR-100 folder), whose labels then apply."""
from __future__ import annotations

import json
import os

import numpy as np

from robustness.measure import accuracy_table
from robustness.ood import CORRUPTIONS, SEVERITIES
from robustness.report import write_report
from trainables import atomic
from trainables.inference import predict

from .ood_val import _stratified, corrupted_copy


def generated(model, arrays, ood, clean_acc: float, device: str, out_dir: str, say) -> dict:
    pick = _stratified(arrays.y_test, ood.test_images, ood.seed + 1)
    x, y = arrays.x_test[pick], arrays.y_test[pick]
    say(f"robustness: corrupting {len(y)} test images × 19 corruptions × 5 severities")
    preds = np.stack([predict(model, corrupted_copy(x, y, [name], SEVERITIES, ood.seed)[0], 1024, device)
                      for name in CORRUPTIONS])
    result = accuracy_table(preds, y, CORRUPTIONS, clean_acc)
    tuned = [c for c in CORRUPTIONS if c in ood.corruptions]
    result["tuned_on"] = tuned
    result["held_out_acc"] = float(np.mean([result["corruption_mean"][c] for c in CORRUPTIONS if c not in tuned]))
    result["tuned_acc"] = float(np.mean([result["corruption_mean"][c] for c in tuned])) if tuned else None
    return _save(result, out_dir, "Generated CIFAR-100-C-style test set", say)


def dl4ds(model, ood_dir: str, y_test: np.ndarray, preds: np.ndarray, clean_acc: float, out_dir: str, say) -> dict:
    """preds: the submission's (19, 50000) predictions; labels: the official-order test labels."""
    result = accuracy_table(preds, y_test, CORRUPTIONS, clean_acc)
    return _save(result, out_dir, f"DL4DS OOD files ({ood_dir})", say)


def _save(result: dict, out_dir: str, title: str, say) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    write_report(result, out_dir, title=title)
    atomic.write_json(os.path.join(out_dir, "robustness.json"), result)
    line = f"robustness ({title}): OOD accuracy {result['ood_acc']:.4f}"
    if result.get("held_out_acc") is not None and result.get("tuned_acc") is not None:
        line += f" (held-out corruptions {result['held_out_acc']:.4f}, tuned-on {result['tuned_acc']:.4f})"
    say(line)
    return result


def load(out_dir: str) -> dict | None:
    path = os.path.join(out_dir, "robustness.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
