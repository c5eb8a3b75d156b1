"""How well the console's time left holds (issue 26): the estimate after the first timed epoch and the status line at
25%, 50% and 75% of the run against the actual time, and the plan's trial-epochs against those trained.

    python bench/bench_eta.py --data ../shared/data/cifar100.npz [--runs 3] [--cases issue smoke] [--out bench/eta.json]
    python bench/bench_eta.py --replay 150    # no Ray, seconds: the estimator on replayed sweeps of the issue's shape

Each run is a fresh process running the case's orchestrator command (issue 26's part-1 command scaled to a CPU, and
the smoke space), through sweep.cli's own parser and request, with one change: a status line every --status-every
seconds instead of 30, so that one falls near each quarter of a short run (the estimate does not depend on when it
is asked). Every console line is timestamped as it arrives. The run's clock starts where the console's does (its
status lines say how long ago) and ends at its last trial's end; the retrain is left out (--no-retrain: its time is
not the sweep's ETA). Results go to --out after every run (atomically); a second call skips the runs already there,
so an interrupted measurement resumes. Prints one markdown row per run and the medians per case.

--replay N: the same estimator (sweep/eta.py) fed N synthetic sweeps of the issue's shape on a fake clock: 12 trials,
2 at a time, 15 epochs, ASHA's rule (sweep/trial_schedulers/simulate.py) on random learning curves, configs drawn as
part 1's space draws them (AugMix on half, its JSD on half of those: epochs 20 s plain, 40 s AugMix, 72 s JSD), 3 s to
start a trial and 1 s between epochs. What no estimator can know in advance (which trials ASHA keeps, which configs
the sampler draws) is all that differs from its model: the spread it leaves is the floor under the real runs' error.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sweep.plan import parse_duration  # noqa: E402
from trainables import atomic  # noqa: E402

# Issue 26's command, as a student on a CPU ran it (with the retrain left out), and the smoke space.
CASES = {
    "issue": ["--space", "search_spaces/part1.yaml", "--wandb", "off", "--no-robustness", "--no-retrain",
              "--set", "fixed.epochs=15", "--set", "params.model={type: choice, values: [small_cnn]}",
              "--set", "enqueue=[]", "--set", "asha.grace_period=2", "--set", "trials.num_samples=12",
              "--set", "trials.max_concurrent=2", "--set", "resources.gpu=0", "--set", "resources.cpu=1",
              "--set", "fixed.threads=1", "--set", "retrain.epochs=15"],
    "smoke": ["--space", "search_spaces/smoke.yaml", "--wandb", "off", "--no-robustness", "--no-retrain"],
}
MARKS = (0.25, 0.5, 0.75)
ELAPSED = re.compile(r"\[sweep\] (\S+) elapsed: .*; about (\S+) left$")
PLANNED = re.compile(r"\[sweep\] plan: at .* about (\S+) on this machine(?: \((\S+)-(\S+) in 8 of 10)?")
EPOCHS = re.compile(r"\[sweep\] plan: (?:about )?(\d+) trial-epochs in all(?: \((\d+)-(\d+) in 8 of 10)?")
ENDED = re.compile(r"\[(\d+)/(\d+) ended\]$")


def child(status_every: float, argv: list[str]) -> int:
    """One run: the orchestrator's own parser and request, with status lines every `status_every` seconds."""
    import dataclasses
    import shlex

    from sweep import cli
    from sweep.api import run_sweep

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # as the CLI sets it for a local Ray
    args = cli.build_parser().parse_args(argv)
    command = "python orchestrator.py " + " ".join(shlex.quote(a) for a in argv)
    request = dataclasses.replace(cli.request_from(args, command), status_every_s=status_every)
    outcome = run_sweep(request)
    return 0 if outcome.finished else 1


def run_once(case: str, data: str, status_every: float, extra: list[str], keep: str | None) -> dict:
    results = tempfile.mkdtemp(prefix="bench-eta-")
    argv = [*CASES[case], "--data", data, "--results-dir", results, *extra]
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", "--status-every", str(status_every),
                             "--", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1)
    lines = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
    err = proc.stderr.read()
    rc = proc.wait()
    load_after = os.getloadavg()[0]
    folder = next((os.path.join(results, d) for d in os.listdir(results)), None)
    trained = sum(1 for _ in csv.DictReader(open(os.path.join(folder, "history.csv")))) if folder and \
        os.path.exists(os.path.join(folder, "history.csv")) else None
    if keep:
        with open(os.path.join(keep, f"{case}-{int(time.time())}.txt"), "w") as f:
            f.write("\n".join(f"{t - lines[0][0]:8.2f} {line}" for t, line in lines) + "\n---stderr---\n" + err)
    shutil.rmtree(results, ignore_errors=True)
    if rc != 0:
        raise RuntimeError(f"{case}: exit {rc}\n" + "\n".join(line for _, line in lines[-20:]) + err[-2000:])
    return {"command": "python orchestrator.py " + " ".join(argv), **analyse(lines), "trained": trained,
            "load_before": load_before, "load_after": load_after}


def analyse(lines: list[tuple[float, str]]) -> dict:
    """From the timestamped console: when the console's clock started (t0), when the last trial ended, the first
    estimate and the status lines nearest each quarter of the run, and the plan's trial-epochs."""
    status = [(t, parse_duration(m[1]), parse_duration(m[2])) for t, line in lines if (m := ELAPSED.match(line))]
    if not status:
        raise RuntimeError("no status line with a time left: run with a smaller --status-every")
    t0 = statistics.median(t - elapsed for t, elapsed, _ in status)  # elapsed is said to the second
    end = max(t for t, line in lines if ENDED.search(line))
    total = end - t0
    out: dict = {"actual_s": round(total, 1)}
    for t, line in lines:
        if m := EPOCHS.match(line):
            out["plan_epochs"] = [int(g) for g in m.groups() if g is not None]
        if m := PLANNED.match(line):
            said, at = parse_duration(m[1]), t - t0
            out["first"] = {"at_s": round(at, 1), "total_s": said, "range_s": [parse_duration(g) for g in m.groups()[1:]
                                                                              if g],
                            "error_total": round(said / total - 1, 3),
                            "error_left": round((said - at) / (end - t) - 1, 3) if end > t else None}
            break
    for mark in MARKS:
        before = [s for s in status if s[0] <= t0 + mark * total]
        if not before:
            continue
        t, elapsed, left = before[-1]
        out[f"at_{int(mark * 100)}"] = {"at_s": round(t - t0, 1), "left_s": left, "actual_left_s": round(end - t, 1),
                                        "error_left": round(left / (end - t) - 1, 3) if end > t else None,
                                        "error_total": round((t - t0 + left) / total - 1, 3)}
    return out


def replay(seeds: int) -> int:
    """The estimator, and the per-sweep one it replaced (the mean epoch so far x the epochs left / trials at a time), on
    synthetic sweeps of the issue's shape."""
    import heapq
    import random

    from sweep.eta import Eta
    from sweep.plan import make_plan
    from sweep.space import load_space
    from sweep.trial_schedulers import simulate

    overrides = {"fixed.epochs": 15, "params.model": {"type": "choice", "values": ["small_cnn"]}, "enqueue": [],
                 "asha.grace_period": 2, "trials.num_samples": 12, "trials.max_concurrent": 2}
    spec = load_space(os.path.join(ROOT, "search_spaces", "part1.yaml"), overrides)
    plan, n, slots, max_t = make_plan(spec), 12, 2, 15
    names = ("first", "at_25", "at_50", "at_75")
    errors: dict[str, list[float]] = {f"{who} {name}": [] for name in names for who in ("now", "before")}
    epochs_error = []
    for seed in range(seeds):
        rng = random.Random(seed)
        configs = [spec.active({"augmix": rng.random() < 0.5, "augmix_jsd": rng.random() < 0.5}) for _ in range(n)]
        cost = [20.0 * (3.6 if c.get("augmix_jsd") else 2.0 if c.get("augmix") else 1.0) for c in configs]
        values = simulate._curves(n, max_t, rng)
        rule = simulate.AshaRule(spec.trial_scheduler.settings, max_t, n, rng)
        events, heap, started, trained = [], [], 0, 0
        for _ in range(slots):
            events.append((0.0, 2, "start", started, 0))
            heapq.heappush(heap, (3.0 + cost[started], started, 1))
            started += 1
        while heap:
            now, i, epoch = heapq.heappop(heap)
            trained += 1
            events.append((now, 1, "result", i, epoch))
            if epoch < max_t and rule.goes_on(i, epoch, values[i][epoch - 1]):
                heapq.heappush(heap, (now + 1.0 + cost[i], i, epoch + 1))
                continue
            events.append((now, 1.5, "end", i, epoch))
            if started < n:
                events.append((now, 2, "start", started, 0))
                heapq.heappush(heap, (now + 3.0 + cost[started], started, 1))
                started += 1
        events.sort()
        end = events[-1][0]
        eta = Eta.for_spec(spec, plan, slots, 50_000)
        at_epoch, measured, ended = {}, [], 0  # what the per-sweep estimate knew
        marks = {f"at_{int(m * 100)}": m * end for m in MARKS}
        for now, _, kind, i, epoch in events:
            for name, at in list(marks.items()):
                if now >= at and measured:
                    errors[f"now {name}"].append(eta.left(at).about / (end - at) - 1)
                    errors[f"before {name}"].append(per_sweep(plan, at_epoch, measured, ended) / (end - at) - 1)
                    del marks[name]
            if kind == "start":
                eta.start(str(i), configs[i], now)
                at_epoch[i] = 0
            elif kind == "end":
                eta.end(str(i))
                at_epoch.pop(i)
                ended += 1
            else:
                eta.result(str(i), {"epoch": epoch, "epoch_time_s": cost[i]}, now)
                at_epoch[i] = epoch
                measured.append(cost[i])
                if len(measured) == 1:
                    errors["now first"].append((now + eta.left(now).about) / end - 1)
                    errors["before first"].append((now + per_sweep(plan, at_epoch, measured, ended)) / end - 1)
        epochs_error.append(plan.epochs / trained - 1)
    print(f"{seeds} replayed sweeps (12 trials, 2 at a time, 15 epochs, ASHA grace 2, eta 3; part 1's AugMix draws): "
          f"error of the estimate of the total at the first epoch, of the time left at 25/50/75% of the run\n")
    print("| when | this estimator: median error | 10th-90th percentile | within ±25% | the per-sweep mean before: "
          "median | 10th-90th | within ±25% |\n|---|---|---|---|---|---|---|")

    def cells(v):
        v = sorted(v)
        return (f"{pct(statistics.median(v))} | {pct(v[len(v) // 10])} to {pct(v[len(v) * 9 // 10])} | "
                f"{sum(abs(x) <= 0.25 for x in v)} of {len(v)}")

    print(f"| plan's trial-epochs vs trained | {cells(epochs_error)} | | | |")
    for name in names:
        print(f"| {name} | {cells(errors[f'now {name}'])} | {cells(errors[f'before {name}'])} |")
    return 0


def per_sweep(plan, at_epoch: dict, measured: list, ended: int) -> float:
    """The console's time left before issue 26: the mean epoch so far x the epochs left / trials at a time."""
    left = sum(max(0.0, plan.epochs_per_trial - e) for e in at_epoch.values())
    left += max(0, plan.trials - ended - len(at_epoch)) * plan.epochs_per_trial
    return left * sum(measured) / len(measured) / plan.concurrent


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:+.0f}%"


def row(key: str, r: dict) -> str:
    first = r.get("first", {})
    planned = r.get("plan_epochs", [None])
    epochs = f"{planned[0]} ({planned[1]}-{planned[2]})" if len(planned) == 3 else f"{planned[0]}"
    err_epochs = pct(planned[0] / r["trained"] - 1) if r.get("trained") and planned[0] else "–"
    marks = " | ".join(f"{r[k]['left_s']:.0f} vs {r[k]['actual_left_s']:.0f} s ({pct(r[k]['error_left'])})"
                       if k in r else "–" for k in ("at_25", "at_50", "at_75"))
    return (f"| {key} | {r['load_before']:.1f}/{r['load_after']:.1f} | {epochs} | {r['trained']} ({err_epochs}) | "
            f"{first.get('total_s', 0):.0f} s at {first.get('at_s', 0):.0f} s ({pct(first.get('error_total'))}) | "
            f"{r['actual_s']:.0f} s | {marks} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "cifar100.npz"))
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--status-every", type=float, default=2.0, help="seconds between status lines")
    ap.add_argument("--set", action="append", default=[], help="more --set for every case (e.g. to shrink a try)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "eta.json"))
    ap.add_argument("--keep-console", default="", help="a folder for each run's timestamped console")
    ap.add_argument("--replay", type=int, default=0, help="N synthetic sweeps through the estimator (no Ray)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.status_every, args.rest)
    if args.replay:
        return replay(args.replay)
    if args.keep_console:  # made before the first run: a path that cannot be a folder fails now, not 20 minutes in
        try:
            os.makedirs(args.keep_console, exist_ok=True)
        except OSError as e:
            ap.error(f"--keep-console {args.keep_console}: {e.strerror}; allowed: a folder that can be created")
    record = {"runs": {}}
    if os.path.exists(args.out):
        import json

        with open(args.out) as f:
            record = json.load(f)
    record.update(commit=atomic.git_commit(), data=os.path.abspath(args.data), status_every_s=args.status_every)
    extra = [a for s in args.set for a in ("--set", s)]
    for case in args.cases:
        for i in range(1, args.runs + 1):
            key = f"{case}/{i}" + (f" ({' '.join(args.set)})" if args.set else "")
            if key in record["runs"]:
                continue
            print(f"{key}: running", flush=True)
            record["runs"][key] = run_once(case, os.path.abspath(args.data), args.status_every, extra,
                                           args.keep_console or None)
            atomic.write_json(args.out, record)
            print(row(key, record["runs"][key]), flush=True)
    print("\n| run | load avg before/after | plan: trial-epochs (8 of 10) | trained (plan's error) | first estimate "
          "of the total (error) | actual | left at 25%: said vs actual (error) | at 50% | at 75% |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for key, r in record["runs"].items():
        print(row(key, r))
    for case in args.cases:
        runs = [r for k, r in record["runs"].items() if k.split("/")[0] == case]
        errors = {name: [r[name]["error_left" if name != "first" else "error_total"] for r in runs
                         if name in r and r[name].get("error_left" if name != "first" else "error_total") is not None]
                  for name in ("first", "at_25", "at_50", "at_75")}
        print(f"{case}: median error " + ", ".join(f"{name} {pct(statistics.median(v)) if v else '–'}"
                                                    for name, v in errors.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
