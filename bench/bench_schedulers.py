"""The trial schedulers on the search-efficiency proxy (issue 23): which one finds the best model for the budget.

Every sweep is a real orchestrator run (sweep.api in this process: Ray starts once) of `search_spaces/proxy.yaml`
(part 1's space on small_cnn, 3,000 train / 1,000 validation real CIFAR-100 images, 9 epochs a trial, TPE with 4
start-up trials, 2 trials at a time), changed only in its trial scheduler and trial count:

    for_loop    random sampler, no early stopping (fifo): 8 trials x 9 epochs = the 72-epoch budget
    asha        ASHA, grace 1, reduction 3, one bracket: the default
    asha3       the same with 3 brackets
    hyperband   HyperBand, reduction 3
    median      median stopping, grace 1, 3 samples
    pbt         PBT, a population of 8, perturbed every 3 epochs, the bottom quarter copies the top
(the early-stopping sweeps run 30 trials and are cut at the budget, as in "Search efficiency"). Each sweep's final
model is its winner's own weights (`retrain.from: trial`, no retraining), scored on a generated CIFAR-100-C-style
copy of 500 test images, every corruption held out (the proxy ranks by clean validation accuracy).

Measured per scheduler and seed: best validation accuracy within the budget, epochs to reach the for-loop's best
(its mean over seeds), the winner's accuracy on the corrupted test images, the epochs actually trained.
`--augmix`: the same schedulers on the proxy with AugMix (+ its consistency loss) a choice, counting how often an
AugMix trial trained every epoch, and the winner's corrupted-test accuracy.

    python bench/bench_schedulers.py                       # 6 schedulers x seeds 0 1 2; resumable
    python bench/bench_schedulers.py --augmix --seeds 0 1  # the AugMix question
    python bench/bench_schedulers.py --stage report        # tables from what exists

Raw results: results/bench_schedulers/ (git-ignored); summary: bench/schedulers.json (or schedulers_augmix.json).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_search import PROXY, best_curve, finished_run, first_reach, say, write_space  # noqa: E402

from sweep.api import SweepRequest  # noqa: E402
from trainables import atomic  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
OUT = os.path.join(ROOT, "results", "bench_schedulers")
EPOCHS, BUDGET, ASHA_TRIALS = 9, 72, 30
FINAL = {"retrain.enabled": True, "retrain.from": "trial", "ood_val.test_images": 500}


def strategies(augmix: bool) -> dict[str, dict]:
    es = {"trials.num_samples": ASHA_TRIALS}
    out = {
        "for_loop": {"sampler.type": "random", "trial_scheduler.type": "fifo", "trials.num_samples": BUDGET // EPOCHS},
        "asha": {**es, "asha.grace_period": 1, "asha.reduction_factor": 3},
        "asha3": {**es, "trial_scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3, "brackets": 3}},
        "hyperband": {**es, "trial_scheduler": {"type": "hyperband", "reduction_factor": 3}},
        "median": {**es, "trial_scheduler": {"type": "median", "grace_period": 1, "min_samples": 3}},
        "pbt": {"trials.num_samples": 8, "trial_scheduler": {"type": "pbt", "interval": 3, "quantile": 0.25}},
    }
    if augmix:  # AugMix a choice (its consistency loss on: the published recipe); the rest of the space as is
        for ov in out.values():
            ov["params.augmix"] = {"type": "choice", "values": [False, True]}
    return out


def run_one(name: str, overrides: dict, args) -> dict:
    import time

    from bench_search import _orchestrate

    from sweep.space import load_space

    folder = os.path.join(args.out, "sweeps", name)
    done = finished_run(folder)
    if done:
        return done
    # A trial_scheduler section goes into the YAML itself, not an override: an override beats the smoke section too,
    # and a PBT interval of 3 does not fit the smoke variant's 2 epochs (the file's smoke defaults shrink it).
    import yaml

    raw = yaml.safe_load(open(args.space))
    if "trial_scheduler" in overrides:
        raw["trial_scheduler"] = overrides["trial_scheduler"]
    base = write_yaml(raw, os.path.join(args.out, "spaces", f"{name}.base.yaml"))
    rest = {k: v for k, v in overrides.items() if k != "trial_scheduler"}
    spec = load_space(base, {**rest, **FINAL, "name": name, "data.path": os.path.abspath(args.data)})
    space = write_space(spec, os.path.join(args.out, "spaces", f"{name}.yaml"))
    argv = ["--space", space, "--wandb", "off", "--results-dir", os.path.join(args.out, "sweeps"), "--cpus",
            str(args.cpus)]
    request = SweepRequest(space=space, wandb="off", results_dir=os.path.join(args.out, "sweeps"), cpus=args.cpus,
                           command="python orchestrator.py " + " ".join(argv))
    say(f"sweep {name}")
    load0, t0 = os.getloadavg(), time.time()
    os.makedirs(os.path.join(args.out, "sweeps"), exist_ok=True)
    rc = _orchestrate(request, os.path.join(args.out, "sweeps", f"{name}.log"))
    done = {"name": name, "rc": rc, "overrides": overrides, "wall_s": round(time.time() - t0, 1),
            "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "command": "python orchestrator.py " + " ".join(argv)}
    atomic.write_json(os.path.join(folder, "bench.json"), done)
    if rc == 130:
        raise KeyboardInterrupt
    say(f"sweep {name}: exit {rc} after {done['wall_s']:.0f}s")
    return done


def write_yaml(raw: dict, path: str) -> str:
    import yaml

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic.open_writer(path) as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return path


def measure(folder: str, augmix: bool) -> dict:
    curve, spent = best_curve(folder, BUDGET)
    rob = os.path.join(folder, "robustness", "generated", "robustness.json")
    with open(os.path.join(folder, "trials.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    out = {"best_val_acc": curve[-1], "curve": curve, "epochs_spent": spent,
           "epochs_trained": sum(int(r.get("epochs_trained") or r["epochs"]) for r in rows),
           "corrupted_test_acc": json.load(open(rob))["ood_acc"] if os.path.exists(rob) else None}
    if augmix:
        am = [r for r in rows if r.get("augmix") == "True"]
        plain = [r for r in rows if r.get("augmix") != "True"]
        out.update(augmix_trials=len(am), augmix_completed=sum(r["status"] == "completed" for r in am),
                   plain_trials=len(plain), plain_completed=sum(r["status"] == "completed" for r in plain),
                   winner_augmix=json.load(open(os.path.join(folder, "best.json")))["config"].get("augmix"))
    return out


def report(args, names: dict) -> dict:
    import numpy as np

    rows = {}
    for strat in names:
        per = [measure(os.path.join(args.out, "sweeps", f"{strat}_{args.tag}s{seed}"), args.augmix)
               for seed in args.seeds if os.path.exists(os.path.join(args.out, "sweeps", f"{strat}_{args.tag}s{seed}",
                                                                     "trials.csv"))]
        if per:
            rows[strat] = per
    loop = rows.get("for_loop")
    target = float(np.mean([r["best_val_acc"] for r in loop])) if loop else None
    out = {"command": "python bench/bench_schedulers.py " + " ".join(sys.argv[1:]), "seeds": args.seeds,
           "budget": BUDGET, "for_loop_best_mean": target, "schedulers": {}}
    for strat, per in rows.items():
        mean_curve = list(np.mean([r["curve"] for r in per], axis=0))
        s = {"best_val_acc": [round(r["best_val_acc"], 4) for r in per],
             "best_val_acc_mean": round(float(np.mean([r["best_val_acc"] for r in per])), 4),
             "corrupted_test_acc": [r["corrupted_test_acc"] for r in per],
             "epochs_trained": [r["epochs_trained"] for r in per],
             "epochs_to_for_loop_best": first_reach(mean_curve, target) if target else None,
             "per_seed_to_for_loop_best": [first_reach(r["curve"], target) for r in per] if target else None}
        valid = [r["corrupted_test_acc"] for r in per if r["corrupted_test_acc"] is not None]
        s["corrupted_test_acc_mean"] = round(float(np.mean(valid)), 4) if valid else None
        if args.augmix:
            s.update(augmix_completed=[f"{r['augmix_completed']}/{r['augmix_trials']}" for r in per],
                     plain_completed=[f"{r['plain_completed']}/{r['plain_trials']}" for r in per],
                     winner_augmix=[r["winner_augmix"] for r in per])
        out["schedulers"][strat] = s
    atomic.write_json(args.summary, out)
    for strat, s in out["schedulers"].items():
        say(f"{strat}: best val {s['best_val_acc']} (mean {s['best_val_acc_mean']}), corrupted test "
            f"{s['corrupted_test_acc']}, epochs to the for-loop's best {s['epochs_to_for_loop_best']} "
            f"{s['per_seed_to_for_loop_best']}, trained {s['epochs_trained']}"
            + (f", AugMix completed {s['augmix_completed']} (others {s['plain_completed']}), winner AugMix "
               f"{s['winner_augmix']}"
               if args.augmix else ""))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--space", default=PROXY)
    p.add_argument("--out", default=OUT)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+")
    p.add_argument("--augmix", action="store_true", help="AugMix (+ JSD) a choice of the space")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--stage", choices=("all", "report"), default="all")
    args = p.parse_args()
    args.tag = "augmix_" if args.augmix else ""
    args.summary = os.path.join(ROOT, "bench", "schedulers_augmix.json" if args.augmix else "schedulers.json")
    names = strategies(args.augmix)
    if args.strategies:
        names = {k: v for k, v in names.items() if k in args.strategies}
    if args.stage == "all":
        for seed in args.seeds:  # seed-major: a stopped run leaves every scheduler measured on the first seeds
            for strat, ov in names.items():
                run_one(f"{strat}_{args.tag}s{seed}", {**ov, "sampler.seed": seed}, args)
    report(args, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
