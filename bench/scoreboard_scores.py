"""The scoreboard's numbers, read from a finished arm x seed folder with the project's own code: clean test accuracy
(final/metrics.json), the corrupted test set scored through the submission (submission_ood.csv read back by
robustness.submission and scored against the folder's labels.npy), the epochs actually trained (history.csv + the
retrain's saved models), their P100-hour equivalent; then the table (mean ± std over seeds), a headline drawn
from the table alone, and the plot."""
from __future__ import annotations

import csv
import glob
import json
import os
import statistics
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from robustness.measure import accuracy_table, load_labels  # noqa: E402
from robustness.ood import DL4DS_ORDER  # noqa: E402
from robustness.submission import read_submission  # noqa: E402

# bench/sweep_budget.py's assumed P100 (its flag defaults): 9.3 TFLOPS fp32 peak x 35% (dense convolutions) or
# 15% (depthwise-heavy nets); backward = 2x forward. An estimate, like the budget table it comes from.
P100 = {"peak_tflops": 9.3, "util_dense": 0.35, "util_depthwise": 0.15}
COST_KEYS = ("model", "stem", "input_size", "augmix", "augmix_jsd")  # sweep_budget.COST_KEYS: what changes FLOPs


def _rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _truthy(v) -> bool:
    return v is True or str(v).lower() in ("true", "1")


def retrain_epochs(folder: str) -> list[dict]:
    """Per final model (final/model_*.pt: model_seed<N>.pt, or model_<trial>_seed<N>.pt in an ensemble of trials):
    its seed and the epochs the retrain trained, 0 when it took a trial's own weights (those epochs are in
    history.csv already): marked so in the file, or its history is the trial's own, epoch for epoch."""
    import torch

    with open(os.path.join(folder, "best.json")) as f:
        best_trial = json.load(f)["trial_id"]
    times: dict[str, list[float]] = {}
    for r in _rows(os.path.join(folder, "history.csv")):
        times.setdefault(r["trial_id"], []).append(round(float(r.get("epoch_time_s") or 0), 3))
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "final", "model_*.pt"))):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        trial = saved.get("trial_id") or saved.get("from_trial") or best_trial
        own = [round(float(h.get("epoch_time_s") or 0), 3) for h in saved.get("history", [])]
        reused = bool(saved.get("from_trial")) or saved.get("from") == "trial" or \
            (bool(own) and own == times.get(trial))
        out.append({"seed": saved.get("seed"), "path": os.path.relpath(path, folder), "trial": trial,
                    "epochs": 0 if reused else len(saved.get("history", [])), "reused_trial": trial if reused else "",
                    "config": saved["config"]})
    return out


def trial_epochs(folder: str) -> dict[str, int]:
    """Epochs each trial trained, from history.csv (one row per trial and epoch)."""
    per: dict[str, int] = {}
    for r in _rows(os.path.join(folder, "history.csv")):
        per[r["trial_id"]] = per.get(r["trial_id"], 0) + 1
    return per


def curve(folder: str) -> list[float]:
    """Best clean val_acc so far after each trial-epoch, epochs in the order they ended (every arm records val_acc
    on the same 5,000 validation images)."""
    rows = _rows(os.path.join(folder, "history.csv"))
    rows.sort(key=lambda r: (float(r.get("ended_at") or 0), int(float(r.get("epoch") or 0))))
    out, best = [], 0.0
    for r in rows:
        if r.get("val_acc") not in (None, ""):
            best = max(best, float(r["val_acc"]))
        out.append(best)
    return out


def _forward_gflop(values: dict) -> tuple[float, bool]:
    from sweep_budget import forward_gflop  # torch's FLOP counter on the real model
    from trainables.config import TrainConfig

    cfg = TrainConfig.from_dict({k: v for k, v in values.items() if k in ("model", "stem", "input_size")},
                                pretrained=False, weights_path="")
    return forward_gflop(cfg)


def p100_hours(folder: str, data_images: int, retrained: list[dict], tta_views: int, ood_images: int) -> dict:
    """GPU-hour equivalent on the P100 bench/sweep_budget.py assumes: training epochs (forward + backward of every
    training image, plus the validation and corrupted-validation images a trial scores each epoch) and, apart, the
    final prediction (clean test + the corrupted test set, x TTA views x ensemble members)."""
    with open(os.path.join(folder, "sweep.json")) as f:
        spec = json.load(f)["spec"]
    fixed = spec["fixed"]
    kept = min(fixed.get("subset") or data_images, data_images)
    n_val = int(round(fixed.get("val_fraction", 0.1) * kept))
    ood = spec.get("ood_val", {})
    n_ood_val = (min(ood.get("images") or n_val, n_val) * len(ood.get("corruptions", []))
                 * len(ood.get("severities", [])))
    trials = {r["trial_id"]: r for r in _rows(os.path.join(folder, "trials.csv"))}

    def flops_s(depthwise: bool) -> float:
        return P100["peak_tflops"] * 1e12 * (P100["util_depthwise"] if depthwise else P100["util_dense"])

    train_s = 0.0
    for tid, epochs in trial_epochs(folder).items():
        values = {**fixed, **{k: v for k, v in trials.get(tid, {}).items() if k in COST_KEYS and v != ""}}
        fwd, depthwise = _forward_gflop(values)
        views = 3 if _truthy(values.get("augmix")) and _truthy(values.get("augmix_jsd", True)) else 1
        per_epoch = ((kept - n_val) * 3 * fwd * views + (n_val + n_ood_val) * fwd) * 1e9 / flops_s(depthwise)
        train_s += epochs * per_epoch
    predict_s = 0.0
    for model in retrained:
        cfg = model["config"]
        fwd, depthwise = _forward_gflop(cfg)
        views = 3 if cfg.get("augmix") and cfg.get("augmix_jsd") else 1
        n = min(cfg.get("subset") or data_images, data_images)
        train_s += model["epochs"] * n * 3 * fwd * views * 1e9 / flops_s(depthwise)
        predict_s += (10_000 + ood_images) * tta_views * fwd * 1e9 / flops_s(depthwise)
    return {"train": train_s / 3600, "predict": predict_s / 3600}


def score(folder: str, ood_dir: str, tuned: tuple, data_images: int) -> dict:
    """Every number of one finished arm x seed."""
    from trainables.tta_views import tta_cost

    with open(os.path.join(folder, "final", "metrics.json")) as f:
        final = json.load(f)
    preds = read_submission(os.path.join(folder, "submission_ood.csv"))
    labels = load_labels(ood_dir, None, preds.shape[1] // 5)
    table = accuracy_table(preds, labels, DL4DS_ORDER, final["test_acc"])
    means = table["corruption_mean"]
    held_out = [c for c in DL4DS_ORDER if c not in tuned]
    labelled = os.path.join(folder, "robustness", "labelled", "robustness.json")
    by_orchestrator = json.load(open(labelled))["ood_acc"] if os.path.exists(labelled) else None
    retrained = retrain_epochs(folder)
    trials = trial_epochs(folder)
    views = tta_cost(final.get("tta", "none"))
    hours = p100_hours(folder, data_images, retrained, views, preds.size)
    return {
        "clean_test_acc": final["test_acc"],
        "ood_acc": table["ood_acc"],  # the Kaggle score: every corrupted test image, all 19 x 5
        "tuned_acc": float(np.mean([means[c] for c in tuned])) if tuned else None,
        "held_out_acc": float(np.mean([means[c] for c in held_out])),
        "severity_mean": table["severity_mean"],
        "corruption_mean": means,
        "ood_images": int(preds.size),
        # the orchestrator's own score of the same predictions (robustness/labelled/): must be the same number
        "ood_acc_orchestrator": by_orchestrator,
        "epochs": {"sweep": sum(trials.values()), "retrain": sum(m["epochs"] for m in retrained),
                   "total": sum(trials.values()) + sum(m["epochs"] for m in retrained)},
        "trials": len(trials),
        "retrained": [{k: v for k, v in m.items() if k != "config"} for m in retrained],
        "tta": final.get("tta", "none"), "ensemble": len(retrained),
        "gpu_h_p100": hours,
        "curve": curve(folder),
    }


# ---------------------------------------------------------------- the table

MEASURES = (("clean_test_acc", "clean test %"), ("ood_acc", "corrupted test % (all 19 x 5)"),
            ("tuned_acc", "tuned-on families %"), ("held_out_acc", "held-out families %"))


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean, std = _stats(values)
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if len(values) > 1 else "")


def _num(values: list, fmt: str = "{:.0f}") -> str:
    mean, std = _stats(values)
    return fmt.format(mean) + (" ± " + fmt.format(std) if len(values) > 1 and std > 0 else "")


def summary(runs: dict, labels: dict) -> dict:
    """part -> arm -> {measure: (mean, std, n)} over the finished seeds."""
    out: dict = {}
    for rec in runs.values():
        if rec.get("status") != "finished":
            continue
        out.setdefault(str(rec["part"]), {}).setdefault(rec["arm"], []).append(rec)
    table: dict = {}
    for part, arms in out.items():
        for arm, recs in arms.items():
            row = {"label": labels.get(arm, arm), "seeds": sorted(r["seed"] for r in recs)}
            for key, _ in MEASURES:
                vals = [r["scores"][key] for r in recs if r["scores"].get(key) is not None]
                row[key] = list(_stats(vals)) if vals else None
            row["epochs"] = list(_stats([r["scores"]["epochs"]["total"] for r in recs]))
            row["gpu_h_p100"] = list(_stats([r["scores"]["gpu_h_p100"]["train"] for r in recs]))
            row["wall_s"] = list(_stats([r["wall_s"] for r in recs]))
            table.setdefault(part, {})[arm] = row
    return table


def markdown(runs: dict, arms: list[str], labels: dict, whats: dict, planned: dict) -> str:
    """The table (mean ± sample std over seeds), per part; then the headline."""
    lines = []
    parts = sorted({str(r["part"]) for r in runs.values()})
    for part in parts:
        if len(parts) > 1:
            lines += [f"### Part {part}", ""]
        lines += ["| arm | seeds | epochs spent (planned) | P100 GPU-h equiv. (training) | wall here | "
                  + " | ".join(h for _, h in MEASURES) + " |",
                  "|---|---|---|---|---|" + "---|" * len(MEASURES)]
        for arm in arms:
            recs = [r for r in runs.values() if str(r["part"]) == part and r["arm"] == arm]
            done = [r for r in recs if r.get("status") == "finished"]
            if not done:
                why = next((r.get("status") for r in recs), "not run")
                lines.append(f"| {labels[arm]} | – ({why}) | – ({planned.get((part, arm), 0):.0f}) | – | – | "
                             + " | ".join("–" for _ in MEASURES) + " |")
                continue
            s = [r["scores"] for r in done]
            lines.append(
                f"| {labels[arm]} | {', '.join(str(r['seed']) for r in done)} | "
                f"{_num([x['epochs']['total'] for x in s])} ({planned.get((part, arm), 0):.0f}) | "
                f"{_num([x['gpu_h_p100']['train'] for x in s], '{:.2g}')} | "
                f"{_num([r['wall_s'] / 60 for r in done], '{:.1f}')} min | "
                + " | ".join(_pct([x.get(k) for x in s]) for k, _ in MEASURES) + " |")
        lines.append("")
        lines += [f"- **{labels[a]}**: {whats[a]}" for a in arms]
        lines += ["", headline(runs, part, labels), ""]
    return "\n".join(lines)


def headline(runs: dict, part: str, labels: dict, key: str = "ood_acc") -> str:
    """What the tool buys at equal compute, from the table alone: each arm's corrupted-test score against alone and
    alone tuned by hand, called a difference only when it exceeds the larger seed standard deviation of the two."""
    by_arm: dict = {}
    for r in runs.values():
        if str(r["part"]) == part and r.get("status") == "finished":
            by_arm.setdefault(r["arm"], []).append(r["scores"][key])
    if "alone" not in by_arm:
        return "Headline: not yet (the alone arm has not finished)."
    out = []
    for ref in ("alone", "alone_tuned"):
        if ref not in by_arm:
            continue
        m0, s0 = _stats(by_arm[ref])
        for arm in ("for_loop", "tool_default", "tool_best"):
            if arm not in by_arm:
                continue
            m1, s1 = _stats(by_arm[arm])
            d, spread = 100 * (m1 - m0), 100 * max(s0, s1)
            verdict = ("one seed: no spread to judge a difference by" if min(len(by_arm[ref]), len(by_arm[arm])) < 2
                       else "within the seeds' spread: no difference claimed" if abs(d) <= spread
                       else "better" if d > 0 else "worse")
            out.append(f"{labels[arm]} vs {labels[ref]}: {d:+.1f} points ({100 * m1:.1f} vs {100 * m0:.1f}; "
                       f"largest seed std {spread:.1f}): {verdict}")
    return "Headline (corrupted test accuracy, equal epochs): " + "; ".join(out) + "." if out else ""


def plot(runs: dict, arms: list[str], labels: dict, path: str) -> None:
    """Left: best clean validation accuracy so far against epochs spent (sweep epochs in the order they ended; the
    retrain's epochs, which have no validation split, follow as a flat line). Right: the score (corrupted test
    accuracy) against total epochs spent, mean ± std over seeds, one point per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({str(r["part"]) for r in runs.values() if r.get("status") == "finished"})
    if not parts:
        return
    fig, axes = plt.subplots(len(parts), 2, figsize=(12, 4.2 * len(parts)), squeeze=False)
    for (left, right), part in zip(axes, parts):
        for i, arm in enumerate(arms):
            done = [r for r in runs.values() if str(r["part"]) == part and r["arm"] == arm
                    and r.get("status") == "finished"]
            if not done:
                continue
            colour = f"C{i}"
            total = max(r["scores"]["epochs"]["total"] for r in done)
            curves = [r["scores"]["curve"] + [r["scores"]["curve"][-1]] * (total - len(r["scores"]["curve"]))
                      for r in done if r["scores"]["curve"]]
            if curves:
                n = min(len(c) for c in curves)
                mean = np.mean([c[:n] for c in curves], axis=0)
                left.plot(np.arange(1, n + 1), 100 * mean, color=colour, label=labels[arm])
            ep = [r["scores"]["epochs"]["total"] for r in done]
            ood = [100 * r["scores"]["ood_acc"] for r in done]
            right.errorbar(np.mean(ep), np.mean(ood), xerr=np.std(ep, ddof=1) if len(ep) > 1 else 0,
                           yerr=np.std(ood, ddof=1) if len(ood) > 1 else 0, fmt="o", color=colour, capsize=4,
                           label=labels[arm])
        title = f"part {part}: " if len(parts) > 1 else ""
        left.set(xlabel="epochs spent", ylabel="best validation accuracy so far, %",
                 title=f"{title}search and training (clean validation)")
        right.set(xlabel="epochs spent (sweep + retrain)", ylabel="corrupted test accuracy, %",
                  title=f"{title}the score: all 19 corruptions x 5 severities")
        for ax in (left, right):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
