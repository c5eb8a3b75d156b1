"""Orchestration overhead: the same N short trials through orchestrator.py vs a plain Python loop.

    python bench/bench_overhead.py --data ../shared/data/cifar100.npz [--trials 6] [--concurrent 1 2 4]
                                   [--wandb off offline]
    python bench/bench_overhead.py --data ../shared/data/cifar100.npz --ray-daemons   # Ray's own start, alone

Reports, per tracking mode and concurrency: wall time, time inside epochs, the one-time start-up (process
start to the first trial's first step, plus the end: last trial done to exit) and the overhead per trial slot
beyond it: ((last trial done - first trial started) x concurrent - time in epochs) / trials, from the phase
times each trial writes (SWEEP_PROFILE, sweep/ray_adapter.py). Also peak memory (RSS) of the driver and of
each trial process. Each trial: small_cnn, 2 epochs on a 2,000-image stratified subset. For comparison, a plain
script's own start-up: launch to torch, the training code and the data ready, in a fresh process.
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
# The start-up's milestones (sweep/ray_adapter.py's SWEEP_PROFILE events), seconds from the command's launch:
# Ray up (started in the background while the driver reads the data), Tune's fit() called, the first trial's worker
# process created (Ray starts workers with itself), that worker running the trial function (Ray, Tune, torch
# imported), and the trial's first step (the training code imported).
STARTUP_EVENTS = ("ray_started", "tune_fit", "trial_called", "trial_start")
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


def plain_start(data: str, runs: int = 3) -> list[float]:
    """What a plain script needs before its first step, from launch (a fresh process each run): torch and the
    training code imported (torch's compiler stack comes with them), the data read. The orchestrator's start-up
    includes the same work: the rest is Ray's and Tune's."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from trainables.data import load_arrays; "
            "load_arrays(sys.argv[2]); import torch, trainables.engine; print(time.time())")
    out = []
    for _ in range(runs):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", code, ROOT, data], capture_output=True, text=True, check=True)
        out.append(round(float(proc.stdout.split()[-1]) - t0, 2))
    return out


def orchestrated(data: str, n: int, concurrent: int, wandb: str = "off") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        space = os.path.join(tmp, "overhead.yaml")
        with open(space, "w") as f:
            f.write(space_yaml(n, concurrent))
        profile = os.path.join(tmp, "profile.jsonl")
        cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", data,
               "--results-dir", tmp, "--wandb", wandb, "--no-retrain", "--cpus", str(max(2, concurrent))]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "SWEEP_PROFILE": profile})
        end = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"orchestrator failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        with open(os.path.join(tmp, "overhead", "history.csv")) as f:
            hist = list(csv.DictReader(f))
        with open(profile) as f:
            phases = [json.loads(line) for line in f]
    train_s = sum(float(h["epoch_time_s"]) for h in hist)
    first = min(p["t"] for p in phases if p["event"] == "trial_start")
    at = {e: min((p["t"] for p in phases if p["event"] == e), default=None) for e in STARTUP_EVENTS}
    at["worker_process"] = min(p["process_started"] for p in phases if p["event"] == "trial_called")
    # A trial's last epoch ends where its history says (Tune stops it before its report returns).
    last = max(float(h["ended_at"]) for h in hist)
    one_time = (first - t0) + (end - last)
    trial_rss = [float(h["peak_rss_mb"]) for h in hist if h.get("peak_rss_mb")]
    # ru_maxrss of the waited-for children: the largest single process among the driver and what it started.
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wandb": wandb, "concurrent": concurrent, "wall_s": round(end - t0, 2), "train_s": round(train_s, 2),
            "startup_s": round(first - t0, 2), "finish_s": round(end - last, 2), "one_time_s": round(one_time, 2),
            "overhead_per_slot_s": round(((last - first) * concurrent - train_s) / n, 2),
            "efficiency": round(train_s / (end - t0) / concurrent, 3),
            "trial_peak_rss_mb": max(trial_rss) if trial_rss else None, "largest_process_rss_mb": children_rss,
            "startup_at_s": {k: round(v - t0, 2) for k, v in at.items() if v is not None}}


def ray_daemons(wait_s: float = 4.0) -> dict:
    """Ray's own share of the start-up: `ray_adapter.start` timed alone, then, `wait_s` later, the CPU seconds each
    process Ray started has used (its daemons, its idle workers) and the driver's own."""
    from sweep import ray_adapter

    t0 = time.time()
    ray_adapter.start(None, num_cpus=2)
    started_s = time.time() - t0
    time.sleep(wait_s)
    rows = {f"{pid} {name}": cpu for pid, name, cpu in _descendants_cpu(os.getpid())}
    me = os.times()
    return {"ray_start_s": round(started_s, 2), "cpu_s_by_process": rows,
            "ray_processes_cpu_s": round(sum(rows.values()), 2), "driver_cpu_s": round(me.user + me.system, 2)}


def _descendants_cpu(root: int) -> list[tuple[int, str, float]]:
    """(pid, command, CPU seconds) of every process under `root` (Linux: /proc)."""
    tick, parent, info = os.sysconf("SC_CLK_TCK"), {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ").strip()
        except OSError:
            continue
        parent[int(pid)] = int(fields[1])
        args = cmd.split(" ")
        script = args[0]
        if os.path.basename(script).startswith("python"):  # a Python daemon: its script's name
            script = next((a for a in args[1:] if a.endswith(".py")), script)
        info[int(pid)] = (os.path.basename(script)[:60] or "?", (int(fields[11]) + int(fields[12])) / tick)
    def under(pid: int) -> bool:
        while pid in parent and pid > 1:
            pid = parent[pid]
            if pid == root:
                return True
        return False

    return [(pid, *info[pid]) for pid in sorted(info) if under(pid)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--concurrent", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--wandb", nargs="+", default=["off", "offline"], choices=["off", "offline"])
    p.add_argument("--no-loop", action="store_true", help="skip the plain-loop reference")
    p.add_argument("--ray-daemons", action="store_true",
                   help="only measure Ray's own start: its wall time and the CPU seconds of the processes it starts")
    a = p.parse_args()
    if a.ray_daemons:
        print(json.dumps(ray_daemons(), indent=1))
        return
    data = os.path.abspath(a.data)
    out = {"trials": a.trials, "load_avg_before": os.getloadavg()}
    if not a.no_loop:
        loop = plain_loop(data, a.trials)
        out["loop"] = {**loop, "efficiency": loop["train_s"] / loop["wall_s"]}
        out["plain_start_s"] = plain_start(data)
    rows = []
    for wandb in a.wandb:
        for conc in a.concurrent:
            row = orchestrated(data, a.trials, conc, wandb)
            row["load_avg"] = [round(x, 2) for x in os.getloadavg()]
            rows.append(row)
            print(json.dumps(row), flush=True)
    out["orchestrator"] = rows
    print(json.dumps(out, indent=1))
    if "plain_start_s" in out:
        print(f"\nA plain script's start-up (launch to torch, training code and data ready; 3 fresh processes): "
              f"{out['plain_start_s']} s")
    print("\n| wandb | concurrent | wall s | in epochs s | one-time start-up + finish s | overhead per trial slot s "
          "| load avg (1 min) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['wandb']} | {r['concurrent']} | {r['wall_s']} | {r['train_s']} | {r['startup_s']} + "
              f"{r['finish_s']} | {r['overhead_per_slot_s']} | {r['load_avg'][0]} |")
    names = ["ray_started", "tune_fit", "worker_process", "trial_called", "trial_start"]
    print("\nWhere the start-up goes (seconds from launch):\n\n| wandb | at a time | " + " | ".join(names) +
          " |\n|" + "---|" * (len(names) + 2))
    for r in rows:
        print(f"| {r['wandb']} | {r['concurrent']} | " + " | ".join(str(r["startup_at_s"].get(n, "")) for n in names)
              + " |")


if __name__ == "__main__":
    main()
