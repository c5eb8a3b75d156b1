"""A stand-in for orchestrator.py with its contract for batch jobs, for testing the chain logic alone.

Flags as orchestrator.py's: --space --results-dir --time-limit [--resume] [--data] [--cpus] [--address]
[--storage]; other flags are recorded and ignored. The "sweep" is FAKE_UNITS units of FAKE_UNIT_S seconds.
Exits as the orchestrator does: 0 when every unit is done; 75 ("not finished, resume me") when the next unit
would not end before --time-limit, or at once when SIGTERM/SIGUSR1/SIGUSR2 arrives (the unit in progress is
dropped, as an unfinished epoch); 2 for
--resume with nothing to resume, or a sweep folder that exists without --resume. Each run appends one line to
<folder>/runs.jsonl (its flags, the Ray nodes it saw with --address, its exit) and each finished unit its
number to <folder>/units: a unit listed twice would be a finished epoch trained twice. FAKE_IGNORE_SIGNALS=1:
a run without --resume ignores the signals (the scheduler has to kill it). FAKE_NO_MODEL=1: when every unit is
done, it ends as a sweep whose trials all errored does: one line, exit 3.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time

import yaml


def seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or not m:
        print(f"error: --time-limit {text!r}: not a duration", file=sys.stderr)
        sys.exit(2)
    return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + int(m[3] or 0)


def ray_nodes(address: str) -> int:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        return len([n for n in ray.nodes() if n["Alive"]])
    finally:
        ray.shutdown()


def main() -> int:
    t0 = time.time()
    p = argparse.ArgumentParser()
    for flag in ("--space", "--results-dir", "--time-limit", "--data", "--cpus", "--address", "--storage"):
        p.add_argument(flag)
    p.add_argument("--resume", action="store_true")
    args, rest = p.parse_known_args()
    with open(args.space) as f:
        folder = os.path.join(args.results_dir, yaml.safe_load(f)["name"])
    manifest = os.path.join(folder, "sweep.json")
    if args.resume and not os.path.exists(manifest):
        print(f"error: --resume: nothing to resume in {folder} (no sweep.json)", file=sys.stderr)
        return 2
    if os.path.exists(manifest) and not args.resume:
        print(f"error: {folder} already holds a sweep; continue it with --resume", file=sys.stderr)
        return 2
    limit = seconds(args.time_limit)
    os.makedirs(folder, exist_ok=True)
    with open(manifest, "w") as f:
        json.dump({"space": args.space}, f)
    stop = []
    # FAKE_IGNORE_SIGNALS=1: a first run that ignores the scheduler's signals, so it is killed hard (SIGKILL).
    ignore = os.environ.get("FAKE_IGNORE_SIGNALS") == "1" and not args.resume
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN if ignore else (lambda signum, _: stop.append(signal.Signals(signum).name)))
    record = {"argv": sys.argv[1:], "unknown": rest, "job": os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID"),
              "nodes": ray_nodes(args.address) if args.address else None}
    units = os.path.join(folder, "units")
    n, unit_s = int(os.environ.get("FAKE_UNITS", "6")), float(os.environ.get("FAKE_UNIT_S", "1"))
    rc = 0
    while True:
        done = open(units).read().split() if os.path.exists(units) else []
        if len(done) >= n:
            break
        if stop or time.time() - t0 + min(unit_s, 1) > limit:
            rc = 75
            break
        t_unit = time.time()
        while time.time() - t_unit < unit_s and not stop:  # a signal drops the unit in progress, as an epoch
            time.sleep(0.05)
        if stop:
            rc = 75
            break
        for path in (units, os.path.join(folder, "history.csv")):  # history.csv: one row per finished epoch
            with open(path, "a") as f:
                f.write(f"{len(done)}\n")
    if rc == 0 and os.environ.get("FAKE_NO_MODEL") == "1":
        print(f"error: no trial produced a model: {n} of {n} trials errored, {n} of them with: RuntimeError: fake. "
              f"Every trial's status and error: {os.path.join(folder, 'trials.csv')}", file=sys.stderr)
        rc = 3
    record.update(exit=rc, signals=stop, units_done=len(open(units).read().split()) if os.path.exists(units) else 0)
    with open(os.path.join(folder, "runs.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"[fake] exit {rc} after {time.time() - t0:.1f}s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
