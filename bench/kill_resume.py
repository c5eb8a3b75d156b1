"""kill -9 one sweep again and again at chosen moments, --resume it each time, and count what was lost.

    python bench/kill_resume.py --kills 5 [--trials 8] [--seed 0] [--sweeps 1] [--data PATH] [--keep]

Each run of `orchestrator.py` is killed (SIGKILL to its whole process group: driver, Ray, every worker) at a
moment drawn for it: the instant (or up to 1 s after) the console reports the k-th finished trial (the worst
moment: Tune's own record of it may not be on disk yet) or the first trial ASHA stopped (its weights are
dropped then, while Tune's record still names its checkpoint); 0-300 ms after it reports the k-th epoch of
any trial (its result has reached the driver; its checkpoint, Tune's record of it and ASHA's decision are
under way); or a random number of seconds in. Before each kill's resume, every finished trial's saved
per-epoch metrics are read from its newest checkpoint (a trial ASHA stopped: its weights are dropped as it
ends; from the epochs Tune logged in its result.json). --sweeps N repeats all that on N sweeps (seeds
seed..seed+N-1). At the end:
- lost: finished trials missing from the final trials.csv (or whose folder the final sweep does not know);
- started over: unfinished trials whose folder the final sweep does not know (killed within moments of their
  first checkpoint, before Tune recorded them: the trial in flight);
- re-run: finished trials whose epochs in history.csv are not, to the last digit of each epoch's own timing,
  the ones saved before the kill (an epoch trained again takes its own time), or whose epoch count changed
  (an epoch listed twice counts: history.csv must hold each epoch once).
Prints a markdown table per sweep and exits 1 if anything was lost or re-run (--keep: its folder stays).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import queue
import random
import re
import shutil
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


FINISHED = re.compile(r"\[sweep\] trial (\w+) (?:completed|stopped early by ASHA) after")
EPOCH = re.compile(r"\[sweep\] trial (\w+) epoch \d+/")
STOPPED = re.compile(r"\[sweep\] trial (\w+) stopped early by ASHA after")


def saved_epoch_times(trial_dir: str) -> list[float]:
    """Each saved epoch's own timing: the newest readable checkpoint's history; for a trial ASHA stopped (its
    weights dropped as it ended), the epochs Tune logged in its result.json."""
    for ckpt in sorted(glob.glob(os.path.join(trial_dir, "checkpoint_*")), reverse=True):
        try:
            return [m["epoch_time_s"] for m in torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)["history"]]
        except Exception:  # noqa: BLE001 - cut short by a kill
            continue
    try:
        with open(os.path.join(trial_dir, "result.json")) as f:
            return [json.loads(line)["epoch_time_s"] for line in f if line.strip()]
    except (OSError, ValueError, KeyError):
        return []


def run_until(cmd: list[str], trigger: tuple) -> tuple[int | None, float, list[str]]:
    """Run cmd; kill its process group when trigger fires (kind, count or seconds, delay after the line).
    Returns (exit status or None if killed, seconds, trial ids the console reported finished)."""
    kind, value, delay = trigger
    epochs, stopped, fire_at = 0, 0, None
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finished, killed, lines = [], False, queue.Queue()
    run_until.out = out = []  # what it printed, for a failed run's message
    threading.Thread(target=lambda: [(lines.put(line), out.append(line)) for line in proc.stdout],
                     daemon=True).start()
    while proc.poll() is None:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            line = ""
        found = FINISHED.search(line)
        if found:
            finished.append(found.group(1))
            if kind == "finished" and len(finished) >= value and fire_at is None:
                fire_at = time.time() + delay
        if STOPPED.search(line):
            stopped += 1
            if kind == "stopped" and stopped >= value and fire_at is None:
                fire_at = time.time() + delay
        if EPOCH.search(line):
            epochs += 1
            if kind == "epoch" and epochs >= value and fire_at is None:
                fire_at = time.time() + delay
        if kind == "seconds" and time.time() - start >= value:
            killed = True
        if fire_at is not None and time.time() >= fire_at:
            killed = True
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, time.time() - start, finished
    while not lines.empty():  # what it printed after the last poll
        found = FINISHED.search(lines.get())
        if found:
            finished.append(found.group(1))
    return proc.returncode, time.time() - start, finished


def one_sweep(seed: int, args) -> tuple[bool, str]:
    """Kill one sweep args.kills times, resume it to the end; (all well, its folder)."""
    rnd = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix=f"kill_resume.{seed}.")
    data = args.data or synthetic_npz(os.path.join(tmp, "synth.npz"))
    with open(os.path.join(tmp, "space.yaml"), "w") as f:
        f.write(SPACE.format(seed=seed, n=args.trials))
    results = os.path.join(tmp, "results")
    storage = os.path.join(results, "killed", "ray", "killed")
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", os.path.join(tmp, "space.yaml"),
           "--data", data, "--results-dir", results, "--wandb", "off", "--no-retrain", "--cpus", "2"]
    saved: dict[str, list[float]] = {}  # finished trial -> its epochs' timings when it was first seen finished
    saved_in: dict[str, int] = {}  # ... and the run that saw it
    rows = []
    for k in range(args.kills + 1):
        trigger = ("none", 0, 0) if k == args.kills else rnd.choice([
            ("finished", rnd.randint(1, 3), rnd.choice([0.0, rnd.uniform(0, 1.0)])),
            ("stopped", 1, rnd.choice([0.0, rnd.uniform(0, 1.0)])),
            ("epoch", rnd.randint(1, 6), rnd.choice([0.0, rnd.uniform(0, 0.3)])),
            ("seconds", rnd.uniform(4, 30), 0.0)])
        # killed before it wrote sweep.json (a slow start): nothing to resume, it starts again
        resume = os.path.exists(os.path.join(results, "killed", "sweep.json"))
        rc, seconds, finished = run_until(cmd + (["--resume"] if resume else []), trigger)
        for t in finished:
            if t not in saved:
                saved[t], saved_in[t] = saved_epoch_times(os.path.join(storage, f"trial_{t}")), k + 1
        rows.append((k + 1, trigger, round(seconds), rc, len(saved)))
        if rc is not None:
            break
    else:
        print("the last run was killed too: raise --kills' final run", file=sys.stderr)
        return False, tmp
    if rc != 0:
        print(f"the final run failed (exit {rc}); see {results}\n{''.join(run_until.out[-15:])}", file=sys.stderr)
        return False, tmp
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
    after = {t: [float(h["epoch_time_s"]) for h in history if h["trial_id"] == t] for t in trials}
    rerun = [t for t, times in saved.items() if t in trials and after[t] != times]
    # A finished trial must stay finished: not errored (e.g. restored from a checkpoint deleted under Tune's
    # record of it) nor anything but completed / stopped early.
    broken = {t: trials[t]["status"] for t in saved if t in trials
              and trials[t]["status"] not in ("completed", "stopped_early")}
    print(f"\nseed {seed}\n| run | killed at | seconds | exit | finished trials so far |\n|---|---|---|---|---|")
    for n, (kind, value, delay), seconds, code, done in rows:
        when = {"finished": f"finished trial #{value} reported", "seconds": f"{value:.0f} s in",
                "epoch": f"epoch line #{value} reported", "stopped": "a trial stopped by ASHA reported",
                "none": "not killed"}[kind]
        when += f" + {delay * 1000:.0f} ms" if delay else ""
        print(f"| {n} | {when} | {seconds} | {'SIGKILL' if code is None else code} | {done} |")
    print(f"\nkills: {len(rows) - 1}; trials: {len(trials)} of {args.trials}; finished: {len(saved)}; "
          f"finished trials lost: {len(lost)}; re-run: {len(rerun)}; ended otherwise: {len(broken)}; "
          f"unfinished trials started over: {len(in_flight)}")
    for t in rerun:
        print(f"  re-run {t} (seen finished in run {saved_in[t]}): saved {saved[t]}, after {after[t]}")
    if lost or rerun or broken or len(trials) != args.trials:
        print(f"lost {lost}, re-run {rerun}, ended otherwise {broken}; folder {tmp}", file=sys.stderr)
        return False, tmp
    return True, tmp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweeps", type=int, default=1, help="sweeps to kill, seeds seed..seed+N-1")
    p.add_argument("--data", help="a CIFAR-100 .npz (default: small synthetic data)")
    p.add_argument("--keep", action="store_true", help="keep a failed sweep's folder (a good one's always goes)")
    args = p.parse_args()
    bad = 0
    for seed in range(args.seed, args.seed + args.sweeps):
        ok, tmp = one_sweep(seed, args)
        bad += not ok
        if ok or not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nsweeps: {args.sweeps}; with a trial lost or re-run, or failed: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
