"""Orchestration overhead: the same N short trials through orchestrator.py vs a plain Python loop.

    python bench/bench_overhead.py --data ../shared/data/cifar100.npz [--trials 6] [--concurrent 2]

Reports per-trial seconds, efficiency (time spent training / wall time), and peak memory (RSS) of the
driver and of each trial process. Each trial: small_cnn, 2 epochs on a 2,000-image stratified subset.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FIXED = dict(model="small_cnn", epochs=2, subset=2000, val_fraction=0.2, device="cpu", precision="fp32",
             batch_size=128, threads=1)
LRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.03, 0.07]


def space_yaml(n: int, concurrent: int) -> str:
    fixed = "\n".join(f"  {k}: {v}" for k, v in FIXED.items())
    lrs = ", ".join(str(x) for x in LRS[:n])
    return f"""name: overhead
metric: val_acc
mode: max
fixed:
{fixed}
params:
  lr: {{type: choice, values: [{lrs}]}}
sampler: {{type: random, seed: 0}}
asha: {{grace_period: {FIXED['epochs']}, reduction_factor: 2}}
trials: {{num_samples: {n}, max_concurrent: {concurrent}}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: false}}
"""


def plain_loop(data: str, n: int) -> dict:
    import torch

    from trainables.config import TrainConfig
    from trainables.data import load_arrays
    from trainables.engine import train

    torch.set_num_threads(1)
    t0 = time.time()
    arrays = load_arrays(data)
    train_s = 0.0
    for lr in LRS[:n]:
        result = train(TrainConfig.from_dict({**FIXED, "lr": lr}), data=arrays)
        train_s += sum(h["epoch_time_s"] for h in result.history)
    wall = time.time() - t0
    return {"wall_s": wall, "train_s": train_s, "per_trial_s": wall / n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def orchestrated(data: str, n: int, concurrent: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        space = os.path.join(tmp, "overhead.yaml")
        with open(space, "w") as f:
            f.write(space_yaml(n, concurrent))
        cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", data,
               "--results-dir", tmp, "--wandb", "off", "--no-retrain", "--cpus", str(max(2, concurrent))]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.time() - t0
        if proc.returncode != 0:
            raise SystemExit(f"orchestrator failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        with open(os.path.join(tmp, "overhead", "history.csv")) as f:
            hist = list(csv.DictReader(f))
    train_s = sum(float(h["epoch_time_s"]) for h in hist)
    trial_rss = [float(h["peak_rss_mb"]) for h in hist if h.get("peak_rss_mb")]
    # ru_maxrss of the waited-for children: the largest single process among the driver and what it started.
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "train_s": train_s, "per_trial_s": wall / n, "concurrent": concurrent,
            "trial_peak_rss_mb": max(trial_rss) if trial_rss else None, "largest_process_rss_mb": children_rss}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--concurrent", type=int, default=2)
    a = p.parse_args()
    loop = plain_loop(os.path.abspath(a.data), a.trials)
    orch = orchestrated(os.path.abspath(a.data), a.trials, a.concurrent)
    out = {"trials": a.trials, "loop": loop, "orchestrator": orch, "load_avg": os.getloadavg(),
           "loop_efficiency": loop["train_s"] / loop["wall_s"],
           "orchestrator_efficiency": orch["train_s"] / orch["wall_s"],
           "overhead_per_trial_s": (orch["wall_s"] * a.concurrent - orch["train_s"]) / a.trials}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
