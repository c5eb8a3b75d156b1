"""The scoreboard (issue 25): what a student gains from the tool at equal compute, on the whole of CIFAR-100.

Five arms, each given the same number of training epochs (sweep trial-epochs + retrain epochs x models, all counted
the same way), each run through the project's real path: `orchestrator.py` in a subprocess, with `--ood-dir` a
labelled CIFAR-100-C-style copy of the test set (robustness.generate), so every arm writes submission_ood.csv and
is scored through it. Arms (bench/scoreboard_arms.py, ARMS; their settings are table rows there):

    alone         the seed student's part-1 recipe as written (../shared/seed/: SGD lr 0.1, momentum 0.9, wd 5e-4,
                  batch 128, StepLR x0.1 every 10 epochs, crop + flip), one model for the whole budget, plain
                  prediction. Run as a one-trial "sweep" whose retrain reuses the trial's model (nothing trained
                  twice), so it gets the very same retrain / submission / scoring path as the tool
    alone_tuned   the same + cosine schedule + label smoothing 0.1 (what a tutorial suggests)
    for_loop      random configs of the part file's space, no early stopping, the best retrained; the part file's
                  ranking (corrupted validation), retrain and flip TTA: the tool without its search strategy
    tool_default  search_spaces/part1.yaml as shipped (TPE, ASHA, OOD ranking, retrain, flip TTA, its 1-seed
                  "ensemble"), scaled only in epochs and trials to the budget
    tool_best     the tool with the scheduler and final-model options the open issues measure best (TOOL_BEST in
                  scoreboard_arms.py, or --arm-set tool_best:KEY=VALUE); skipped while it has none

Scores per arm x seed: clean test accuracy (all 10,000 test images); accuracy on the corrupted test set (all 19
corruptions x 5 severities), the families part1.yaml tunes on (ood_val.corruptions) and the held-out ones apart,
read back from submission_ood.csv and scored against labels.npy (and checked against the orchestrator's own score);
epochs spent and their P100 GPU-hour equivalent (bench/sweep_budget.py's assumed P100); wall time here.

Sizing of the CPU preset (the 3-hour run), measured on this 2-core machine while shared (load 0.9-3.8), at
`nice -n 19`. One first epoch of 45,000 real training images per candidate model, 1 torch thread, and the time to
predict one image:

    small_cnn (30k parameters)                   15.3 s              0.18 ms
    bn_cnn at width 16 (455k; not a model here)  32 s                0.31 ms
    bn_cnn at width 24 (1.0M)                    66 s                0.62 ms
    simple_cnn (the seed's network)             275 s                2.0 ms
    bn_cnn (width 64, as part1.yaml has it)     464 s                3.6 ms
(simple_cnn and the bn_cnn widths timed on 4,500-9,000 images and scaled.) Every arm predicts the corrupted test set,
950,000 images: with simple_cnn that alone is half an hour per model, and one of its epochs 4.5 minutes, so neither
the seed's network nor part1.yaml's bn_cnn fits 15 runs in 3 hours. small_cnn does (part-1 legal: convolution, batch
norm, pooling, linear), as the one model every arm trains (the part file's model choice restricted to it). Then a
check of the whole path at this scale (`--budget 8 --trial-epochs 2 --retrain-epochs 2 --arms alone tool_default
--seeds 0 --ood-images 1000`, load 2.4-3.8, niced): alone 6.0 s per epoch at 2 threads after a 27 s first one, 24%
clean test after 8 epochs; sweep trials (1 thread, 2 at once, + 5,000 validation and 9,000 corrupted validation images
scored) 13-17 s per epoch, 57-67 s with AugMix + JSD or batch 64 + mixup beside one; the retrain of an AugMix winner
45 s per epoch on 50,000 images; predicting 11,600 images/s plain, 1,700-1,900 with flip TTA under that load (2x plain
when idle); the corrupted set of 1,000 test images in 32 s (10,000: ~5.5 min, once); ~5 s start-up and ~3 s report per
run. So 40 epochs per arm: alone and alone_tuned train 40 epochs (StepLR at 10, 20, 30 as written); the sweeps' trials
train 6 epochs (part1.yaml's 30 x 0.2, and with them ASHA's grace period 3 -> 1, step_size 5-20 -> 1-4, warmup 0-3 ->
0-1, the enqueued recipes' step 10 -> 2) and the winner is retrained 10 epochs (50 x 0.2) on train + validation:
for_loop 5 trials x 6 + 10 = 40 epochs, tool_default 11 trials x ~2.75 planned epochs (ASHA rungs at 1 and 3,
sweep.plan's simulation of them) + 10 = ~40. Estimated wall time, idle: alone ~6 min, for-loop and tool 15-22 min each
per seed (AugMix trials are ~4x a plain epoch's wall time, though one epoch in the count; the P100 equivalent counts
their 3 views), so the four arms with settings today ~2.5 h for 3 seeds, + the corrupted set; with tool_best ~3.3 h.
The ETA line corrects this from measured epochs as it runs; `--budget 30 --trial-epochs 4 --retrain-epochs 6` is the
smaller fallback. Whether alone learns at this budget is checked first: the run stops after alone seed 0 if its clean
test accuracy is under 10% (--min-alone-acc).

    python bench/scoreboard.py                         # the CPU benchmark (~3 h idle); resumable
    python bench/scoreboard.py --plan                  # the arms, their epochs and the exact commands; runs nothing
    python bench/scoreboard.py --stage report          # table, headline and plot from what has finished
    python bench/scoreboard.py --preset gpu --plan     # parts 1-3, part files as shipped (full epochs), 3 seeds
    python bench/scoreboard.py --preset tiny --data D --out DIR   # what the test runs (2 arms, 1 seed)

Resumable: each finished arm x seed is recorded (OUT/runs/*.json, atomically) and skipped on a rerun; an arm killed
part-way continues with `orchestrator.py --resume`. Kill it any time (Ctrl-C, SIGTERM, kill -9) and run the same
command again. Output: OUT/scoreboard.json (every number with the command that produced it, commit, machine, load
average before/after), OUT/scoreboard.md (the table, mean ± std over seeds, and the headline), the plot
(bench/scoreboard.png for the CPU preset, OUT/scoreboard.png otherwise). Each arm and seed leaves OUT/<arm>/seed<N>/
(OUT/part<k>/<arm>/seed<N>/ with several parts): best.json, final/model_seed*.pt, submission_ood.csv, the report.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import scoreboard_arms as arms_mod  # noqa: E402
import scoreboard_scores as scores_mod  # noqa: E402
from scoreboard_arms import ARMS, PRESETS  # noqa: E402
from trainables import atomic  # noqa: E402
from trainables.errors import UserError  # noqa: E402

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
EXIT_RESUMABLE = 75
# An epoch ended, in the orchestrator's output: a trial's (not its in-epoch progress lines) or the retrain's.
EPOCH_LINE = re.compile(r"trial \S+ epoch \d+/\d+: (?!step )|retrain seed \d+: epoch \d+/\d+ ")


def say(msg: str) -> None:
    print(f"[scoreboard] {time.strftime('%H:%M:%S')} {msg}", flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default="cpu")
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-100 .npz (default: ../shared/data/cifar100.npz)")
    p.add_argument("--out", help="results folder (default: results/scoreboard, or results/scoreboard-<preset>)")
    p.add_argument("--plot", help="the plot's path (default: bench/scoreboard.png for --preset cpu, else OUT/)")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), help="default: the preset's")
    p.add_argument("--seeds", nargs="+", type=int, help="default: the preset's")
    p.add_argument("--parts", nargs="+", type=int, choices=(1, 2, 3), help="default: the preset's")
    p.add_argument("--budget", type=int, help="epochs per arm (default: the preset's)")
    p.add_argument("--trial-epochs", type=int, help="epochs of a sweep trial (default: the preset's)")
    p.add_argument("--retrain-epochs", type=int, help="retrain epochs per model (default: the preset's)")
    p.add_argument("--ood-images", type=int, help="test images per severity in the corrupted set (0 = all 10,000)")
    p.add_argument("--arm-set", action="append", default=[], metavar="ARM:KEY=VALUE",
                   help="one more YAML override for one arm, e.g. tool_best:retrain.seeds=[0,1] (value read as YAML; "
                        "repeatable)")
    p.add_argument("--min-alone-acc", type=float, help="stop after alone's first seed below this clean test "
                                                      "accuracy (the budget is too small to compare anything)")
    p.add_argument("--workers", type=int, default=2, help="processes generating the corrupted test set")
    p.add_argument("--stage", choices=("all", "report"), default="all")
    p.add_argument("--plan", action="store_true",
                   help="write every generated space, print the arms, epochs and commands; train nothing")
    return p.parse_args(argv)


def resolve(args) -> arms_mod.Preset:
    import dataclasses

    preset = PRESETS[args.preset]
    for flag, value, low in (("--budget", args.budget, 1), ("--trial-epochs", args.trial_epochs, 1),
                             ("--retrain-epochs", args.retrain_epochs, 1), ("--ood-images", args.ood_images, 0)):
        if value is not None and value < low:
            raise UserError(f"{flag} {value}: allowed: a whole number >= {low}")
    changes = {k: v for k, v in dict(arms=args.arms and tuple(args.arms), seeds=args.seeds and tuple(args.seeds),
                                     parts=args.parts and tuple(args.parts), budget=args.budget,
                                     trial_epochs=args.trial_epochs, retrain_epochs=args.retrain_epochs,
                                     ood_images=args.ood_images, min_alone_acc=args.min_alone_acc).items()
               if v is not None}
    preset = dataclasses.replace(preset, **changes)
    args.out = os.path.abspath(args.out or os.path.join(
        ROOT, "results", "scoreboard" if args.preset == "cpu" else f"scoreboard-{args.preset}"))
    args.plot = args.plot or (os.path.join(ROOT, "bench", "scoreboard.png") if args.preset == "cpu"
                              else os.path.join(args.out, "scoreboard.png"))
    args.data = os.path.abspath(args.data)
    if not os.path.isfile(args.data):
        raise UserError(f"--data {args.data}: no such file (a CIFAR-100 .npz with x_train, y_train, x_test, y_test)")
    args.extra = {}
    for item in args.arm_set:
        arm, _, rest = item.partition(":")
        key, eq, value = rest.partition("=")
        if arm not in ARMS or not key or not eq:
            raise UserError(f"--arm-set {item!r}: expected ARM:KEY=VALUE with ARM one of {', '.join(ARMS)}")
        args.extra.setdefault(arm, {})[key] = yaml.safe_load(value)
    return preset


# ---------------------------------------------------------------- the plan

def arm_active(arm: str, args) -> bool:
    """tool_best runs only with settings of its own (else it repeats tool_default)."""
    return arm != "tool_best" or bool(arms_mod.TOOL_BEST or args.extra.get("tool_best"))


def make_jobs(preset, args, ood_dir: str) -> list:
    """Every arm x seed, seed-major (a whole comparison per seed as early as possible), alone first."""
    order = ["alone"] + [a for a in preset.arms if a != "alone"] if "alone" in preset.arms else list(preset.arms)
    jobs = []
    for part in preset.parts:
        for seed in preset.seeds:
            for arm in order:
                if arm_active(arm, args):
                    jobs.append(arms_mod.make_job(part, arm, seed, preset, args.data, ood_dir, args.extra.get(arm)))
    return jobs


def folder_of(job, preset, out: str) -> str:
    base = out if len(preset.parts) == 1 else os.path.join(out, f"part{job.part}")
    return os.path.join(base, job.arm, f"seed{job.seed}")


def run_id(job) -> str:
    return f"part{job.part}-{job.arm}-seed{job.seed}"


def command(job, preset, args, ood_dir: str, space: str, resume: bool) -> list[str]:
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", args.data,
           "--ood-dir", ood_dir, "--results-dir", os.path.dirname(folder_of(job, preset, args.out)),
           "--wandb", "off", "--no-robustness"]  # the labelled --ood-dir is the corrupted test set: scored once
    if preset.cpus:
        cmd += ["--cpus", str(preset.cpus)]
    return cmd + (["--resume"] if resume else [])


def write_space(job, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic.open_writer(path) as f:
        yaml.safe_dump(job.form, f, sort_keys=False)


def shown(cmd: list[str]) -> str:
    return "python " + shlex.join(cmd[1:]).replace(ROOT + "/", "")


# ---------------------------------------------------------------- the corrupted test set

def ood_folder(args, preset) -> str:
    n = preset.ood_images
    return os.path.join(args.out, "ood-test" if not n else f"ood-test-n{n}")


def corrupted_test_set(args, preset) -> str:
    """The labelled DL4DS-layout copy of the test set, made once by `python -m robustness.generate` and reused by
    every arm (cached under OUT; regenerated when the data, size or seed differ)."""
    n = preset.ood_images
    folder = ood_folder(args, preset)
    meta = os.path.join(folder, "generate.json")
    if os.path.exists(meta):
        with open(meta) as f:
            done = json.load(f)
        if done.get("npz") == args.data and done.get("subset") == (n or None) and done.get("seed") == 0:
            return folder
    cmd = [sys.executable, "-m", "robustness.generate", "--npz", args.data, "--out", folder,
           "--workers", str(args.workers)] + (["--subset", str(n)] if n else [])
    if args.plan:
        say(f"corrupted test set: would run {shown(cmd)}")
        return folder
    say(f"corrupted test set: {shown(cmd)}")
    t0 = time.time()
    rc = subprocess.call(cmd, cwd=ROOT, preexec_fn=_die_with_parent)
    if rc != 0:
        raise SystemExit(rc if rc in (130,) else 1)
    say(f"corrupted test set ready in {time.time() - t0:.0f} s: {folder}")
    return folder


# ---------------------------------------------------------------- running one arm x seed

def _die_with_parent() -> None:
    """The child gets SIGTERM when the scoreboard dies, even by kill -9: the orchestrator then saves and exits 75
    (a rerun continues it), instead of running on beside the next attempt."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Progress:
    """One line with the epochs done and the time left, from this invocation's measured seconds per epoch (start-up,
    prediction and reports included, so the estimate covers them), at most every `every_s` seconds."""

    def __init__(self, planned_total: float, done_before: float, every_s: float = 30.0):
        self.total, self.done, self.every_s = planned_total, done_before, every_s
        self.seen, self.t0, self.last = 0, time.time(), 0.0  # epochs this invocation saw end: its pace
        self.name, self.current, self.planned = "", 0, 0.0

    def start(self, name: str, planned: float) -> None:
        self.name, self.current, self.planned = name, 0, planned
        self.line()

    def epoch(self) -> None:
        self.seen += 1
        self.current += 1
        if time.time() - self.last >= self.every_s:
            self.line()

    def finish(self, epochs: float) -> None:
        self.done += epochs  # what the run counted (history.csv + retrain), not the lines seen
        self.current = 0

    def line(self) -> None:
        from sweep.plan import duration

        self.last = time.time()
        done = self.done + self.current
        text = (f"{self.name}: {self.current}/{self.planned:.0f} epochs; {done:.0f}/{self.total:.0f} epochs in all "
                f"({done / max(1.0, self.total):.0%})")
        if self.seen:
            per = (time.time() - self.t0) / self.seen
            left = duration((self.total - done) * per)
            text += f"; {per:.1f} s per epoch here, everything included: about {left} left"
        else:
            text += "; time left once the first epochs are timed"
        say(text)


def run_job(job, preset, args, ood_dir: str, progress: Progress) -> dict:
    """Run (or continue) one arm x seed; its record: finished with its scores, or why not."""
    rec_path = os.path.join(args.out, "runs", f"{run_id(job)}.json")
    rec = json.load(open(rec_path)) if os.path.exists(rec_path) else {}
    for stale in ("scores", "kept", "error"):  # from an attempt that did not finish
        rec.pop(stale, None)
    folder = folder_of(job, preset, args.out)
    space = os.path.join(args.out, "spaces", f"{run_id(job)}.yaml")
    resume = os.path.exists(os.path.join(folder, "sweep.json"))
    cmd = command(job, preset, args, ood_dir, space, resume)
    rec.update(part=job.part, arm=job.arm, seed=job.seed, label=ARMS[job.arm].label, folder=folder, space=space,
               overrides=job.overrides, planned_epochs=job.planned_epochs, planned_trials=job.trials,
               command=shown(command(job, preset, args, ood_dir, space, False)))
    write_space(job, space)
    log_path = os.path.join(args.out, "logs", f"{run_id(job)}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    _killed_attempt(rec, log_path)
    rec.setdefault("attempts", []).append({"started": time.time(), "status": "running"})
    atomic.write_json(rec_path, rec)  # a scoreboard killed outright leaves this open attempt: timed on the rerun
    progress.start(run_id(job), job.planned_epochs)
    say(f"{run_id(job)}: {'continuing (--resume)' if resume else 'running'} {shown(cmd)}; log {log_path}")
    load0, t0 = os.getloadavg(), time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", preexec_fn=_die_with_parent)
    stopped: KeyboardInterrupt | None = None
    timers: list[threading.Timer] = []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# {datetime.datetime.now().isoformat(timespec='seconds')} {shown(cmd)}\n")
        while True:
            try:
                for line in proc.stdout:  # read to the end, also while it stops: its last lines say how it ended
                    log.write(f"[{time.time() - t0:8.1f} s] {line}")
                    log.flush()
                    if EPOCH_LINE.search(line):
                        progress.epoch()
                break
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: the orchestrator stops too, keeping what it finished
                if stopped is None:
                    stopped, timers = exc, _escalate(proc)
    rc = proc.wait()
    for t in timers:
        t.cancel()
    status = "finished" if rc == 0 else "interrupted" if rc in (EXIT_RESUMABLE, 130) or stopped is not None \
        else "failed"
    _attempt(rec, rec_path, rc=rc, wall=time.time() - t0, load0=load0, status=status, write=False)
    if status == "finished":  # (also when the stop came as it ended: its results are whole)
        try:
            rec["scores"] = scores_mod.score(folder, ood_dir, arms_mod.tuned_on(job.part), _train_images(args.data))
            rec["kept"] = {"best": os.path.join(folder, "best.json"),
                           "models": [os.path.join(folder, m["path"]) for m in rec["scores"]["retrained"]],
                           "submission": os.path.join(folder, "submission_ood.csv")}
        except (OSError, KeyError, ValueError) as exc:
            rec.update(status="failed", error=f"scoring: {type(exc).__name__}: {exc}")
    else:
        rec["error"] = _last_line(log_path)
    rec["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    atomic.write_json(rec_path, rec)
    if stopped is not None:
        raise stopped
    if rc == 130:
        raise KeyboardInterrupt
    return rec


def _escalate(proc: subprocess.Popen) -> list[threading.Timer]:
    """A terminal's Ctrl-C or a process-group SIGTERM reached the orchestrator too: it saves what it finished and
    exits (130 / 75) by itself, and a second signal could cut that save short. So SIGTERM only if it has not ended
    20 s later (the signal reached the scoreboard alone), SIGKILL 60 s after that."""
    timers = [threading.Timer(20, proc.terminate), threading.Timer(80, proc.kill)]
    for t in timers:
        t.daemon = True
        t.start()
    return timers


def _attempt(rec: dict, path: str, rc, wall: float, load0, status: str, write: bool = True) -> None:
    rec["attempts"][-1] = {"started": rec["attempts"][-1]["started"], "rc": rc, "wall_s": round(wall, 1),
                           "status": status, "loadavg_before": [round(x, 2) for x in load0],
                           "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    rec["wall_s"] = round(sum(a.get("wall_s", 0) for a in rec["attempts"]), 1)
    rec["status"], rec["rc"] = status, rc
    if write:
        atomic.write_json(path, rec)


def _killed_attempt(rec: dict, log_path: str) -> None:
    """An attempt still open from an earlier run was killed with the scoreboard: its wall time is taken as
    until its log's last line (the orchestrator stops within seconds of its parent)."""
    last = rec.get("attempts", [{}])[-1]
    if last.get("status") == "running":
        end = os.path.getmtime(log_path) if os.path.exists(log_path) else last["started"]
        last.update(status="killed", rc=None, wall_s=round(max(0.0, end - last["started"]), 1))
        rec["wall_s"] = round(sum(a.get("wall_s", 0) for a in rec["attempts"]), 1)


def _last_line(log_path: str) -> str:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    return lines[-1][:400] if lines else ""


def _train_images(data: str) -> int:
    import numpy as np

    with np.load(data) as d:
        return len(d["y_train"])


# ---------------------------------------------------------------- outputs

def load_runs(out: str) -> dict:
    folder = os.path.join(out, "runs")
    runs = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                runs[name[:-5]] = json.load(f)
    return runs


def write_outputs(args, preset, jobs, argv, load0) -> dict:
    runs = load_runs(args.out)
    wanted = {run_id(j) for j in jobs}
    runs = {k: v for k, v in runs.items() if k in wanted} if jobs else runs
    arms = [a for a in ARMS if any(r["arm"] == a for r in runs.values())]
    labels, whats = {a: ARMS[a].label for a in ARMS}, {a: ARMS[a].what for a in ARMS}
    planned = {(str(j.part), j.arm): j.planned_epochs for j in jobs}
    md = scores_mod.markdown(runs, arms, labels, whats, planned)
    report = {
        "command": shlex.join(["python", "bench/scoreboard.py", *argv]), "preset": args.preset,
        "settings": arms_mod.describe(preset), "arm_sets": args.extra, "tool_best": arms_mod.TOOL_BEST,
        "commit": atomic.git_commit(ROOT), "data": args.data,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "written": datetime.datetime.now().isoformat(timespec="seconds"),
        "p100_assumed": scores_mod.P100, "summary": scores_mod.summary(runs, labels), "runs": runs,
    }
    atomic.write_json(os.path.join(args.out, "scoreboard.json"), report)
    atomic.write_text(os.path.join(args.out, "scoreboard.md"),
                      f"Scoreboard: `{report['command']}` at commit {report['commit']}, {report['machine']}; "
                      f"load average {report['loadavg_before'][0]} before, {report['loadavg_after'][0]} after.\n\n"
                      + md + "\n")
    scores_mod.plot(runs, arms, labels, args.plot)
    return report


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        preset = resolve(args)
        ood_dir = ood_folder(args, preset)
        jobs = make_jobs(preset, args, ood_dir)  # every generated space checked by the project's loader: now
    except UserError as exc:  # also the space loader's SpaceError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    skipped = [a for a in preset.arms if not arm_active(a, args)]
    if skipped:
        say(f"skipped {', '.join(skipped)}: no settings of its own yet (TOOL_BEST in bench/scoreboard_arms.py, or "
            f"--arm-set tool_best:KEY=VALUE); it would repeat tool_default")
    if args.plan:
        for job in jobs:
            space = os.path.join(args.out, "spaces", f"{run_id(job)}.yaml")
            if os.path.exists(os.path.join(args.out, "runs", f"{run_id(job)}.json")):
                space = space[:-len(".yaml")] + ".plan.yaml"  # the recorded run's own space is its artefact: kept
            write_space(job, space)
            print(f"{run_id(job)}: {job.trials} trial(s), {job.planned_epochs:.0f} epochs planned\n  "
                  f"{shown(command(job, preset, args, ood_dir, space, False))}")
        corrupted_test_set(args, preset)
        return 0
    if args.stage == "report":
        write_outputs(args, preset, jobs, argv, load0)
        say(f"wrote {os.path.join(args.out, 'scoreboard.md')}, {args.plot}")
        return 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    os.makedirs(args.out, exist_ok=True)
    try:
        ood_dir = corrupted_test_set(args, preset)
        runs = load_runs(args.out)
        done = {k for k, r in runs.items() if r.get("status") == "finished"}
        progress = Progress(sum(j.planned_epochs for j in jobs),
                            sum(runs[run_id(j)]["scores"]["epochs"]["total"] for j in jobs if run_id(j) in done))
        for job in jobs:
            if run_id(job) in done:
                before = runs[run_id(job)]
                changed = json.dumps(before.get("overrides"), sort_keys=True) != \
                    json.dumps(json.loads(json.dumps(job.overrides)), sort_keys=True)
                say(f"{run_id(job)}: finished before, skipped ({before['folder']})" + (
                    "; NOTE: it ran with other settings than these (its record's overrides differ): delete "
                    f"{before['folder']} and {os.path.join(args.out, 'runs', run_id(job) + '.json')} to run it "
                    "again" if changed else ""))
                continue
            rec = run_job(job, preset, args, ood_dir, progress)
            progress.finish(rec["scores"]["epochs"]["total"] if rec["status"] == "finished" else 0)
            _said(rec)
            write_outputs(args, preset, jobs, argv, load0)
            if job.arm == "alone" and rec["status"] == "finished" and \
                    rec["scores"]["clean_test_acc"] < preset.min_alone_acc:
                say(f"stopping: alone seed {job.seed} reached {100 * rec['scores']['clean_test_acc']:.1f}% clean "
                    f"test accuracy, under --min-alone-acc {100 * preset.min_alone_acc:.0f}%: at this budget the "
                    f"arms would not be compared on a model that learned; raise --budget or change the model")
                return 1
    except KeyboardInterrupt:
        write_outputs(args, preset, jobs, argv, load0)
        say(f"interrupted; what finished is kept. Continue with the same command: python bench/scoreboard.py "
            f"{shlex.join(argv)}")
        return EXIT_RESUMABLE
    report = write_outputs(args, preset, jobs, argv, load0)
    failed = [k for k, r in report["runs"].items() if r.get("status") != "finished"]
    say(f"done: {os.path.join(args.out, 'scoreboard.json')}, {os.path.join(args.out, 'scoreboard.md')}, {args.plot}"
        + (f"; not finished: {', '.join(failed)} (run the same command again)" if failed else ""))
    return 1 if failed else 0


def _said(rec: dict) -> None:
    if rec["status"] == "finished":
        s = rec["scores"]
        say(f"part{rec['part']}-{rec['arm']}-seed{rec['seed']}: clean test {100 * s['clean_test_acc']:.1f}%, corrupted "
            f"test {100 * s['ood_acc']:.1f}% (held-out families {100 * s['held_out_acc']:.1f}%), "
            f"{s['epochs']['total']} epochs, {rec['wall_s'] / 60:.1f} min")
    else:
        say(f"part{rec['part']}-{rec['arm']}-seed{rec['seed']}: {rec['status']} (exit {rec['rc']}): "
            f"{rec.get('error', '')}")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
