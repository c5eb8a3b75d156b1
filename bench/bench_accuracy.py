"""Short real-data accuracy check: part-1 models, 3 epochs on 10,000 stratified CIFAR-100 images, CPU.

Calibration (seed's CNN, plain SGD lr 0.02, flips only, same 10,000 images, 3 epochs): 15.7% test
accuracy at ~55 s/epoch on this kind of machine.

    python bench/bench_accuracy.py [--models simple_cnn bn_cnn] [--epochs 3] [--subset 10000]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainables.__main__ import overrides as parse_set  # noqa: E402
from trainables.config import TrainConfig  # noqa: E402
from trainables.data import load_arrays  # noqa: E402
from trainables.engine import evaluate, train  # noqa: E402
from trainables.errors import UserError  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar100.npz")

# Short-budget recipes, one-cycle (warm-up then anneal) and crop + flip only (heavier augmentation costs
# accuracy in ~240 steps). The batch-norm-free simple_cnn does not leave the loss plateau at 4.6 in its
# first ~50 SGD steps (lr 0.02 or 0.05, nesterov, one-cycle: 1% on 3,000 images x 2 epochs) while AdamW
# does (4.3%). bn_cnn: AdamW lr 2e-3 reached 17.9% where SGD lr 0.1 nesterov reached 11.9% (BENCHMARKS.md).
RECIPES = {
    "simple_cnn": dict(optimizer="adamw", lr=1e-3, weight_decay=0.05, scheduler="onecycle", pct_start=0.25,
                       label_smoothing=0.1),
    "bn_cnn": dict(optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="onecycle", pct_start=0.25,
                   label_smoothing=0.1),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--models", nargs="+", default=list(RECIPES))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--subset", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value for every model, e.g. --set optimizer=adamw --set lr=2e-3")
    args = p.parse_args()
    try:  # bad --set values fail here, in one line, before any data is read or model trained
        overrides = parse_set(args.set)
        for model in args.models:
            TrainConfig.from_dict({"model": model, **RECIPES.get(model, {}), **overrides})
    except UserError as exc:
        p.error(str(exc))

    arrays = load_arrays(args.data)
    print(f"{args.subset} stratified training images, {args.epochs} epochs, batch {args.batch_size}, CPU, fp32")
    print("| model | recipe | test acc | s/epoch | train img/s |")
    print("|---|---|---|---|---|")
    for model in args.models:
        recipe = {**RECIPES.get(model, {}), **overrides}
        cfg = TrainConfig.from_dict({"model": model, "epochs": args.epochs, "batch_size": args.batch_size,
                                     "subset": args.subset, "val_fraction": 0.0, "crop_padding": 4, "hflip": True,
                                     "device": "cpu", "precision": "fp32", **recipe})
        result = train(cfg, data=arrays)
        test = evaluate(result.model, arrays.x_test, arrays.y_test, 1024, "cpu")
        secs = sum(m["epoch_time_s"] for m in result.history) / len(result.history)
        ips = sum(m["images_per_s"] for m in result.history) / len(result.history)
        shown = ", ".join(f"{k}={v}" for k, v in recipe.items())
        print(f"| {model} | {shown} | {test['acc']:.1%} | {secs:.0f} | {ips:.0f} |", flush=True)


if __name__ == "__main__":
    main()
