"""The final model (issue 24): an ensemble of a sweep's best distinct trials against a seed ensemble of its best
config, and against the best config alone, from ONE sweep each time (the same trials, only the final model differs).

Per sampler seed: a real sweep of `search_spaces/proxy.yaml` (part 1's space on small_cnn, 3,000 train / 1,000
validation real CIFAR-100 images, 9 epochs a trial, TPE + ASHA, 24 trials) with `--no-retrain`, the best 3 trials
keeping their weights; then three copies of its folder each finished with `--resume` and another `retrain:`
(the retrain is not part of the sweep's identity, so a finished sweep can be given another final model):

    single    the best config retrained (seed 0)
    seeds3    the best config retrained with seeds 0, 1, 2, averaged
    top3      an ensemble chosen greedily among the best 3 trials on the validation images (retrain.ensemble_top 3)

each scored on the clean test set (10,000 images) and on a generated CIFAR-100-C-style copy of 500 test images
(every corruption held out: the proxy ranks by clean validation accuracy); inference cost = models averaged.

    python bench/bench_final.py --seeds 0 1          # resumable; summary: bench/final_model.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_search import PROXY, _orchestrate, say, write_space  # noqa: E402

from sweep.api import SweepRequest  # noqa: E402
from trainables import atomic  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
OUT = os.path.join(ROOT, "results", "bench_final")
SUMMARY = os.path.join(ROOT, "bench", "final_model.json")
SWEEP = {"trials.num_samples": 24, "retrain.ensemble_top": 3, "ood_val.test_images": 500}
VARIANTS = {"single": {"retrain.seeds": [0]}, "seeds3": {"retrain.seeds": [0, 1, 2]},
            "top3": {"retrain.seeds": [0], "retrain.ensemble_top": 3}}
FINAL = {"retrain.enabled": True, "retrain.ensemble_top": 1}


def run(name: str, space: str, results: str, args, retrain: bool, resume: bool) -> dict:
    folder = os.path.join(results, name)
    marker = os.path.join(results, f"{name}.bench.json")
    if os.path.exists(marker) and json.load(open(marker))["rc"] == 0:
        return json.load(open(marker))
    argv = ["--space", space, "--wandb", "off", "--results-dir", results, "--cpus", str(args.cpus)]
    argv += [] if retrain else ["--no-retrain"]
    argv += ["--resume"] if resume else []
    request = SweepRequest(space=space, wandb="off", results_dir=results, cpus=args.cpus, retrain=retrain,
                           resume=resume, command="python orchestrator.py " + " ".join(argv))
    say(f"{results}/{name}: {'resume ' if resume else ''}{'' if retrain else 'sweep only'}")
    os.makedirs(results, exist_ok=True)
    rc = _orchestrate(request, os.path.join(results, f"{name}.log"))
    done = {"rc": rc, "folder": folder, "command": request.command}
    atomic.write_json(marker, done)
    if rc == 130:
        raise KeyboardInterrupt
    return done


def one_seed(seed: int, args) -> dict:
    from sweep.space import load_space

    base = os.path.join(args.out, f"s{seed}")
    name = f"final_s{seed}"
    data = {"data.path": os.path.abspath(args.data), "name": name, "sampler.seed": seed}
    space = write_space(load_space(args.space, {**SWEEP, **data}), os.path.join(base, "spaces", "sweep.yaml"))
    sweep = run(name, space, os.path.join(base, "sweep"), args, retrain=False, resume=False)
    out = {}
    for variant, ov in VARIANTS.items():
        results = os.path.join(base, variant)
        if not os.path.exists(os.path.join(results, name)) and sweep["rc"] == 0:
            shutil.copytree(os.path.join(base, "sweep", name), os.path.join(results, name))
        vspace = write_space(load_space(args.space, {**SWEEP, **data, **FINAL, **ov}),
                             os.path.join(base, "spaces", f"{variant}.yaml"))
        done = run(name, vspace, results, args, retrain=True, resume=True)
        folder = os.path.join(results, name)
        metrics = json.load(open(os.path.join(folder, "final", "metrics.json"))) if done["rc"] == 0 else {}
        rob = os.path.join(folder, "robustness", "generated", "robustness.json")
        out[variant] = {"rc": done["rc"], "test_acc": metrics.get("test_acc"),
                        "corrupted_acc": json.load(open(rob))["ood_acc"] if os.path.exists(rob) else None,
                        "models": len(metrics.get("per_model", [])), "members": metrics.get("members"),
                        "command": done["command"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--space", default=PROXY)
    p.add_argument("--out", default=OUT)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--cpus", type=int, default=2)
    args = p.parse_args()
    import numpy as np

    per_seed = {seed: one_seed(seed, args) for seed in args.seeds}
    summary = {"command": "python bench/bench_final.py " + " ".join(sys.argv[1:]), "seeds": args.seeds,
               "per_seed": per_seed, "variants": {}}
    for variant in VARIANTS:
        rows = [per_seed[s][variant] for s in args.seeds if per_seed[s][variant]["test_acc"] is not None]
        if rows:
            summary["variants"][variant] = {
                k: [round(r[k], 4) for r in rows] + [round(float(np.mean([r[k] for r in rows])), 4)]
                for k in ("test_acc", "corrupted_acc") if all(r[k] is not None for r in rows)}
            summary["variants"][variant]["models"] = [r["models"] for r in rows]
    atomic.write_json(SUMMARY, summary)
    for variant, v in summary["variants"].items():
        say(f"{variant}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
