"""kill -9 one sweep again and again at chosen moments, --resume it each time, and count what was lost.

    python bench/kill_resume.py --kills 5 [--trials 8] [--seed 0] [--data PATH]

Each run of `orchestrator.py` is killed (SIGKILL to its whole process group: driver, Ray, every worker) at a
moment drawn for it: the instant the console reports the k-th finished trial (the worst moment: Tune's own
record of it may not be on disk yet), or a random number of seconds in. Before each kill's resume, every
finished trial's saved per-epoch metrics are read from its newest checkpoint. At the end:
- lost: finished trials missing from the final trials.csv (or whose folder the final sweep does not know);
- started over: unfinished trials whose folder the final sweep does not know (killed within moments of their
  first checkpoint, before Tune recorded them: the trial in flight);
- re-run: finished trials whose epochs in history.csv are not, to the last digit of each epoch's own timing,
  the ones saved before the kill (an epoch trained again takes its own time), or whose epoch count changed.
Prints a markdown table and exits 1 if anything was lost or re-run.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import queue
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = """
name: killed
metric: val_loss
mode: min
fixed: {{model: small_cnn, epochs: 4, subset: 240, val_fraction: 0.25, crop_padding: 0, device: cpu,
         precision: fp32, threads: 1, eval_batch_size: 256}}
params:
  lr: {{type: loguniform, low: 1.0e-4, high: 0.1}}
  batch_size: {{type: choice, values: [32, 64]}}
sampler: {{type: tpe, seed: {seed}, n_startup_trials: 4}}
asha: {{grace_period: 1, reduction_factor: 2}}
trials: {{num_samples: {n}, max_concurrent: 2}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: false}}
"""


def synthetic_npz(path: str) -> str:
    """Learnable CIFAR-shaped data: a coloured square per class on noise (as the tests' fixture)."""
    rng = np.random.default_rng(0)

    def make(n):
        k = np.arange(n) % 10
        x = rng.integers(0, 80, (n, 32, 32, 3), dtype=np.uint8)
        for i, c in enumerate(k):
            r, col = divmod(int(c), 4)
            x[i, 2 + 8 * r:12 + 8 * r, 2 + 6 * col:12 + 6 * col] = [(c * 37) % 256, (c * 91 + 80) % 256, 200]
        return x, (k * 10).astype(np.int64)

    (x_train, y_train), (x_test, y_test) = make(400), make(100)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def saved_epoch_times(trial_dir: str) -> list[float]:
    for ckpt in sorted(glob.glob(os.path.join(trial_dir, "checkpoint_*")), reverse=True):
        try:
            return [m["epoch_time_s"] for m in torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)["history"]]
        except Exception:  # noqa: BLE001 - cut short by a kill
            continue
    return []


def run_until(cmd: list[str], trigger: tuple[str, float]) -> tuple[int | None, float, list[str]]:
    """Run cmd; kill its process group when trigger fires. Returns (exit status or None if killed, seconds,
    trial ids the console reported finished)."""
    kind, value = trigger
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finished, killed, lines = [], False, queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    while proc.poll() is None:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            line = ""
        found = re.search(r"Trial trial_(\w+) completed after", line)
        if found:
            finished.append(found.group(1))
            killed = kind == "finished" and len(finished) >= value
        if kind == "seconds" and time.time() - start >= value:
            killed = True
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, time.time() - start, finished
    while not lines.empty():  # what it printed after the last poll
        found = re.search(r"Trial trial_(\w+) completed after", lines.get())
        if found:
            finished.append(found.group(1))
    return proc.returncode, time.time() - start, finished


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="a CIFAR-100 .npz (default: small synthetic data)")
    args = p.parse_args()
    rnd = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="kill_resume.")
    data = args.data or synthetic_npz(os.path.join(tmp, "synth.npz"))
    with open(os.path.join(tmp, "space.yaml"), "w") as f:
        f.write(SPACE.format(seed=args.seed, n=args.trials))
    results = os.path.join(tmp, "results")
    storage = os.path.join(results, "killed", "ray", "killed")
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", os.path.join(tmp, "space.yaml"),
           "--data", data, "--results-dir", results, "--wandb", "off", "--no-retrain", "--cpus", "2"]
    saved: dict[str, list[float]] = {}  # finished trial -> its epochs' timings when it was first seen finished
    rows = []
    for k in range(args.kills + 1):
        trigger = ("none", 0) if k == args.kills else rnd.choice([("finished", rnd.randint(1, 2)),
                                                                   ("seconds", rnd.uniform(4, 30))])
        rc, seconds, finished = run_until(cmd + (["--resume"] if k else []), trigger)
        for t in finished:
            saved.setdefault(t, saved_epoch_times(os.path.join(storage, f"trial_{t}")))
        rows.append((k + 1, trigger, round(seconds), rc, len(saved)))
        if rc is not None:
            break
    else:
        print("the last run was killed too: raise --kills' final run", file=sys.stderr)
        return 1
    if rc != 0:
        print(f"the final run failed (exit {rc}); see {results}", file=sys.stderr)
        return 1
    with open(os.path.join(results, "killed", "trials.csv"), newline="") as f:
        trials = {r["trial_id"]: r for r in csv.DictReader(f)}
    with open(os.path.join(results, "killed", "history.csv"), newline="") as f:
        history = list(csv.DictReader(f))
    orphans = [d for d in glob.glob(os.path.join(storage, "trial_*"))
               if os.path.basename(d)[6:] not in trials and saved_epoch_times(d)]
    # A trial Tune never recorded (killed within moments of its first checkpoint) starts again under another id:
    # that is the trial in flight. Lost is a trial that had finished.
    lost = [t for t in saved if t not in trials] + [d for d in orphans
                                                    if os.path.exists(os.path.join(d, "finished.txt"))]
    in_flight = [d for d in orphans if d not in lost]
    rerun = [t for t, times in saved.items() if t in trials
             and [float(h["epoch_time_s"]) for h in history if h["trial_id"] == t] != times]
    print("| run | killed at | seconds | exit | finished trials so far |\n|---|---|---|---|---|")
    for n, (kind, value), seconds, code, done in rows:
        when = {"finished": f"finished trial #{value} reported", "seconds": f"{value:.0f} s in",
                "none": "not killed"}[kind]
        print(f"| {n} | {when} | {seconds} | {'SIGKILL' if code is None else code} | {done} |")
    print(f"\nkills: {len(rows) - 1}; trials: {len(trials)} of {args.trials}; finished: {len(saved)}; "
          f"finished trials lost: {len(lost)}; re-run: {len(rerun)}; unfinished trials started over: {len(in_flight)}")
    if lost or rerun or len(trials) != args.trials:
        print(f"lost {lost}, re-run {rerun}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
