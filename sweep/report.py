"""report.md: leaderboard, learning curves with ASHA stops, metric against each hyperparameter.

Built only from the result files (trials.csv, history.csv, best.json, final/metrics.json), so it can be
rebuilt at any time: `python -m sweep.report results/<name>`.
"""
from __future__ import annotations

import json
import math
import os
import sys

from trainables import atomic

from .results import read_csv


def _num(v):
    try:
        f = float(v)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return None


def plot_curves(history: list[dict], trials: list[dict], metric: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    status = {t["trial_id"]: t["status"] for t in trials}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_trial: dict[str, list[tuple[float, float]]] = {}
    for h in history:
        e, m = _num(h.get("epoch")), _num(h.get(metric))
        if e is not None and m is not None:
            by_trial.setdefault(h["trial_id"], []).append((e, m))
    for tid, pts in by_trial.items():
        pts.sort()
        xs, ys = zip(*pts)
        st = status.get(tid, "")
        ax.plot(xs, ys, alpha=0.8, lw=1.2, color="tab:blue" if st == "completed" else "tab:gray")
        if st == "stopped_early":
            ax.plot(xs[-1], ys[-1], "x", color="tab:red", ms=7)
        elif st == "errored":
            ax.plot(xs[-1], ys[-1], "o", mfc="none", color="black", ms=7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial (blue: completed, x: stopped by ASHA, o: errored)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_params(trials: list[dict], params: list[str], metric: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = f"final_{metric}"
    n = max(1, len(params))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, p in zip(axes.flat, params):
        pts = [(t[p], _num(t[col]), t["status"]) for t in trials if t.get(p, "") != "" and _num(t[col]) is not None]
        nums = [_num(x) for x, _, _ in pts]
        categorical = any(v is None for v in nums)
        labels = sorted({str(x) for x, _, _ in pts}) if categorical else []
        for (x, y, st), xv in zip(pts, nums):
            xpos = labels.index(str(x)) if categorical else xv
            ax.scatter(xpos, y, s=22, c="tab:blue" if st == "completed" else "tab:gray")
        if categorical:
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        elif nums and min(nums) > 0 and max(nums) / min(nums) > 50:
            ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel(col, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            f = _num(v)
            cells.append(f"{f:.4g}" if f is not None and not str(v).isdigit() else str(v).replace("|", "/"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_report(folder: str) -> str:
    with open(os.path.join(folder, "sweep.json")) as f:
        manifest = json.load(f)
    spec = manifest["spec"]
    metric, params = spec["metric"], manifest["param_names"]
    trials = read_csv(os.path.join(folder, "trials.csv"))
    history = read_csv(os.path.join(folder, "history.csv"))
    os.makedirs(os.path.join(folder, "plots"), exist_ok=True)
    plot_curves(history, trials, metric, os.path.join(folder, "plots", "curves.png"))
    plot_params(trials, params, metric, os.path.join(folder, "plots", "params.png"))
    counts = {s: sum(t["status"] == s for t in trials) for s in ("completed", "stopped_early", "errored")}
    lines = [
        f"# Sweep `{spec['name']}`",
        "",
        f"Command: `{manifest['command']}`  ",
        f"Code commit: `{manifest['commit']}`; data: `{manifest['data']['path']}` "
        f"(sha256 `{manifest['data']['fingerprint'][:16]}…`)  ",
        f"Metric: `{metric}` ({spec['mode']}); trials: {len(trials)} "
        f"({counts['completed']} completed, {counts['stopped_early']} stopped early by ASHA, "
        f"{counts['errored']} errored)",
        "",
        "## Leaderboard",
        "",
        _table(trials, ["trial_id", "status", "epochs", *params, f"final_{metric}", f"best_{metric}", "time_s"]),
        "",
        "## Learning curves",
        "",
        "![curves](plots/curves.png)",
        "",
        f"## {metric} against each hyperparameter",
        "",
        "![params](plots/params.png)",
        "",
    ]
    errored = [t for t in trials if t["status"] == "errored"]
    if errored:
        lines += ["## Failed trials", "", *[f"- `{t['trial_id']}`: {t['error']}" for t in errored], ""]
    lines += _final_section(folder)
    text = "\n".join(lines) + "\n"
    atomic.write_text(os.path.join(folder, "report.md"), text)
    return text


def _final_section(folder: str) -> list[str]:
    best_path = os.path.join(folder, "best.json")
    final_path = os.path.join(folder, "final", "metrics.json")
    lines = ["## Best configuration and final model", ""]
    if os.path.exists(best_path):
        with open(best_path) as f:
            best = json.load(f)
        lines += [f"Best trial `{best['trial_id']}`; retrain it alone with "
                  f"`{best['retrain_command']}`", "", "```json", json.dumps(best["config"], indent=1), "```", ""]
    if os.path.exists(final_path):
        with open(final_path) as f:
            final = json.load(f)
        lines += [f"- clean test accuracy: {final['test_acc']:.4f} (seeds {final['seeds']})"]
        lines += [f"- {final['submission_note']}", ""]
        lines += _robustness_lines(folder)
    else:
        lines += ["No final model yet (retrain skipped or not finished).", ""]
    return lines


def _robustness_lines(folder: str) -> list[str]:
    lines = []
    for kind, title in (("generated", "Generated CIFAR-100-C-style copy of the test set"),
                        ("dl4ds", "The DL4DS OOD files (labels from the official test order)")):
        path = os.path.join(folder, "robustness", kind, "robustness.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        lines += [f"### Robustness: {title}", "",
                  f"OOD accuracy {r['ood_acc']:.4f} vs clean {r['clean_acc']:.4f} "
                  f"(ratio {r['ood_to_clean']:.3f}; {r['n']} images per severity)." if r.get("clean_acc") else
                  f"OOD accuracy {r['ood_acc']:.4f} ({r['n']} images per severity)."]
        if r.get("tuned_on"):
            lines += [f"Tuned on {', '.join(r['tuned_on'])}: {r['tuned_acc']:.4f}; held-out corruptions: "
                      f"{r['held_out_acc']:.4f}."]
        lines += ["", f"![heatmap](robustness/{kind}/heatmap.png)", "",
                  f"Table: [robustness/{kind}/report.md](robustness/{kind}/report.md)", ""]
    return lines


if __name__ == "__main__":
    print(write_report(sys.argv[1]))
