"""Accuracy levers on real CIFAR-100, on this CPU: a fixed small proxy per part, each lever on and off, several
seeds; clean test accuracy and accuracy on HELD-OUT corruptions (blur + weather families minus gaussian_blur:
neither in the part files' ood_val tuning set nor in corruption_aug's training set).

    python bench/bench_levers.py --proxy scratch --seeds 0 1
    python bench/bench_levers.py --proxy pretrained --seeds 0 1 --levers base augmix corruption_aug
    python bench/bench_levers.py --proxy scratch --subset 5000 --epochs 3 --seeds 0 1 --levers base ema swa clip

Training levers retrain the proxy; `tta_flip`, `tta_flip_shift` and `ensemble` reuse the `base` models
(prediction-only levers). Each row says what the lever costs at inference (forward passes per image, x the base
model's). Results also go to --out as JSON (config, seeds, per-seed numbers, commit).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustness.corruptions import corrupt_batch  # noqa: E402
from trainables import atomic  # noqa: E402
from trainables.config import TrainConfig  # noqa: E402
from trainables.corruption_table import NAMES  # noqa: E402
from trainables.data import load_arrays  # noqa: E402
from trainables.engine import train  # noqa: E402
from trainables.inference import predict_logits_batches  # noqa: E402
from trainables.tta_views import tta_cost  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar100.npz")
HELD_OUT = ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog", "spatter")
# The proxies: bench_accuracy.py's short-budget recipes (one-cycle AdamW, crop + flip, label smoothing 0.1).
PROXIES = {
    "scratch": dict(model="bn_cnn", optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="onecycle",
                    pct_start=0.25, label_smoothing=0.1),
    "pretrained": dict(model="efficientnet_lite0", pretrained=True, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                       scheduler="onecycle", pct_start=0.25, label_smoothing=0.1),
}
# A value may be a function of the proxy's config (levers set relative to its own lr).
TRAIN_LEVERS = {
    "base": {}, "augmix": dict(augmix=True), "augmix_no_jsd": dict(augmix=True, augmix_jsd=False),
    "corruption_aug": dict(corruption_aug=0.5),
    # 1/(1 - 0.98) = 50 steps of memory: the largest decay whose weight left on the first steps' near-random
    # weights, 0.98^T, is under 10% on the shortest proxy (5,000 images x 3 epochs / 128 = 117 steps). 0.999, right
    # for a full run (50 epochs: 17,500 steps), would still put 0.999^156 = 86% on them at 10,000 x 2 epochs.
    "ema": dict(ema_decay=0.98),
    # The last epoch averaged (2-3 epoch proxies leave no room for more): SWALR anneals to lr/10 and holds it where
    # the one-cycle schedule would anneal to ~0, then update_bn. At this budget SWA is that LR policy and a batch-norm
    # recomputation over ONE snapshot; averaging proper needs a longer run (the SWA paper: the last ~25% of epochs).
    "swa": dict(swa_epochs=1, swa_lr=lambda proxy: proxy["lr"] / 10),
    # 5.0: the scratch proxy's total gradient norm measured over a 5,000-image, 3-epoch run was 2.2-16, median 2.8,
    # 90th percentile 5.0, the 10 largest all in its first steps: 5.0 clips those spikes, what clipping is for.
    # 1.0 would clip every step, which under AdamW (it divides by the gradients' running scale) mostly cancels.
    "clip": dict(clip_grad_norm=5.0),
}
PREDICT_LEVERS = {"tta_flip": "flip", "tta_flip_shift": "flip_shift", "ensemble": "none"}


def probs(models, x, tta: str) -> np.ndarray:
    """Mean softmax over the models (one model: just its own)."""
    total = 0
    for m in models:
        total = total + torch.cat([lg for _, lg in predict_logits_batches(m, x, 500, tta=tta)]).softmax(1).numpy()
    return total / len(models)


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def _pct(values: list[float]) -> str:
    """Mean (± sample standard deviation over seeds) in percent."""
    mean = f"{100 * statistics.mean(values):.1f}"
    return mean + (f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--proxy", choices=list(PROXIES), default="scratch")
    ap.add_argument("--levers", nargs="+", default=[*TRAIN_LEVERS, *PREDICT_LEVERS],
                    choices=[*TRAIN_LEVERS, *PREDICT_LEVERS])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--subset", type=int, default=10_000, help="stratified training images")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--test-images", type=int, default=2000, help="clean test images (the first N)")
    ap.add_argument("--ood-images", type=int, default=200, help="test images per held-out corruption and severity")
    ap.add_argument("--severities", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    arrays = load_arrays(args.data)
    x_test, y_test = arrays.x_test[:args.test_images], arrays.y_test[:args.test_images]
    xo, yo = arrays.x_test[:args.ood_images], arrays.y_test[:args.ood_images]
    t0 = time.perf_counter()
    ood = [(corrupt_batch(xo, name, s, np.random.default_rng([7, i, s])), yo)
           for i, name in enumerate(HELD_OUT) for s in args.severities]
    x_ood, y_ood = np.concatenate([a for a, _ in ood]), np.concatenate([b for _, b in ood])
    print(f"held-out OOD set: {len(y_ood):,} images ({', '.join(HELD_OUT)} x severities {args.severities}), "
          f"built in {time.perf_counter() - t0:.0f}s", flush=True)
    assert set(HELD_OUT) <= set(NAMES)

    base_cfg = dict(PROXIES[args.proxy], epochs=args.epochs, batch_size=args.batch_size, subset=args.subset,
                    val_fraction=0.0, crop_padding=4, hflip=True, device="cpu")
    rows, record, models = [], {"args": vars(args), "commit": atomic.git_commit(), "results": {}}, {}
    needs_base = bool(set(args.levers) & set(PREDICT_LEVERS))  # prediction levers reuse the base models
    train_levers = [lv for lv in TRAIN_LEVERS if lv in args.levers or (lv == "base" and needs_base)]
    for lever in train_levers:
        for seed in args.seeds:
            lever_cfg = {k: v(base_cfg) if callable(v) else v for k, v in TRAIN_LEVERS[lever].items()}
            cfg = TrainConfig.from_dict(base_cfg, seed=seed, **lever_cfg)
            start = time.perf_counter()
            result = train(cfg, data=arrays)
            models[lever, seed] = result.model.eval()
            secs = (time.perf_counter() - start) / args.epochs
            print(f"trained {lever} seed {seed}: {secs:.0f} s/epoch", flush=True)
            record["results"].setdefault(lever, []).append({"seed": seed, "s_per_epoch": secs})
    for lever in args.levers:
        # forward passes per image at inference, x the base model's: EMA/SWA/clip/augmentation levers change only
        # the weights (1x); TTA runs its views; the ensemble runs every seed's model
        cost = len(args.seeds) if lever == "ensemble" else tta_cost(PREDICT_LEVERS.get(lever, "none"))
        per_seed = []
        for seed in args.seeds:
            if lever in TRAIN_LEVERS:
                group, tta = [models[lever, seed]], "none"
            elif lever == "ensemble":
                group, tta = [models["base", s] for s in args.seeds], "none"
            else:
                group, tta = [models["base", seed]], PREDICT_LEVERS[lever]
            per_seed.append((accuracy(probs(group, x_test, tta), y_test), accuracy(probs(group, x_ood, tta), y_ood)))
            if lever == "ensemble":
                break  # one ensemble of all the seeds
        timed = record["results"].get(lever, [])  # a training lever's per-seed s/epoch, kept beside its accuracy
        record["results"][lever] = [{**(timed[i] if i < len(timed) else {}), "clean": c, "ood_held_out": o,
                                     "inference_cost": cost} for i, (c, o) in enumerate(per_seed)]
        rows.append(f"| {lever} | {cost}x | {len(per_seed)} | {_pct([c for c, _ in per_seed])} | "
                    f"{_pct([o for _, o in per_seed])} |")
    print(f"\n{args.proxy} proxy: {PROXIES[args.proxy]['model']}, {args.subset:,} training images, "
          f"{args.epochs} epochs, seeds {args.seeds}; clean = first {len(y_test):,} test images; "
          f"OOD = held-out corruptions\n")
    print("| lever | inference | runs | clean test acc % | held-out OOD acc % |\n|---|---|---|---|---|\n"
          + "\n".join(rows))
    if args.out:
        atomic.write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
