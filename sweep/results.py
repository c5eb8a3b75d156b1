"""The sweep's own result files (trials.csv, history.csv, best.json): plain data, written atomically.

Ray keeps its experiment state elsewhere; these files are what people and the report read.
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from typing import Any

from trainables import atomic

from .outcome import Status, SweepRun, TrialOutcome

# Per-epoch columns of history.csv, in this order; any other `*_acc`/`*_loss` a trial reported follows.
HISTORY = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s", "images_per_s",
           "peak_rss_mb", "ended_at"]


def select_rule(spec) -> str:
    return getattr(spec, "select", "last_epoch") or "last_epoch"


def pick(spec) -> tuple[str, str]:
    """(metric, mode) the best trial is picked by: the YAML's `pick` among several objectives, else the metric."""
    o = getattr(spec, "pick_objective", None)
    return (o.metric, o.mode) if o is not None else (spec.metric, spec.mode)


def rule_text(spec) -> str:
    metric, mode = pick(spec)
    which = "its best epoch" if select_rule(spec) == "best_epoch" else "its last epoch"
    return (f"ranked by {metric} ({'higher' if mode == 'max' else 'lower'} is better) at {which}; "
            f"trials that trained every epoch first")


def _values(t: TrialOutcome, metric: str) -> list[float]:
    return [float(h[metric]) for h in t.history if _finite(h.get(metric))]


def best_value(t: TrialOutcome, spec, metric: str | None = None, mode: str | None = None) -> float | None:
    values = _values(t, metric or spec.metric)
    return (max if (mode or spec.mode) == "max" else min)(values) if values else None


def rank_value(t: TrialOutcome, spec) -> float | None:
    """The value a trial is ranked by: its last epoch's metric, or its best epoch's (YAML `select`)."""
    metric, mode = pick(spec)
    if select_rule(spec) == "best_epoch":
        return best_value(t, spec, metric, mode)
    last = t.metrics.get(metric)
    return float(last) if _finite(last) else None


def trial_rows(run: SweepRun, spec) -> list[dict[str, Any]]:
    """One row per trial: id, status, epochs, every hyperparameter, final and best metric, time, error."""
    rows = []
    ranked = {spec.metric, *(o.metric for o in getattr(spec, "objectives", ()))}
    # Clean and corrupted validation accuracy side by side, whichever of them ranks the trials.
    beside = [m for m in ("val_acc", "ood_val_acc") if m not in ranked and any(m in t.metrics for t in run.trials)]
    for t in run.trials:
        best = best_value(t, spec)
        final = t.metrics.get(spec.metric) if t.status is not Status.ERRORED else None
        row = {"trial_id": t.trial_id, "status": str(t.status), "epochs": t.epochs}
        row.update({p: t.config.get(p, "") for p in spec.param_names})
        row.update({
            f"final_{spec.metric}": final if _finite(final) else "",
            f"best_{spec.metric}": best if best is not None else "",
            **{f"final_{o.metric}": t.metrics.get(o.metric, "") for o in getattr(spec, "objectives", ())[1:]},
            **{f"final_{m}": t.metrics.get(m, "") for m in beside},
            "time_s": round(t.wall_s, 2),
            "error": t.error,
        })
        rows.append(row)
    key = f"final_{spec.metric}"
    sign = -1 if spec.mode == "max" else 1
    rows.sort(key=lambda r: (r["status"] == "errored", r[key] == "", sign * (r[key] or 0)))
    return rows


def best_trial(run: SweepRun, spec) -> TrialOutcome | None:
    """The winner by `rank_value`. A trial stopped at an early rung cannot be compared fairly with one that
    trained fully (ASHA compares at rungs), so completed trials win over stopped ones."""
    ok = [t for t in run.trials if t.status in (Status.COMPLETED, Status.STOPPED_EARLY)
          and rank_value(t, spec) is not None]
    if not ok:
        return None
    full = [t for t in ok if t.status is Status.COMPLETED] or ok
    best = max if pick(spec)[1] == "max" else min
    return best(full, key=lambda t: rank_value(t, spec))


def no_model_line(run: SweepRun, spec, folder: str) -> str:
    """Why no trial can be retrained, in one line: the commonest error, how many trials hit it, where the rest is."""
    where = os.path.join(folder, "trials.csv")
    errored = [t for t in run.trials if t.status is Status.ERRORED]
    if errored:
        common, count = Counter(t.error for t in errored).most_common(1)[0]
        return (f"no trial produced a model: {len(errored)} of {len(run.trials)} trials errored, {count} of them "
                f"with: {common}. Every trial's status and error: {where}")
    return (f"no trial produced a model: none of the {len(run.trials)} trials ended with a finite {pick(spec)[0]} "
            f"(diverged to NaN, or no value reported). Every trial's status: {where}")


def write_trials_csv(path: str, rows: list[dict]) -> None:
    atomic.write_text(path, _csv(rows))


def write_history_csv(path: str, run: SweepRun) -> None:
    """Long format: one row per (trial, epoch) with every reported metric: the learning curves."""
    extra = sorted({k for t in run.trials for h in t.history for k in h
                    if k.endswith(("_acc", "_loss")) and k not in HISTORY})
    rows = [{"trial_id": t.trial_id, **{m: h.get(m, "") for m in HISTORY + extra}}
            for t in run.trials for h in t.history]
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
