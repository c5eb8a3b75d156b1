"""After the sweep, in order: retrain the best config per seed, score it on the clean test set, write the
submission, measure robustness. Each step keeps what it finished, so a stopped run resumes at the step."""
from __future__ import annotations

import json
import os

import torch

from trainables import atomic

from . import ray_adapter, results, robust_eval, submit, tracking
from .console import say as _say
from .evaluate import final_model, test_accuracy
from .ranking import Rule
from .retrain import Retrain


def finalize(folder: str, spec, arrays, track, robustness: bool = True, deadline=None) -> dict:
    """Runs where a GPU is (ray_adapter.call_where_gpu): also on another node, so every line goes to
    logs/final.log too."""
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    log = open(os.path.join(folder, "logs", "final.log"), "a", encoding="utf-8")

    def say(msg: str) -> None:
        _say(msg)
        log.write(msg + "\n")
        log.flush()

    try:
        return _finalize(folder, spec, arrays, track, robustness, deadline, say)
    finally:
        log.close()


def _finalize(folder, spec, arrays, track, robustness, deadline, say) -> dict:
    with open(os.path.join(folder, "best.json")) as f:
        best = json.load(f)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    members = _members(folder, spec, best, arrays, device, say)
    history = results.read_csv(os.path.join(folder, "history.csv")) \
        if spec.retrain.source == "schedule" else []
    made = Retrain(folder, spec, best, arrays, say, deadline, read_checkpoint=ray_adapter.read_checkpoint,
                   history=history).models(members)
    per_model = []
    for m in made:
        acc = test_accuracy(m.model.to(device), arrays.x_test, arrays.y_test, device)
        say(f"final model {os.path.basename(m.path)}: clean test accuracy {100 * acc:.1f}%")
        per_model.append({"trial_id": m.trial_id, "seed": m.seed, "weight": m.weight, "test_acc": acc,
                          "model": m.path})
        tracking.log_run(track, f"final-{m.trial_id}-seed{m.seed}", m.config.to_dict(), m.history, {"test_acc": acc})
    tta = spec.retrain.tta
    ensemble = final_model([m.model for m in made], tta, [m.weight for m in made]).to(device)
    if len(made) > 1 or tta != "none":
        from trainables.tta_views import tta_cost

        say(f"final predictions: {len(made)} model(s) x test-time augmentation '{tta}' = "
            f"{len(made) * tta_cost(tta)}x the inference of one model")
    test_acc = test_accuracy(ensemble, arrays.x_test, arrays.y_test, device) if len(made) > 1 or tta != "none" \
        else per_model[0]["test_acc"]
    note, preds = submit.write(folder, spec.data.ood_dir, ensemble, device, say)
    robust = {}
    if robustness and spec.ood_val.test_images:
        robust["generated"] = robust_eval.generated(ensemble, arrays, spec.ood_val, test_acc, device,
                                                    os.path.join(folder, "robustness", "generated"), say)["ood_acc"]
    if preds is not None:  # a labelled --ood-dir (robustness.generate writes labels.npy): scored too
        labelled = robust_eval.labelled_dir(preds, spec.data.ood_dir, test_acc,
                                            os.path.join(folder, "robustness", "labelled"), say)
        if labelled is not None:
            robust["labelled"] = labelled["ood_acc"]
    if preds is not None and os.path.isdir(best["data"]["path"]) and preds.shape[1] == 5 * len(arrays.y_test):
        # A torchvision CIFAR-100 folder keeps the official test order, which the DL4DS files follow.
        robust["dl4ds"] = robust_eval.dl4ds(ensemble, spec.data.ood_dir, arrays.y_test, preds, test_acc,
                                            os.path.join(folder, "robustness", "dl4ds"), say)["ood_acc"]
    final = {"test_acc": test_acc, "seeds": list(spec.retrain.seeds), "from": spec.retrain.source,
             "members": [{"trial_id": m.trial_id, "weight": m.weight} for m in members],
             "per_model": per_model, "per_seed": [p for p in per_model if p["trial_id"] == best["trial_id"]],
             "tta": tta, "ood_acc": robust, "config": made[0].config.to_dict(), "commit": atomic.git_commit(),
             "data": best["data"], "submission_note": note}
    atomic.write_json(os.path.join(folder, "final", "metrics.json"), final)
    return final


def _members(folder, spec, best, arrays, device, say) -> list:
    """The trials the final model is made of: the best alone, or (retrain.ensemble_top > 1) the ensemble chosen
    among the best trials on the validation images they were ranked on."""
    from .ensemble import Member, choose

    alone = [Member(best["trial_id"], 1.0, best["config"], best.get("checkpoint"), best.get("status", "completed"))]
    candidates = best.get("candidates") or []
    if spec.retrain.ensemble_top <= 1 or len(candidates) < 2:
        if spec.retrain.ensemble_top > 1:
            say(f"ensemble: {len(candidates)} trial(s) trained every epoch and kept weights; the best alone is the "
                f"final model")
        return alone
    images, labels = ranking_images(spec, arrays, best["config"])
    return choose(folder, candidates, Rule.of(spec), images, labels, device, say)


def ranking_images(spec, arrays, config: dict):
    """The validation images the trials were ranked on: the corrupted ones for an ood_val_* metric (as the sweep
    built them), else the trials' own validation split."""
    from trainables.config import TrainConfig
    from trainables.data import split

    if Rule.of(spec).metric.startswith("ood_val") and spec.ood_val.corruptions:
        from .ood_val import build_ood_val

        return build_ood_val(arrays, dict(spec.fixed), spec.ood_val)["ood_val"]
    cfg = TrainConfig.from_dict(config)
    val = split(arrays, cfg.val_fraction, subset=cfg.subset)
    return val.x_val, val.y_val
