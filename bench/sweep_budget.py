"""What a part file costs on a GPU: per-image FLOPs measured here (torch.utils.flop_counter on the CPU, the
real models at their real input sizes), times the images the sweep trains and scores, divided by an
ASSUMED GPU throughput (peak x utilisation; flags). Prints the markdown of search_spaces/README.md,
"What the part files cost".

    python bench/sweep_budget.py search_spaces/part1.yaml search_spaces/part2.yaml search_spaces/part3.yaml

The FLOPs are measurements; the hours are an estimate that is only as good as the assumed utilisation.
Assumptions, all stated in the output: backward = 2x forward; every choice value equally likely (the
sampler's random start; TPE later concentrates on what scores); ASHA lets 1/reduction_factor of the trials
past each rung (async ASHA promotes somewhat more early on: the upper bound, no early stopping, is printed).
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sweep.plan import make_plan  # noqa: E402
from sweep.space import load_space  # noqa: E402
from trainables.config import TrainConfig  # noqa: E402
from trainables.models import model_from_config  # noqa: E402

COST_KEYS = ("model", "stem", "input_size", "augmix", "augmix_jsd")  # the keys that change FLOPs per image
TRAIN_N = 50_000
OOD_SUITE = 19 * 5 * 10_000  # the DL4DS OOD files: 19 corruptions x 5 severities x 10,000 test images
_FWD: dict = {}


def forward_gflop(cfg: TrainConfig) -> tuple[float, bool]:
    """Measured forward GFLOP per 32x32 image, and whether the net is depthwise-convolution heavy."""
    key = (cfg.model, cfg.stem, cfg.input_size)
    if key not in _FWD:
        model = model_from_config(cfg, pretrained=False).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        depthwise = any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
                        for m in model.modules())
        _FWD[key] = (counter.get_total_flops() / 1e9, depthwise)
    return _FWD[key]


def arms(spec) -> list[tuple[float, dict]]:
    """(probability, cost-relevant values) for every combination the space can produce."""
    searched = {p.name: p for p in spec.params if p.name in COST_KEYS and p.type == "choice"}
    out = []
    for combo in itertools.product(*[p.values for p in searched.values()]):
        values = {**{k: spec.fixed[k] for k in COST_KEYS if k in spec.fixed}, **dict(zip(searched, combo))}
        active = {k for k, p in searched.items()
                  if all(values.get(parent) in allowed for parent, allowed in p.when.items())}
        if any(k not in active and values[k] != searched[k].values[0] for k in searched):
            continue  # an inactive parameter: count the combination once, under its first value
        prob = math.prod(1 / len(searched[k].values) for k in active)
        out.append((prob, {k: v for k, v in values.items() if k in active or k not in searched}))
    return out


def budget(path: str, args) -> str:
    spec = load_space(path)
    fixed = {k: v for k, v in spec.fixed.items() if k not in ("data", "download")}
    base = TrainConfig.from_dict(fixed, pretrained=False, weights_path="")
    n_train = int((base.subset or TRAIN_N) * (1 - base.val_fraction))
    n_val = int((base.subset or TRAIN_N) * base.val_fraction)
    ood = spec.ood_val
    n_ood_val = (ood.images or n_val) * len(ood.corruptions) * len(ood.severities) if ood.corruptions else 0
    plan = make_plan(spec)  # the trial scheduler's expected epochs per trial (sweep/plan.py's simulation)
    per_trial = plan.expected.per_trial
    rows, search_s, search_max_s, retrain_s, final_s = [], 0.0, 0.0, 0.0, 0.0
    for prob, values in arms(spec):
        cfg = base.replace(**values)
        fwd, depthwise = forward_gflop(cfg)
        views = 3 if cfg.augmix and cfg.augmix_jsd else 1
        train = 3 * fwd * views  # forward + backward (2x forward), every view
        flops_s = args.peak_tflops * 1e12 * (args.util_depthwise if depthwise else args.util_dense)
        epoch_s = (n_train * train + (n_val + n_ood_val) * fwd) * 1e9 / flops_s
        search_s += prob * spec.trials.num_samples * per_trial * epoch_s
        search_max_s += prob * spec.trials.num_samples * spec.epochs * epoch_s
        # The winner is retrained: price the most expensive configuration that can win.
        retrain_s = max(retrain_s, len(spec.retrain.seeds) * spec.retrain.epochs * TRAIN_N * train * 1e9 / flops_s)
        predict_images = len(spec.retrain.seeds) * args.tta_views * (10_000 + OOD_SUITE)
        final_s = max(final_s, predict_images * fwd * 1e9 / flops_s)
        epoch_min = n_train * train * 1e9 / flops_s / 60
        rows.append(f"| {', '.join(f'{k}={v}' for k, v in values.items())} | {prob:.3f} | {fwd:.3f} | {views} | "
                    f"{train:.2f} | {'depthwise' if depthwise else 'dense'} | {epoch_min:.1f} |")
    total = search_s + retrain_s + final_s
    hours = lambda s: f"{s / 3600:.1f}"  # noqa: E731
    return "\n".join([
        f"### {spec.name} ({os.path.basename(path)})", "",
        f"{spec.trials.num_samples} trials x up to {spec.epochs} epochs on {n_train:,} images ({plan.scheduler}: "
        f"~{per_trial:.1f} epochs per trial expected); "
        f"each epoch scores {n_val:,} validation + {n_ood_val:,} corrupted validation images; retrain "
        f"{len(spec.retrain.seeds)} seed(s) x {spec.retrain.epochs} epochs on {TRAIN_N:,}; final prediction on the "
        f"10,000 test + {OOD_SUITE:,} OOD images x {args.tta_views} TTA view(s).", "",
        "| configuration | share | fwd GFLOP/img (measured) | views | train GFLOP/img | utilisation class | "
        "train epoch, min (assumed GPU) |", "|---|---|---|---|---|---|---|", *rows, "",
        f"GPU-hours: search {hours(search_s)} (no early stopping: {hours(search_max_s)}), retrain {hours(retrain_s)} "
        f"and final prediction {hours(final_s)} (if the most expensive configuration wins); "
        f"**total {hours(total)} h = {math.ceil(total / args.job_s)} two-hour job(s)** at {args.job_s / 3600:.2f} h "
        f"of work per job (--time-limit leaves the rest to checkpoint and exit 75; the next job resumes).", "",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spaces", nargs="*", default=[f"search_spaces/part{i}.yaml" for i in (1, 2, 3)])
    ap.add_argument("--peak-tflops", type=float, default=9.3, help="assumed fp32 peak (P100: 9.3)")
    ap.add_argument("--util-dense", type=float, default=0.35, help="assumed fraction of peak, dense convolutions")
    ap.add_argument("--util-depthwise", type=float, default=0.15,
                    help="assumed fraction of peak, depthwise-heavy nets (memory-bound: EfficientNet, RegNetY)")
    ap.add_argument("--tta-views", type=int, default=2, help="forward passes per predicted image (flip TTA: 2)")
    ap.add_argument("--job-s", type=float, default=110 * 60, help="work per 2-hour job, seconds (--time-limit 1h50m)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"Assumed GPU: {args.peak_tflops} TFLOPS fp32 peak x {args.util_dense:.0%} (dense) / "
          f"{args.util_depthwise:.0%} (depthwise-heavy) utilisation; backward = 2x forward; not measured on a GPU.\n")
    for path in args.spaces:
        print(budget(path, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
