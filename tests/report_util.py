"""Results folders for the report tests, written in the sweep's real formats without running a sweep.

sweep.json holds a real SweepSpec (loaded from YAML by sweep.space, as the pipeline writes it); trials.csv,
history.csv, best.json, final/metrics.json and robustness/<kind>/robustness.json have the columns and keys
the sweep writes (sweep/results.py, sweep/final.py, robustness.measure.accuracy_table). The trials follow a
known truth: accuracy peaks at lr = 1e-2 and barely depends on anything else, so importance must put lr
first; weight decay trades clean accuracy for corrupted accuracy, so the Pareto front has several trials.
ASHA is simulated as Ray's runs it: at each rung a trial below the median of the trials there stops.
"""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np

SPACE = """
name: {name}
{objectives}
select: {select}
fixed: {{{model}epochs: {epochs}, device: cpu}}
params:
{params}asha: {{grace_period: 1, reduction_factor: 2}}
trials: {{num_samples: {n}, max_concurrent: 2}}
resources: {{cpu: 1, gpu: 0}}
"""
PARAMS = """
  lr: {type: loguniform, low: 1.0e-4, high: 0.1}
  batch_size: {type: choice, values: [32, 64]}
  scheduler: {type: choice, values: [cosine, step]}
  step_size: {type: int, low: 1, high: 3, when: {scheduler: step}}
  weight_decay: {type: uniform, low: 0.0, high: 0.001}
"""
# Part 1's space and more (16 parameters): log-scaled (loguniform, logint), int, float, categorical strings and
# booleans, conditional ones (of a choice and of a boolean) and one parameter with a single value, `model`: what
# a student's sweep asks of the parallel coordinates and slices. The truth is PARAMS's (lr, weight decay).
WIDE_PARAMS = """
  model: {type: choice, values: [simple_cnn]}
  lr: {type: loguniform, low: 1.0e-4, high: 0.1}
  batch_size: {type: logint, low: 32, high: 256}
  weight_decay: {type: uniform, low: 0.0, high: 0.001}
  label_smoothing: {type: uniform, low: 0.0, high: 0.2}
  mixup_alpha: {type: uniform, low: 0.0, high: 1.0}
  scheduler: {type: choice, values: [cosine, step, onecycle]}
  step_size: {type: int, low: 5, high: 20, when: {scheduler: step}}
  gamma: {type: uniform, low: 0.1, high: 0.5, when: {scheduler: step}}
  pct_start: {type: uniform, low: 0.1, high: 0.4, when: {scheduler: onecycle}}
  warmup_epochs: {type: int, low: 0, high: 1, when: {scheduler: cosine}}
  auto_augment: {type: choice, values: [none, autoaugment, randaugment, trivialaugment]}
  augmix: {type: choice, values: [false, true]}
  augmix_severity: {type: int, low: 1, high: 5, when: {augmix: true}}
  augmix_jsd: {type: choice, values: [true, false], when: {augmix: true}}
  corruption_aug: {type: uniform, low: 0.0, high: 0.5}
"""
HISTORY = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s", "images_per_s",
           "peak_rss_mb"]
CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate"]

# name -> how the folder is made; the tests loop over these.
FOLDERS = {
    "smoke4": dict(n=4, epochs=2),  # the smoke sweep's size: too few trials for importance
    "asha24_ood": dict(n=24, epochs=4, ood=True, errored=1, final=True),
    "loss_best_epoch": dict(n=12, epochs=4, metric="val_loss", mode="min", select="best_epoch", wobble=True),
    "all_errored": dict(n=3, epochs=2, errored=3),  # nothing to rank, plot or measure: the report says so
    "two_objectives": dict(n=10, epochs=2, ood=True, objectives=(("ood_val_acc", "max"), ("val_acc", "max"))),
    "wide16": dict(n=16, epochs=4, metric="ood_val_acc", ood=True, wide=True),  # part 1's parameters and more
    # `pick:` the second objective: clean accuracy and corrupted accuracy disagree on the best trial (weight decay
    # trades one for the other), so a report ranking by the first would name another trial than best.json.
    "pick_second": dict(n=10, epochs=2, ood=True, objectives=(("val_acc", "max"), ("ood_val_acc", "max")),
                        pick="ood_val_acc"),
}


# Folders a real sweep wrote (orchestrator.py, copied without Ray's state and the weights): the report must
# read what the sweep really writes, including folders written by earlier versions.
RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "report")
REAL = sorted(os.listdir(RECORDED)) if os.path.isdir(RECORDED) else []
ALL = sorted(FOLDERS) + REAL


def make(name: str, parent) -> str:
    """The results folder `name` (a FOLDERS recipe or a REAL recording) under `parent`, ready to report on."""
    import shutil

    dest = os.path.join(str(parent), name)
    if name in FOLDERS:
        return build(dest, name=name, **FOLDERS[name])
    shutil.copytree(os.path.join(RECORDED, name), dest)
    return dest


def _truth(lr: float, wd: float, epoch: int, epochs: int, wobble: bool, rng) -> tuple[float, float]:
    """(val_acc, ood_val_acc) of a trial at `epoch`."""
    q = max(0.0, 1 - abs(math.log10(lr) + 2) / 2)  # 1 at lr = 1e-2, 0 at 1e-4
    acc = (0.05 + 0.4 * q - 20 * wd) * math.sqrt(epoch / epochs) + 0.003 * rng.standard_normal()
    if wobble and epoch == epochs:  # the last epoch dips: best epoch != last epoch
        acc -= 0.02
    return max(acc, 0.0), max(acc * (0.3 + 400 * wd), 0.0)


def build(folder, name="synth", n=8, epochs=4, metric="val_acc", mode="max", select="last_epoch", ood=False,
          errored=0, final=False, wobble=False, seed=0, objectives=(), wide=False, pick=None) -> str:
    from sweep.space import load_space

    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    yaml = os.path.join(folder, "space.yaml")
    head = "".join(f"\n  - {{metric: {m}, mode: {d}}}" for m, d in objectives)
    head = f"objectives:{head}" if objectives else f"metric: {metric}\nmode: {mode}"
    if pick:
        head += f"\npick: {pick}"
    if ood:  # the section that makes the sweep score trials on corrupted validation images
        head += "\nood_val: {corruptions: [gaussian_noise, contrast], severities: [2], images: 20, test_images: 10}"
    with open(yaml, "w") as f:
        f.write(SPACE.format(name=name, objectives=head, select=select, epochs=epochs, n=n,
                             model="" if wide else "model: simple_cnn, ", params=WIDE_PARAMS if wide else PARAMS))
    spec = load_space(yaml)
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        if wide:
            cfg = _sample(spec, rng)
        else:
            cfg = {"lr": float(10 ** rng.uniform(-4, -1)), "batch_size": int(rng.choice([32, 64])),
                   "scheduler": str(rng.choice(["cosine", "step"])), "weight_decay": float(rng.uniform(0, 0.001))}
            if cfg["scheduler"] == "step":
                cfg["step_size"] = int(rng.integers(1, 4))
        hist = []
        for e in range(1, epochs + 1):
            acc, ood_acc = _truth(cfg["lr"], cfg["weight_decay"], e, epochs, wobble, rng)
            row = {"epoch": e, "train_loss": 4.6 - 3 * acc, "train_acc": acc + 0.05, "val_loss": 4.6 - 2.5 * acc,
                   "val_acc": acc, "lr": cfg["lr"], "epoch_time_s": 2.0, "images_per_s": 500.0, "peak_rss_mb": 900.0}
            if ood:
                row.update(ood_val_acc=ood_acc, ood_val_loss=4.6 - 2.5 * ood_acc)
            hist.append(row)
        trials.append({"trial_id": f"t{i:03d}{name[:3]}", "config": cfg, "history": hist, "status": "completed",
                       "error": ""})
    for t in trials[n - errored:]:
        t.update(status="errored", history=t["history"][:1],
                 error="DivergedError: loss became nan at epoch 2, step 3: training stopped (diverged)")
    _asha(trials, spec)
    _write(folder, spec, trials, ood)
    if final:
        _final(folder, rng)
    os.unlink(yaml)
    return folder


def _sample(spec, rng) -> dict:
    """One trial's values drawn from the spec (parents first), a conditional parameter only where it is active."""
    cfg: dict = {}
    for p in spec.params:
        if not p.active(cfg):
            continue
        if p.type == "choice":
            cfg[p.name] = p.values[int(rng.integers(len(p.values)))]
        elif p.log:
            v = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
            cfg[p.name] = int(round(v)) if p.type == "logint" else float(v)
        else:
            cfg[p.name] = int(rng.integers(p.low, p.high + 1)) if p.type == "int" else float(rng.uniform(p.low, p.high))
    return cfg


def _asha(trials: list[dict], spec) -> None:
    sign = 1 if spec.mode == "max" else -1
    asha = spec.trial_scheduler.settings
    rung = asha.grace_period
    while rung < spec.epochs:
        alive = [t for t in trials if t["status"] == "completed" and len(t["history"]) >= rung]
        values = [sign * t["history"][rung - 1][spec.metric] for t in alive]
        cut = float(np.median(values)) if values else 0.0
        for t, v in zip(alive, values):
            if v < cut:
                t.update(status="stopped_early", history=t["history"][:rung])
        rung *= asha.reduction_factor


def _write(folder: str, spec, trials: list[dict], ood: bool) -> None:
    """The files as the sweep writes them (sweep/results.py), ranked and picked by its one rule (sweep/ranking.py)."""
    from sweep.ranking import Rule

    rule, rows = Rule.of(spec), []
    for t in Rule.of(spec).order(trials, lambda t: t["status"], lambda t: rule.value(t["history"])):
        row = {"trial_id": t["trial_id"], "status": t["status"], "epochs": len(t["history"]),
               **{p: t["config"].get(p, "") for p in spec.param_names}}
        for o in spec.objectives:
            values = [h[o.metric] for h in t["history"]]
            row.update({f"final_{o.metric}": "" if t["status"] == "errored" else values[-1],
                        f"best_{o.metric}": (max if o.mode == "max" else min)(values)})
        rows.append({**row, "time_s": 2.0 * len(t["history"]), "error": t["error"]})
    _csv(os.path.join(folder, "trials.csv"), rows)
    names = HISTORY + (["ood_val_acc", "ood_val_loss"] if ood else [])
    _csv(os.path.join(folder, "history.csv"),
         [{"trial_id": t["trial_id"], **{k: h.get(k, "") for k in names}} for t in trials for h in t["history"]])
    manifest = {"spec": spec.to_dict(), "param_names": list(spec.param_names),
                "command": f"python orchestrator.py --space {spec.name}.yaml", "commit": "0" * 40,
                "data": {"path": "/data/cifar100.npz", "fingerprint": "f" * 64}, "created": "2026-01-01 00:00:00"}
    _json(os.path.join(folder, "sweep.json"), manifest)
    best = rule.best(rows, lambda r: r["status"], lambda r: r[rule.column] if r[rule.column] != "" else None)
    if best is None:  # as the sweep does: no best.json when no trial finished with a value
        return
    cfg = next(t["config"] for t in trials if t["trial_id"] == best["trial_id"])
    _json(os.path.join(folder, "best.json"), {
        "trial_id": best["trial_id"], "status": best["status"], "metric": rule.metric, "mode": rule.mode,
        "value": best[rule.column], "config": {"model": "simple_cnn", **cfg},
        "retrain_command": f"python -m trainables --config {folder}/best.json"})


def _final(folder: str, rng) -> None:
    acc = [[float(a) for a in sorted(rng.uniform(0.05, 0.3, 5), reverse=True)] for _ in CORRUPTIONS]
    result = {"n": 10, "accuracy": dict(zip(CORRUPTIONS, acc)),
              "corruption_mean": {c: float(np.mean(a)) for c, a in zip(CORRUPTIONS, acc)},
              "severity_mean": [float(x) for x in np.mean(acc, axis=0)], "ood_acc": float(np.mean(acc)),
              "clean_acc": 0.35}
    result.update(ood_to_clean=result["ood_acc"] / 0.35, tuned_on=["gaussian_noise"],
                  tuned_acc=result["corruption_mean"]["gaussian_noise"],
                  held_out_acc=float(np.mean([result["corruption_mean"][c] for c in CORRUPTIONS[1:]])))
    _json(os.path.join(folder, "robustness", "generated", "robustness.json"), result)
    _json(os.path.join(folder, "final", "metrics.json"), {
        "test_acc": 0.35, "seeds": [0], "per_seed": [{"seed": 0, "test_acc": 0.35}],
        "ood_acc": {"generated": result["ood_acc"]}, "submission_note": "submission_ood.csv written"})


def _csv(path: str, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
