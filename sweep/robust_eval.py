"""Robustness of the final model, measured wherever labels are known: a generated CIFAR-100-C-style copy of the
clean test set (all 19 corruptions, marking those the sweep tuned on), a labelled OOD folder (labels.npy beside
the distortionNN.npy files, as `python -m robustness.generate` writes), and the DL4DS files themselves when the
data came in the official test order (torchvision's CIFAR-100 folder), whose labels then apply.

Accuracies are fractions in robustness.json and percent in everything a person reads (report.md, the heatmap,
the console line)."""
from __future__ import annotations

import os
import warnings

import numpy as np

from robustness.corrupted_set import cached_corrupt_all
from robustness.measure import accuracy_table, load_labels
from robustness.ood import DL4DS_ORDER
from robustness.progress import bar
from trainables import atomic
from trainables.corruption_table import NAMES, SEVERITIES
from trainables.inference import predict

from .ood_val import pick


def generated(model, arrays, ood, clean_acc: float, device: str, out_dir: str, say) -> dict:
    """Corrupt ood.test_images class-balanced test images by every corruption and severity (all cores; cached
    across sweeps), predict them and score them."""
    keep = pick(arrays.y_test, ood.test_images, ood.seed + 1)
    x, y = arrays.x_test[keep], arrays.y_test[keep]
    say(f"robustness: {len(y)} test images x {len(NAMES)} corruptions x {len(SEVERITIES)} severities "
        f"(ood_val.test_images; 0 skips this step)")
    # (19, 5n, 32, 32, 3); memory-mapped when cached: 1,000 test images make 292 MB
    images = cached_corrupt_all(x, NAMES, SEVERITIES, ood.seed, desc="robustness: corrupting", mmap=True, say=say)
    preds = np.empty(images.shape[:2], np.int64)
    with bar(images.shape[0] * images.shape[1], "robustness: predicting") as b, warnings.catch_warnings():
        # A read-only map: torch warns that it cannot write into it; inference never writes its input.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for i, block in enumerate(images):
            preds[i] = predict(model, block, 1024, device)
            b.update(len(block))
    result = accuracy_table(preds, y, NAMES, clean_acc)
    tuned = [c for c in NAMES if c in ood.corruptions]
    result["tuned_on"] = tuned
    result["held_out_acc"] = float(np.mean([result["corruption_mean"][c] for c in NAMES if c not in tuned]))
    result["tuned_acc"] = float(np.mean([result["corruption_mean"][c] for c in tuned])) if tuned else None
    return _save(result, out_dir, "Generated CIFAR-100-C-style test set", say)


def labelled_dir(preds: np.ndarray, ood_dir: str, clean_acc: float | None, out_dir: str, say) -> dict | None:
    """Score predictions of an OOD folder against its labels.npy; None (and nothing written) without one.

    preds: (19, 5n) int64, the rows of predict_ood(model, ood_dir) (file order, DL4DS_ORDER). labels.npy holds
    n labels (one per image, the same in every severity block, as robustness.generate writes) or 5n.
    """
    if not os.path.isfile(os.path.join(ood_dir, "labels.npy")):
        return None
    labels = load_labels(ood_dir, None, preds.shape[1] // 5)
    result = accuracy_table(preds, labels, DL4DS_ORDER, clean_acc)
    return _save(result, out_dir, f"Labelled OOD folder ({ood_dir})", say)


def dl4ds(model, ood_dir: str, y_test: np.ndarray, preds: np.ndarray, clean_acc: float, out_dir: str, say) -> dict:
    """preds: the submission's (19, 50000) predictions; labels: the official-order test labels."""
    result = accuracy_table(preds, y_test, DL4DS_ORDER, clean_acc)
    return _save(result, out_dir, f"DL4DS OOD files ({ood_dir})", say)


def _save(result: dict, out_dir: str, title: str, say) -> dict:
    from robustness.report import write_report  # matplotlib: only when a report is drawn

    os.makedirs(out_dir, exist_ok=True)
    write_report(result, out_dir, title=title)
    atomic.write_json(os.path.join(out_dir, "robustness.json"), result)
    line = f"robustness ({title}): OOD accuracy {100 * result['ood_acc']:.1f}%"
    held_out, tuned = result.get("held_out_acc"), result.get("tuned_acc")
    if held_out is not None and tuned is not None:
        line += f" (held-out corruptions {100 * held_out:.1f}%, tuned-on {100 * tuned:.1f}%)"
    say(line)
    return result
