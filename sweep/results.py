"""The sweep's own result files (trials.csv, history.csv, best.json): plain data, written atomically.

Ray keeps its experiment state elsewhere; these files are what people and the report read.
"""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from typing import Any

from trainables import atomic

from .outcome import Status, SweepRun, TrialOutcome
from .ranking import Rule, finite

# Per-epoch columns of history.csv, in this order; any other `*_acc`/`*_loss` a trial reported follows.
HISTORY = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s", "images_per_s",
           "peak_rss_mb", "ended_at"]


def rank_value(t: TrialOutcome, spec) -> float | None:
    """The value a trial is ranked by (sweep/ranking.py's rule)."""
    return Rule.of(spec).value(t.history, t.metrics)


def trial_rows(run: SweepRun, spec) -> list[dict[str, Any]]:
    """One row per trial, best first by the ranking rule: id, status, epochs, every hyperparameter, each objective's
    final and best value, clean and corrupted validation accuracy, time, error."""
    rows = []
    ranked = [o.metric for o in spec.objectives]
    # Clean and corrupted validation accuracy side by side, whichever of them ranks the trials.
    beside = [m for m in ("val_acc", "ood_val_acc") if m not in ranked and any(m in t.metrics for t in run.trials)]
    for t in Rule.of(spec).order(run.trials, lambda t: t.status, lambda t: rank_value(t, spec)):
        row = {"trial_id": t.trial_id, "status": str(t.status), "epochs": t.epochs,
               "epochs_trained": max(t.trained, t.epochs)}
        row.update({p: t.config.get(p, "") for p in spec.param_names})
        for o in spec.objectives:
            final = t.metrics.get(o.metric) if t.status is not Status.ERRORED else None
            best = Rule(o.metric, o.mode, "best_epoch").value(t.history)
            row.update({f"final_{o.metric}": final if finite(final) else "",
                        f"best_{o.metric}": best if best is not None else ""})
        row.update({**{f"final_{m}": t.metrics.get(m, "") for m in beside}, "time_s": round(t.wall_s, 2),
                    "error": t.error})
        rows.append(row)
    return rows


def best_trial(run: SweepRun, spec) -> TrialOutcome | None:
    """The winner by the ranking rule (sweep/ranking.py)."""
    return Rule.of(spec).best(run.trials, lambda t: t.status, lambda t: rank_value(t, spec))


def no_model_line(run: SweepRun, spec, folder: str) -> str:
    """Why no trial can be retrained, in one line: the commonest error, how many trials hit it, where the rest is."""
    where = os.path.join(folder, "trials.csv")
    errored = [t for t in run.trials if t.status is Status.ERRORED]
    if errored:
        common, count = Counter(t.error for t in errored).most_common(1)[0]
        return (f"no trial produced a model: {len(errored)} of {len(run.trials)} trials errored, {count} of them "
                f"with: {common}. Every trial's status and error: {where}")
    return (f"no trial produced a model: none of the {len(run.trials)} trials ended with a finite "
            f"{Rule.of(spec).metric} (diverged to NaN, or no value reported). Every trial's status: {where}")


def write_trials_csv(path: str, rows: list[dict]) -> None:
    atomic.write_text(path, _csv(rows))


def write_history_csv(path: str, run: SweepRun) -> None:
    """Long format: one row per (trial, epoch) with every reported metric: the learning curves."""
    # Other scores per epoch (ood_val_acc, ...), and under PBT the values each epoch ran at (hp_<name>) and where a
    # trial was given another's weights (exploited_from: that trial, exploited_at: its epoch then).
    extra = sorted({k for t in run.trials for h in t.history for k in h
                    if (k.endswith(("_acc", "_loss")) or k.startswith(("hp_", "exploited_"))) and k not in HISTORY})
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


