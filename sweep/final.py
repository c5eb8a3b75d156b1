"""After the sweep, in order: retrain the best config per seed, score it on the clean test set, write the
submission, measure robustness. Each step keeps what it finished, so a stopped run resumes at the step."""
from __future__ import annotations

import json
import os

import torch

from trainables import atomic

from . import ray_adapter, robust_eval, submit, tracking
from .console import say as _say
from .evaluate import final_model, test_accuracy
from .retrain import retrain_config, retrain_seeds


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
    seeds = retrain_seeds(folder, spec, best, arrays, say, deadline, read_checkpoint=ray_adapter.read_checkpoint)
    per_seed = []
    for s in seeds:
        acc = test_accuracy(s["model"].to(device), arrays.x_test, arrays.y_test, device)
        say(f"retrain seed {s['seed']}: clean test accuracy {100 * acc:.1f}%")
        per_seed.append({"seed": s["seed"], "test_acc": acc, "model": s["path"]})
        tracking.log_run(track, f"retrain-seed{s['seed']}", s["config"].to_dict(), s["history"], {"test_acc": acc})
    tta = spec.retrain.tta
    ensemble = final_model([s["model"] for s in seeds], tta).to(device)
    if len(seeds) > 1 or tta != "none":
        from trainables.tta_views import tta_cost

        say(f"final predictions: {len(seeds)} seed(s) x test-time augmentation '{tta}' = "
            f"{len(seeds) * tta_cost(tta)}x the inference of one model")
    test_acc = test_accuracy(ensemble, arrays.x_test, arrays.y_test, device) if len(seeds) > 1 or tta != "none" \
        else per_seed[0]["test_acc"]
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
    final = {"test_acc": test_acc, "seeds": list(spec.retrain.seeds), "per_seed": per_seed, "tta": tta,
             "ood_acc": robust, "config": retrain_config(best["config"], spec, spec.retrain.seeds[0]).to_dict(),
             "commit": atomic.git_commit(), "data": best["data"], "submission_note": note}
    atomic.write_json(os.path.join(folder, "final", "metrics.json"), final)
    return final
