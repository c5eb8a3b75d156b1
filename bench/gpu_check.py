"""GPU check: the figures only a GPU can give, in one prepared run of at most 12 minutes (issues 14 and 25).

    python bench/gpu_check.py --out gpu_check --data ../shared/data/cifar100.npz   # on a GPU machine
    python bench/gpu_check.py --device cpu --tiny --out /tmp/gpu_check_tiny        # every step shrunk, on a CPU

  a  training images/s, this engine vs the seed's PIL + DataLoader pipeline, part-3 augmentation,
     simple_cnn and resnet18_cifar (bench/bench_train.py's functions)
  b  one full 50,000-image ResNet18-CIFAR epoch in bf16 + channels_last, eager and torch.compile'd
     (the compile time stated apart)
  c  1, 2 and 4 trial processes training at once on the one device: total images/s
  d  the 950,000-image OOD prediction (19 memory-mapped (50000, 32, 32, 3) uint8 files; a stand-in set in the
     real layout unless --ood-dir holds one) through robustness.predict.predict_ood: seconds, peak host RAM
  e  a ~3-minute part-2 sweep, orchestrator.py in a subprocess: wall time vs time inside epochs, per trial
  f  the scoreboard's part-1 arms (bench/scoreboard.py --preset gpu-check: 1 seed, 8 epochs per arm, a 500-image
     corrupted test set): per arm clean and corrupted test accuracy, epochs, wall time. Left out: seeds 1-2,
     parts 2-3, the full-length budgets (--preset gpu), the whole 10,000-image corrupted set, and any arm that does
     not fit the step's budget (said in the output)

Each step has its own time budget (BUDGETS) and runs in its own process: a step that would overrun skips
or stops what is left and keeps what it measured; a failed step is recorded with its error line and the
run goes on. Without --data, throughput steps use random pixels and the sweep a random-pixel .npz (said in
every figure). OUT/gpu_check.json (everything) and OUT/gpu_check.md (one table row per figure) are
rewritten atomically after every step. Exit 0: every step ran (some may be partial); 1: a step failed or
ran out of time; 2: bad input; 130: Ctrl-C.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import queue as queue_mod
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gpu_check_steps as steps  # noqa: E402  (bench/ is on sys.path: this script's folder)
from robustness.ood import FULL_N, OOD_FILES  # noqa: E402
from trainables import atomic  # noqa: E402
from trainables.errors import UserError  # noqa: E402

# Seconds per step: (GPU run, --tiny). The GPU column sums to 710 s: a-e's 470 s (issue 14's 8 minutes) + the
# scoreboard's 240 s, under 12 minutes, leaving a lent GPU's 15 minutes room for the machine's start.
# The --tiny column is a ceiling for a loaded 2-core machine (other jobs sharing it); idle, the run takes < 3 minutes.
BUDGETS = {"a": (55, 120), "b": (115, 150), "c": (60, 120), "d": (60, 60), "e": (180, 180), "f": (240, 240)}
TITLES = {
    "a": "training images/s: engine vs seed PIL + DataLoader, part-3 augmentation",
    "b": "full 50,000-image ResNet18-CIFAR epoch, bf16 + channels_last, eager vs torch.compile",
    "c": "1, 2 and 4 trial processes sharing the device: total images/s",
    "d": "950,000-image OOD prediction from memory-mapped files: seconds, peak host RAM",
    "e": "part-2 sweep end to end (orchestrator.py): wall time vs time inside epochs, per trial",
    "f": "the scoreboard's part-1 arms at equal epochs (bench/scoreboard.py): accuracy, epochs, wall time per arm",
}
SWEEP_GRACE_S = (25, 15)  # SIGTERM this long before the budget ends: the sweep saves its files and exits 75
EXIT_RESUMABLE = 75  # the orchestrator's "stopped (time limit / SIGTERM), resume me"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.md and the sweep's results")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default: fails at once when no GPU is visible) or cpu")
    p.add_argument("--tiny", action="store_true", help="every step shrunk (minutes on a CPU): what the test runs")
    p.add_argument("--data", help="CIFAR-100 .npz or torchvision root; without it, random pixels (speed only)")
    p.add_argument("--ood-dir", help="the 19 distortionNN.npy files to predict; without it a stand-in set in the "
                                     "real layout is written to a temp folder and deleted afterwards")
    p.add_argument("--steps", default="abcdef", help="which steps to run, e.g. 'be' (default: abcdef)")
    p.add_argument("--budget", action="append", default=[], metavar="STEP=SECONDS",
                   help="change one step's time budget, e.g. --budget e=240 (repeatable; default: BUDGETS)")
    return p.parse_args(argv)


def check_args(args) -> dict:
    """Validate the inputs before any work; returns what the run is on (device, torch, data)."""
    bad = sorted(set(args.steps) - set(BUDGETS))
    if bad or not args.steps:
        raise UserError(f"--steps {args.steps!r}: choose letters from {''.join(BUDGETS)} (e.g. --steps abcdef)")
    args.budgets = {k: float(v[args.tiny]) for k, v in BUDGETS.items()}
    for item in args.budget:
        key, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if key not in BUDGETS or not 0 < seconds < 3600:
            raise UserError(f"--budget {item!r}: expected STEP=SECONDS with STEP one of {', '.join(BUDGETS)} "
                            f"and 0 < SECONDS < 3600, e.g. --budget e=240")
        args.budgets[key] = seconds
    if args.ood_dir and not os.path.isdir(args.ood_dir):
        raise UserError(f"--ood-dir {args.ood_dir}: no such folder")
    where = {"torch": importlib.metadata.version("torch"), "data": "synthetic random pixels (no --data)"}
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is visible here; run on a GPU machine or use --device cpu")
        where["device"] = torch.cuda.get_device_name(0)
    else:
        where["device"] = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if args.data:
        from trainables.data import load_arrays

        args.data = os.path.abspath(args.data)
        arrays = load_arrays(args.data)  # a bad file fails here, one line, before any step
        where["data"] = f"real CIFAR-100 ({args.data})"
        args.test_images = arrays.x_test
    return where


# --- running a step in its own process --------------------------------------------------------------------
def run_child(step: str, params: dict, budget: float, rec: dict) -> None:
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; each step starts clean
    q = ctx.Queue()
    proc = ctx.Process(target=steps.child_main, args=(step, params, q))
    hard = time.time() + budget
    proc.start()
    try:
        while True:
            try:
                kind, payload = q.get(timeout=max(0.05, min(1.0, hard - time.time())))
            except queue_mod.Empty:
                if time.time() >= hard:
                    rec.update(status="timed_out", error=f"stopped at its {budget:.0f} s budget")
                    return
                if not proc.is_alive():
                    time.sleep(0.5)  # a last message may still be in the pipe
                    if q.empty():
                        rec.update(status="failed", error=f"step process died (exit code {proc.exitcode})")
                        return
                continue
            if kind == "figure":
                add_figure(rec, payload)
            elif kind == "skip":
                rec["skipped"].append(payload)
                print(f"  [{step}] skipped {payload['what']}: {payload['reason']}", flush=True)
            elif kind == "partial":
                rec["partial"] = payload["reason"]
                print(f"  [{step}] {payload['reason']}", flush=True)
            elif kind == "error":
                rec.update(status="failed", error=payload)
                return
            elif kind == "done":
                return
    finally:
        if rec.get("status") not in ("timed_out", "failed"):
            proc.join(10)  # a finished step exits by itself; one out of time is stopped at once
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def add_figure(rec: dict, fig: dict) -> None:
    rec["figures"].append(fig)
    model = f"{fig['model']} " if fig["model"] else ""
    print(f"  [{fig['step']}] {model}{fig['name']}: {fmt(fig['value'])} {fig['unit']}", flush=True)


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


# --- (d) the stand-in OOD set ----------------------------------------------------------------------------------
def ood_set(args, scratch: str) -> tuple[str, str, int, float]:
    """(folder, what it holds, images, seconds spent writing it)."""
    n = 4 if args.tiny else FULL_N
    if args.ood_dir and all(os.path.isfile(os.path.join(args.ood_dir, f)) for f in OOD_FILES):
        rows = np.load(os.path.join(args.ood_dir, OOD_FILES[0]), mmap_mode="r").shape[0]
        return args.ood_dir, f"given set {args.ood_dir}", rows * len(OOD_FILES), 0.0
    folder = args.ood_dir or os.path.join(scratch, "ood")
    if getattr(args, "test_images", None) is not None:
        block, what = args.test_images[:n], "stand-in: CIFAR-100 test images tiled 5x"
    else:
        block = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        what = "stand-in: random pixels"
    t = time.time()
    for name in OOD_FILES:
        with atomic.atomic_path(os.path.join(folder, name)) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(5 * n, 32, 32, 3))
            for s in range(5):
                out[s * n:(s + 1) * n] = block
            out.flush()
            del out
    return folder, f"{what}, {len(OOD_FILES)} x ({5 * n}, 32, 32, 3) uint8", len(OOD_FILES) * 5 * n, time.time() - t


# --- (e) the sweep ---------------------------------------------------------------------------------------------
def sweep_command(args, data: str, results: str) -> list[str]:
    # params.warmup_epochs.high: the part file's 5 must stay below fixed.epochs (the space loader checks it).
    sets = (["trials.num_samples=2", "trials.max_concurrent=2", "fixed.epochs=2", "params.warmup_epochs.high=1",
             "fixed.subset=300", "ood_val.images=30", "fixed.model=simple_cnn", "asha.grace_period=1",
             "resources.cpu=1"] if args.tiny else
            ["trials.num_samples=6", "trials.max_concurrent=2", "fixed.epochs=3", "params.warmup_epochs.high=2",
             "asha.grace_period=1", "resources.cpu=4"])
    if args.device == "cpu":
        sets.append("resources.gpu=0")
    space = os.path.join(ROOT, "search_spaces", "part2.yaml")
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space,
           "--data", data, "--results-dir", results, "--wandb", "off", "--no-retrain"]
    if args.tiny:
        cmd += ["--cpus", "2"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def sweep_data(args, scratch: str) -> tuple[str, str]:
    if args.data:
        return args.data, f"real CIFAR-100 ({args.data})"
    n_train, n_test = (1000, 100) if args.tiny else (50_000, 10_000)
    rng = np.random.default_rng(0)
    path = os.path.join(scratch, "synthetic.npz")
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
                 y_train=rng.integers(0, 100, n_train),
                 x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
                 y_test=rng.integers(0, 100, n_test))
    return path, f"synthetic random-pixel .npz ({n_train} train images, no --data): times only, accuracy meaningless"


def run_sweep(args, rec: dict, budget: float, where: dict, scratch: str) -> None:
    start = time.time()
    data, data_what = sweep_data(args, scratch)
    results = tempfile.mkdtemp(prefix="e_sweep_", dir=args.out)  # a fresh folder: never a resumed old sweep
    cmd = sweep_command(args, data, results)
    command = shlex.join(cmd[1:]).replace(shlex.quote(ROOT) + "/", "")
    rec["info"].update(orchestrator_command="python " + command, results=results, data=data_what)
    print(f"  [e] python {command}", flush=True)
    grace = SWEEP_GRACE_S[args.tiny]
    log_path = os.path.join(results, "orchestrator.log")
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time() - t0, ln.rstrip()) for ln in proc.stdout),
                              daemon=True)
    reader.start()
    try:
        code, signalled = _wait_sweep(proc, start + budget - grace, start + budget)
    except KeyboardInterrupt:  # its own session does not get the terminal's Ctrl-C: stop it, it saves its files
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    wall = time.time() - t0
    reader.join(5)
    atomic.write_text(log_path, "".join(f"[{t:7.1f} s] {ln}\n" for t, ln in list(lines)))
    # How long the process lived after its last line: time spent shutting down (Ray, reports) that no trial sees.
    last_output = lines[-1][0] if lines else 0.0
    rec["info"].update(exit_code=code, sweep_wall_s=round(wall, 2), last_output_at_s=round(last_output, 2),
                       exit_after_last_output_s=round(wall - last_output, 2), log=log_path)
    if signalled:
        rec["partial"] = f"{signalled} at the step budget; exit code {code}"
    trials = _read_results(results)
    if trials is None or (code not in (0, EXIT_RESUMABLE) and not signalled):
        tail = next((ln for _, ln in reversed(lines) if ln.strip()), "(no output)")
        rec.update(status="failed", error=f"orchestrator exit {code}"
                                          f"{', no trials.csv/history.csv' if trials is None else ''}: {tail}")
        if trials is None:
            return
    tr_rows, hist = trials
    common = dict(device=where["device"], torch=where["torch"], command=rec["command"], step="e", model="")
    cond = dict(data=data_what, orchestrator_command="python " + command, exit_code=code)
    total_in = total_wall = 0.0
    for row in tr_rows:
        tid = row["trial_id"]
        epochs = [float(h["epoch_time_s"]) for h in hist if h["trial_id"] == tid and h.get("epoch_time_s")]
        wall_t = float(row["time_s"] or 0)
        if wall_t <= 0 or not epochs:
            rec["skipped"].append({"what": f"trial {tid}", "reason": f"status {row['status']}: no epoch times"})
            continue
        inside = sum(epochs)
        total_in, total_wall = total_in + inside, total_wall + wall_t
        per = dict(cond, status=row["status"], epochs=len(epochs), outside_epochs_s=round(wall_t - inside, 2),
                   outside_per_epoch_s=round((wall_t - inside) / len(epochs), 3))
        add_figure(rec, dict(common, name=f"trial {tid}: wall", value=wall_t, unit="s", detail=per))
        add_figure(rec, dict(common, name=f"trial {tid}: inside epochs", value=inside, unit="s", detail=per))
    add_figure(rec, dict(common, name="sweep wall, orchestrator start to exit", value=wall, unit="s",
                         detail=dict(cond, trials=len(tr_rows))))
    if total_wall > 0:
        add_figure(rec, dict(common, name="share of trial wall time spent inside epochs", value=total_in / total_wall,
                             unit="fraction",
                             detail=dict(cond, inside_s=round(total_in, 2), trial_wall_s=round(total_wall, 2))))


def _wait_sweep(proc: subprocess.Popen, soft: float, hard: float, step: str = "e") -> tuple[int, str]:
    """Wait; at `soft` SIGTERM the process group (the orchestrator saves and exits 75), at `hard` SIGKILL it."""
    signalled, began, last_note = "", time.time(), time.time()
    while proc.poll() is None:
        now = time.time()
        if now >= hard:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return proc.returncode, "SIGTERM, then SIGKILL after the grace time"
        if now >= soft and not signalled:
            os.killpg(proc.pid, signal.SIGTERM)
            signalled = "SIGTERM"
        if now - last_note >= 15:
            print(f"  [{step}] {'sweep' if step == 'e' else 'scoreboard'} running for {now - began:.0f} s", flush=True)
            last_note = now
        time.sleep(0.5)
    return proc.returncode, signalled


def _read_results(results: str) -> tuple[list[dict], list[dict]] | None:
    """trials.csv and history.csv of the one sweep folder under `results`, checked for the columns used."""
    for name in sorted(os.listdir(results)):
        folder = os.path.join(results, name)
        if os.path.isfile(os.path.join(folder, "trials.csv")) and os.path.isfile(os.path.join(folder, "history.csv")):
            with open(os.path.join(folder, "trials.csv"), newline="") as f:
                trials = list(csv.DictReader(f))
            with open(os.path.join(folder, "history.csv"), newline="") as f:
                hist = list(csv.DictReader(f))
            for what, rows, cols in (("trials.csv", trials, ("trial_id", "status", "time_s")),
                                     ("history.csv", hist, ("trial_id", "epoch_time_s"))):
                missing = [c for c in cols if rows and c not in rows[0]]
                if missing:
                    raise RuntimeError(f"{what} has no column {', '.join(missing)}")
            return trials, hist
    return None


# --- (f) the scoreboard's part-1 arms (issue 25) ---------------------------------------------------------------
def scoreboard_command(args, data: str, out: str) -> list[str]:
    """bench/scoreboard.py's gpu-check preset; on the CPU with --tiny its tiny one (2 arms, 400 images)."""
    return [sys.executable, os.path.join(ROOT, "bench", "scoreboard.py"),
            "--preset", "tiny" if args.tiny else "gpu-check", "--data", data, "--out", out]


def run_scoreboard(args, rec: dict, budget: float, where: dict, scratch: str) -> None:
    """The scoreboard in a subprocess under the step's budget (SIGTERM before its end: it keeps every finished arm
    and exits 75); one figure per measure and finished arm, every arm that did not fit said as skipped."""
    start = time.time()
    data, data_what = sweep_data(args, scratch)
    out = tempfile.mkdtemp(prefix="f_scoreboard_", dir=args.out)
    cmd = scoreboard_command(args, data, out)
    command = "python " + shlex.join(cmd[1:]).replace(shlex.quote(ROOT) + "/", "")
    rec["info"].update(scoreboard_command=command, results=out, data=data_what)
    print(f"  [f] {command}", flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time() - t0, ln.rstrip()) for ln in proc.stdout),
                              daemon=True)
    reader.start()
    try:
        code, signalled = _wait_sweep(proc, start + budget - SWEEP_GRACE_S[args.tiny], start + budget, "f")
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    reader.join(5)
    atomic.write_text(os.path.join(out, "scoreboard.log"), "".join(f"[{t:7.1f} s] {ln}\n" for t, ln in list(lines)))
    rec["info"].update(exit_code=code, wall_s=round(time.time() - t0, 2), log=os.path.join(out, "scoreboard.log"))
    if signalled:
        rec["partial"] = f"{signalled} at the step budget; exit code {code}"
    path = os.path.join(out, "scoreboard.json")
    report = json.load(open(path)) if os.path.exists(path) else {"runs": {}}
    if code not in (0, EXIT_RESUMABLE) and not signalled:
        tail = next((ln for _, ln in reversed(lines) if ln.strip()), "(no output)")
        rec.update(status="failed", error=f"scoreboard exit {code}: {tail}")
    common = dict(device=where["device"], torch=where["torch"], command=rec["command"], step="f", model="")
    for run in report["runs"].values():
        name = f"{run['label']} seed {run['seed']}"
        if run.get("status") != "finished":
            rec["skipped"].append({"what": name, "reason": f"{run.get('status')}: did not finish in the budget"})
            continue
        s = run["scores"]
        cond = dict(data=data_what, scoreboard_command=command, orchestrator_command=run["command"],
                    epochs=s["epochs"]["total"], ood_images=s["ood_images"])
        add_figure(rec, dict(common, name=f"{name}: clean test accuracy", value=100 * s["clean_test_acc"], unit="%",
                             detail=cond))
        add_figure(rec, dict(common, name=f"{name}: corrupted test accuracy", value=100 * s["ood_acc"], unit="%",
                             detail=dict(cond, held_out_pct=round(100 * s["held_out_acc"], 2))))
        add_figure(rec, dict(common, name=f"{name}: epochs", value=s["epochs"]["total"], unit="epochs", detail=cond))
        add_figure(rec, dict(common, name=f"{name}: wall", value=run["wall_s"], unit="s", detail=cond))
    for line in (ln for _, ln in lines if "skipped" in ln and "no settings of its own" in ln):
        rec["skipped"].append({"what": "tool, best", "reason": line.split("] ", 1)[-1]})
    rec["info"].update(preset=cmd[cmd.index("--preset") + 1],
                       arms_run=sorted(f"{r['arm']} seed {r['seed']}" for r in report["runs"].values()))


# --- outputs ------------------------------------------------------------------------------------------------
def write_outputs(out: str, report: dict) -> None:
    atomic.write_json(os.path.join(out, "gpu_check.json"), report)
    atomic.write_text(os.path.join(out, "gpu_check.md"), markdown(report))


# Short conditions in the table; the long descriptions (data, recipe) once per step below it.
SHORT = {"batch_size": "batch {}", "images": "{:,} images", "of_images": "of {:,}", "precision": "{}",
         "window_s": "{} s window", "per_trial_images_per_s": "per trial {}", "status": "{}", "epochs": "{} epochs",
         "outside_epochs_s": "{} s outside epochs", "before_predicting_mb": "{} MB before predicting"}
LONG = ("data", "augmentation", "training", "set", "weights")


def markdown(report: dict) -> str:
    lines = [f"GPU check: `{report['command']}` on {report['device']}, torch {report['torch']}, commit "
             f"{report['commit']}, {report['started']}.", "",
             "| step | measurement | model | value | unit | conditions | device | torch | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for key, st in report["steps"].items():
        described: list[str] = []
        for f in st["figures"]:
            cond = ", ".join(SHORT[k].format(v) for k, v in f["detail"].items() if k in SHORT)
            lines.append(f"| {key} | {f['name']} | {f['model']} | {fmt(f['value'])} | {f['unit']} | {cond} | "
                         f"{f['device']} | {f['torch']} | `{f['command']}` |")
            described += [f"{k} {f['detail'][k]}" for k in LONG if k in f["detail"]
                          and f"{k} {f['detail'][k]}" not in described]
        if described:
            notes.append(f"- step {key}: {'; '.join(described)}")
        info = st["info"]
        if info.get("scoreboard_command"):
            notes.append(f"- step {key} ran `{info['scoreboard_command']}` (preset {info.get('preset')}; arms run: "
                         f"{', '.join(info.get('arms_run', [])) or 'none'})")
        if info.get("orchestrator_command"):
            notes.append(f"- step {key} ran `{info['orchestrator_command']}`")
        if "exit_after_last_output_s" in info:
            notes.append(f"- step {key}: the orchestrator ran {info['sweep_wall_s']} s, its last output line came at "
                         f"{info['last_output_at_s']} s, it exited {info['exit_after_last_output_s']} s later "
                         f"(exit code {info['exit_code']})")
        if st["status"] == "not_run":
            notes.append(f"- step {key}: not run (not in --steps)")
        elif st["status"] != "ok":
            why = st.get("error") or st.get("partial") or ""
            notes.append(f"- step {key} ({st['title']}): **{st['status']}**{': ' + why if why else ''}")
        notes += [f"- step {key}: skipped {s['what']}: {s['reason']}" for s in st["skipped"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        where = check_args(args)
        os.makedirs(args.out, exist_ok=True)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: --out {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    command = "python bench/gpu_check.py " + shlex.join(argv)
    report = {"command": command, **where, "commit": atomic.git_commit(ROOT), "tiny": args.tiny,
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "budget_s": sum(args.budgets[k] for k in args.steps), "steps": {}}
    print(f"gpu check: {where['device']}, torch {where['torch']}, data: {where['data']}; steps {args.steps}, "
          f"budget {report['budget_s']:g} s", flush=True)
    scratch = tempfile.mkdtemp(prefix="gpu_check_")
    t_all = time.time()
    try:
        for key in BUDGETS:
            rec = {"title": TITLES[key], "status": "not_run", "budget_s": args.budgets[key], "seconds": 0.0,
                   "command": command, "figures": [], "skipped": [], "info": {}}
            report["steps"][key] = rec
            if key not in args.steps:
                continue
            print(f"[{key}] {TITLES[key]} (budget {rec['budget_s']:g} s)", flush=True)
            t = time.time()
            rec["status"] = "running"
            try:
                run_step(key, args, rec, where, scratch)
            except Exception as exc:  # noqa: BLE001 - the step's own fault (e.g. a changed results file): record, go on
                first = (str(exc).strip().splitlines() or [""])[0]
                rec.update(status="failed", error=f"{type(exc).__name__}: {first}".rstrip(": "))
            if rec["status"] == "running":
                rec["status"] = "partial" if rec.get("partial") or rec["skipped"] else "ok"
            if rec["status"] == "ok" and not rec["figures"]:
                rec.update(status="failed", error="the step measured nothing")
            rec["seconds"] = round(time.time() - t, 1)
            print(f"[{key}] {rec['status']} in {rec['seconds']} s{': ' + rec['error'] if rec.get('error') else ''}",
                  flush=True)
            if rec["figures"]:  # the torch build string as the measuring processes saw it (the sweep's too)
                where["torch"] = report["torch"] = rec["figures"][0]["torch"]
            report["wall_s"] = round(time.time() - t_all, 1)
            write_outputs(args.out, report)
    except KeyboardInterrupt:
        report["interrupted"] = True
        write_outputs(args.out, report)
        print(f"\ninterrupted; what was measured is in {args.out}", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"done in {report['wall_s']} s: {os.path.join(args.out, 'gpu_check.json')}, "
          f"{os.path.join(args.out, 'gpu_check.md')}", flush=True)
    return 0 if all(s["status"] in ("ok", "partial", "not_run") for s in report["steps"].values()) else 1


def run_step(key: str, args, rec: dict, where: dict, scratch: str) -> None:
    budget = rec["budget_s"]
    if key == "e":
        run_sweep(args, rec, budget, where, scratch)
        return
    if key == "f":
        run_scoreboard(args, rec, budget, where, scratch)
        return
    params = {"device": args.device, "tiny": args.tiny, "data": args.data, "command": rec["command"],
              "scratch": scratch}
    start = time.time()
    if key == "d":
        folder, what, n, made_s = ood_set(args, scratch)
        params.update(ood_dir=folder, ood_what=what, ood_images=n)
        rec["info"].update(set=what, set_written_s=round(made_s, 1))
        print(f"  [d] {what}; written in {made_s:.1f} s", flush=True)
    left = budget - (time.time() - start)
    params["deadline"] = time.time() + left - max(3.0, 0.08 * left)  # the step stops itself before the hard kill
    run_child(key, params, left, rec)


if __name__ == "__main__":
    sys.exit(main())
