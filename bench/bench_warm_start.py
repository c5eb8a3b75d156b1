"""Warm start on the search-efficiency proxy: epochs a warm-started sweep of a neighbouring space needs to reach
the best a cold sweep of that space finds.

Three real sweeps (sweep.api in this process, as bench/bench_search.py runs them) on search_spaces/proxy.yaml
(small_cnn, 3,000 train / 1,000 val real CIFAR-100 images, 9 epochs a trial, TPE with 4 start-up trials + ASHA):

    earlier   proxy.yaml as it is (sampler seed S)
    cold      the neighbouring space: lr 2e-3..0.3 (not 1e-3), weight_decay 1e-5..3e-2 (not 1e-2), mixup_alpha
              0..0.5 (not 1) (sampler seed S+100)
    warm      the same as cold, --warm-start earlier --warm-start-top K

Also measured: how soon each of the two reaches the earlier sweep's best (what the warm start hands over).
Epochs are counted as bench_search counts them: every epoch of the sweep's own trials, in the order they finished
(the earlier sweep's epochs are not counted: they were spent already). The curve is the best val_acc so far.

    python bench/bench_warm_start.py                     # seeds 0 1 2, 12 trials a sweep; resumable
    python bench/bench_warm_start.py --samples 8 --seeds 0

Raw results: results/bench_warm_start/ (git-ignored); summary: bench/warm_start.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_search import _orchestrate, best_curve, finished_run, first_reach, say, write_space  # noqa: E402

from sweep.api import SweepRequest  # noqa: E402
from trainables import atomic  # noqa: E402

PROXY = os.path.join(ROOT, "search_spaces", "proxy.yaml")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
OUT = os.path.join(ROOT, "results", "bench_warm_start")
SUMMARY = os.path.join(ROOT, "bench", "warm_start.json")
NEIGHBOUR = {"params.lr.low": 2.0e-3, "params.weight_decay.high": 3.0e-2, "params.mixup_alpha.high": 0.5}


def sweep(name: str, overrides: dict, args, warm: tuple = ()) -> dict:
    from sweep.space import load_space

    folder = os.path.join(args.out, name)
    marker = os.path.join(folder, "bench.json")
    done = finished_run(folder)
    if done:
        return done
    spec = load_space(PROXY, {**overrides, "name": name, "data.path": os.path.abspath(args.data)})
    space = write_space(spec, os.path.join(args.out, "spaces", f"{name}.yaml"))
    argv = ["--space", space, "--no-retrain", "--wandb", "off", "--results-dir", args.out, "--cpus", str(args.cpus)]
    for w in warm:
        argv += ["--warm-start", w]
    if warm:
        argv += ["--warm-start-top", str(args.top)]
    request = SweepRequest(space=space, retrain=False, wandb="off", results_dir=args.out, cpus=args.cpus,
                           warm_start=warm, warm_start_top=args.top,
                           command="python orchestrator.py " + " ".join(argv))
    say(f"sweep {name}")
    t0 = time.time()
    rc = _orchestrate(request, os.path.join(args.out, f"{name}.log"))
    done = {"name": name, "rc": rc, "wall_s": round(time.time() - t0, 1), "overrides": overrides,
            "command": "python orchestrator.py " + " ".join(argv)}
    atomic.write_json(marker, done)
    say(f"sweep {name}: exit {rc} after {done['wall_s']:.0f}s")
    if rc == 130:
        raise KeyboardInterrupt
    return done


def pair(seed: int, args) -> dict:
    """One earlier sweep (sampler seed `seed`), then the neighbouring space cold and warm (seed + 100, the same
    for both: the warm start is the only difference)."""
    base = {"trials.num_samples": args.samples}
    ran = {"earlier": sweep(f"earlier_s{seed}", {**base, "sampler.seed": seed}, args)}
    nb = {**base, **NEIGHBOUR, "sampler.seed": seed + 100}
    ran["cold"] = sweep(f"cold_s{seed}", nb, args)
    ran["warm"] = sweep(f"warm_s{seed}", nb, args, warm=(os.path.join(args.out, f"earlier_s{seed}"),))
    if any(r["rc"] != 0 for r in ran.values()):
        raise SystemExit(f"a sweep of seed {seed} failed; see its log in {args.out}")
    curves = {k: best_curve(os.path.join(args.out, r["name"]), 10_000) for k, r in ran.items()}
    spent = {k: c[1] for k, c in curves.items()}
    curves = {k: c[0][:spent[k]] for k, c in curves.items()}
    target = max(curves["cold"])
    with open(os.path.join(args.out, ran["warm"]["name"], "sweep.json")) as f:
        record = json.load(f)["warm_start"]
    return {"earlier_best": max(curves["earlier"]), "cold_best": target, "warm_best": max(curves["warm"]),
            "epochs_spent": spent, "cold_epochs_to_its_best": first_reach(curves["cold"], target),
            "warm_epochs_to_cold_best": first_reach(curves["warm"], target),
            # what the warm start hands over: the earlier sweep's best level, and how soon each sweep gets there
            "cold_epochs_to_earlier_best": first_reach(curves["cold"], max(curves["earlier"])),
            "warm_epochs_to_earlier_best": first_reach(curves["warm"], max(curves["earlier"])),
            "warm_start": {k: record[k] for k in ("evaluated", "dropped", "notes")},
            "wall_s": {k: r["wall_s"] for k, r in ran.items()},
            "curves": {k: [round(v, 4) for v in c] for k, c in curves.items()}}


def mean_curve(curves: list[list[float]]) -> list[float]:
    """Mean best-so-far over seeds, each curve held flat after its sweep ended."""
    n = max(len(c) for c in curves)
    return [round(sum((c + [c[-1]] * (n - len(c)))[i] for c in curves) / len(curves), 4) for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--samples", type=int, default=12, help="trials per sweep (ASHA stops most early)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="the earlier sweeps' sampler seeds; cold and warm use seed + 100")
    ap.add_argument("--top", type=int, default=3, help="--warm-start-top")
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    per_seed = {str(s): pair(s, args) for s in args.seeds}
    cold = mean_curve([r["curves"]["cold"] for r in per_seed.values()])
    warm = mean_curve([r["curves"]["warm"] for r in per_seed.values()])
    summary = {
        "task": "search_spaces/proxy.yaml (small_cnn, 3,000 train / 1,000 val, 9 epochs a trial, TPE k4 + ASHA)",
        "neighbour": NEIGHBOUR, "samples": args.samples, "seeds": args.seeds, "top": args.top,
        "command": "python bench/bench_warm_start.py " + " ".join(sys.argv[1:]),
        "per_seed": per_seed,
        "mean_cold_best": max(cold), "mean_warm_best": max(warm),
        "mean_curve_cold_epochs_to_its_best": first_reach(cold, max(cold)),
        "mean_curve_warm_epochs_to_cold_best": first_reach(warm, max(cold)),
        "warm_reached_cold_best": sum(r["warm_epochs_to_cold_best"] is not None for r in per_seed.values()),
        "warm_beat_cold": sum(r["warm_best"] > r["cold_best"] for r in per_seed.values()),
        "mean_curves": {"cold": cold, "warm": warm},
    }
    atomic.write_json(SUMMARY, summary)
    for s, r in per_seed.items():
        say(f"seed {s}: " + json.dumps({k: v for k, v in r.items() if k != "curves"}))
    say(json.dumps({k: v for k, v in summary.items() if k not in ("per_seed", "mean_curves")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
