"""After the sweep: retrain the best config per seed, score it on the clean test set, write the submission."""
from __future__ import annotations

import json
import os
import time

import torch

from trainables import atomic
from trainables.models import build_model

from . import ray_adapter, robust_eval, tracking
from .retrain import OOD_HOWTO, Ensemble, retrain_config, test_accuracy, train_one


def retrain_best(folder: str, spec, arrays, track, say) -> dict:
    with open(os.path.join(folder, "best.json")) as f:
        best = json.load(f)
    final_dir = os.path.join(folder, "final")
    os.makedirs(final_dir, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models, per_seed = [], []
    for seed in spec.retrain.seeds:
        cfg = retrain_config(best["config"], spec, seed)
        model_path = os.path.join(final_dir, f"model_seed{seed}.pt")
        model = build_model(cfg.model)
        reuse = _reusable_checkpoint(best, cfg)
        if reuse and not os.path.exists(model_path):
            # The best trial already trained this exact config on this data for the full budget: reuse it.
            state = ray_adapter.read_checkpoint(reuse)
            atomic.torch_save({"model": state["model"], "config": cfg.to_dict(), "seed": seed,
                               "history": state.get("history", []), "commit": atomic.git_commit(),
                               "data": best["data"], "from_trial": best["trial_id"]}, model_path)
            say(f"retrain seed {seed}: same config, data and epochs as trial {best['trial_id']}: "
                f"reusing its final checkpoint instead of training again")
        if os.path.exists(model_path):  # finished before an interruption (or reused): keep it
            saved = torch.load(model_path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["model"])
            history = saved["history"]
            say(f"retrain seed {seed}: already done ({model_path})")
        else:
            say(f"retrain seed {seed}: {cfg.model}, {cfg.epochs} epochs on "
                f"{'train+val' if cfg.val_fraction == 0 else 'train'}")
            t0 = time.time()
            def progress(m, seed=seed, total=cfg.epochs):
                say(f"retrain seed {seed}: epoch {m['epoch']}/{total} train_loss {m['train_loss']:.3f} "
                    f"train_acc {m['train_acc']:.3f} ({m['epoch_time_s']:.0f}s)")

            state, history = train_one(cfg.to_dict(), arrays, os.path.join(final_dir, f"retrain_seed{seed}.ckpt"),
                                       progress)
            model.load_state_dict(state)
            atomic.torch_save({"model": state, "config": cfg.to_dict(), "seed": seed, "history": history,
                               "commit": atomic.git_commit(), "data": best["data"]}, model_path)
            ckpt = os.path.join(final_dir, f"retrain_seed{seed}.ckpt")
            if os.path.exists(ckpt):
                os.unlink(ckpt)
            say(f"retrain seed {seed}: done in {time.time() - t0:.0f}s")
        acc = test_accuracy(model.to(device), arrays.x_test, arrays.y_test, device)
        say(f"retrain seed {seed}: clean test accuracy {acc:.4f}")
        per_seed.append({"seed": seed, "test_acc": acc, "model": model_path})
        tracking.log_run(track, f"retrain-seed{seed}", cfg.to_dict(), history, {"test_acc": acc})
        models.append(model)
    ensemble = Ensemble(models).to(device)
    test_acc = test_accuracy(ensemble, arrays.x_test, arrays.y_test, device) if len(models) > 1 else per_seed[0]["test_acc"]
    note, preds = _submission(folder, spec, ensemble, device, say)
    robust = {}
    if spec.ood_val.test_images:
        robust["generated"] = robust_eval.generated(ensemble, arrays, spec.ood_val, test_acc, device,
                                                    os.path.join(folder, "robustness", "generated"), say)["ood_acc"]
    if preds is not None and os.path.isdir(best["data"]["path"]) and preds.shape[1] == 5 * len(arrays.y_test):
        # A torchvision CIFAR-100 folder keeps the official test order, which the DL4DS files follow.
        robust["dl4ds"] = robust_eval.dl4ds(ensemble, spec.data.ood_dir, arrays.y_test, preds, test_acc,
                                            os.path.join(folder, "robustness", "dl4ds"), say)["ood_acc"]
    final = {"test_acc": test_acc, "seeds": list(spec.retrain.seeds), "per_seed": per_seed,
             "ood_acc": robust, "config": retrain_config(best["config"], spec, spec.retrain.seeds[0]).to_dict(),
             "commit": atomic.git_commit(), "data": best["data"], "submission_note": note}
    atomic.write_json(os.path.join(final_dir, "metrics.json"), final)
    return final


def _reusable_checkpoint(best: dict, cfg) -> str | None:
    """The trial's checkpoint when retraining would repeat it exactly (same config incl. seed, data, epochs)."""
    ckpt = best.get("checkpoint")
    if not ckpt or best.get("status") != "completed":
        return None
    same = {k: v for k, v in cfg.to_dict().items() if k != "data"} == \
        {k: v for k, v in best["config"].items() if k != "data"}
    return ckpt if same else None


def _submission(folder: str, spec, model, device: str, say):
    """(note for the report, predictions or None)."""
    ood_dir = spec.data.ood_dir
    if not ood_dir or not os.path.isdir(ood_dir):
        msg = OOD_HOWTO if not ood_dir else f"OOD folder {ood_dir} does not exist; {OOD_HOWTO}"
        say(msg)
        return msg, None
    from robustness.predict import predict_ood
    from robustness.submission import write_submission

    say(f"predicting the OOD set in {ood_dir}")
    preds = predict_ood(model, ood_dir, batch_size=1024, device=device)
    path = os.path.join(folder, "submission_ood.csv")
    write_submission(preds, path)
    say(f"wrote {path} ({preds.size} rows)")
    return f"submission_ood.csv written from {ood_dir} ({preds.size} predictions)", preds
