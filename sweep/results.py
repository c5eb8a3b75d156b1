"""The sweep's own result files (trials.csv, history.csv, best.json): plain data, written atomically.

Ray keeps its experiment state elsewhere; these files are what people and the report read.
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from trainables import atomic

STATUSES = ("completed", "stopped_early", "errored")


def trial_rows(run, spec) -> list[dict[str, Any]]:
    """One row per trial: id, status, epochs, every hyperparameter, final and best metric, time, error."""
    rows = []
    for t in run.trials:
        hist = run.histories.get(t["trial_id"], [])
        values = [h.get(spec.metric) for h in hist if _finite(h.get(spec.metric))]
        best = (max if spec.mode == "max" else min)(values) if values else None
        final = t["metrics"].get(spec.metric) if t["status"] != "errored" else None
        row = {"trial_id": t["trial_id"], "status": t["status"], "epochs": t["epochs"]}
        row.update({p: t["config"].get(p, "") for p in spec.param_names})
        row.update({
            f"final_{spec.metric}": final if _finite(final) else "",
            f"best_{spec.metric}": best if best is not None else "",
            "time_s": round(float(t["metrics"].get("time_total_s", 0.0) or 0.0), 2),
            "error": t["error"],
        })
        rows.append(row)
    key = f"final_{spec.metric}"
    sign = -1 if spec.mode == "max" else 1
    rows.sort(key=lambda r: (r["status"] == "errored", r[key] == "", sign * (r[key] or 0)))
    return rows


def best_trial(run, spec) -> dict | None:
    """The winner by the metric at its last epoch. ASHA ranks on that too; a trial stopped at an early rung
    cannot be compared fairly with one that trained fully, so completed trials win ties of status."""
    ok = [t for t in run.trials if t["status"] != "errored" and _finite(t["metrics"].get(spec.metric))]
    if not ok:
        return None
    full = [t for t in ok if t["status"] == "completed"] or ok
    pick = max if spec.mode == "max" else min
    return pick(full, key=lambda t: t["metrics"][spec.metric])


def write_trials_csv(path: str, rows: list[dict]) -> None:
    atomic.write_text(path, _csv(rows))


def write_history_csv(path: str, run, metric_names: list[str]) -> None:
    """Long format: one row per (trial, epoch) with every reported metric: the learning curves."""
    rows = []
    for tid, hist in run.histories.items():
        for h in hist:
            rows.append({"trial_id": tid, **{m: h.get(m, "") for m in metric_names}})
    atomic.write_text(path, _csv(rows))


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    w = csv.DictWriter(buf, fieldnames=fields or ["trial_id"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _finite(v: Any) -> bool:
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
