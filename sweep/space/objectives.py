"""What a sweep optimises: `metric:`/`mode:` (one objective) or `objectives:` (several), `pick:` and `select:`.

ASHA stops trials by the first objective; a multi-objective sampler ranks trials by all of them; the retrain
trains the trial best by `pick` (one of the objectives, default the first: the best trial by one objective
is always on the Pareto front); `select` says which epoch of a trial stands for it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from trainables.errors import did_you_mean

from .errors import Invalid
from .values import join, mapping, show

# The metrics the trainable reports every epoch (trainables.engine.train) and the direction that is better.
# ood_val_* exist only when the sweep has an ood_val: section (the pipeline passes the corrupted split).
METRICS = {
    "val_acc": "max", "val_loss": "min", "ood_val_acc": "max", "ood_val_loss": "min",
    "train_acc": "max", "train_loss": "min", "epoch_time_s": "min", "images_per_s": "max",
}
# What ASHA may stop trials by (the first objective): a metric that says how well a trial is learning.
# Speed changes little between epochs, so stopping by it would keep the fastest trial, not the best one.
LEARNING = ("val_acc", "val_loss", "ood_val_acc", "ood_val_loss", "train_acc", "train_loss")
# last_epoch: the retrain trains to the last epoch, so the trial's last value predicts it best.
SELECTS = ("last_epoch", "best_epoch")


class Objective(NamedTuple):
    metric: str
    mode: str  # max | min


def read(raw: dict) -> tuple[tuple[Objective, ...], str, str]:
    """(objectives, pick, select) from the top-level mapping."""
    if "objectives" in raw:
        given = [k for k in ("metric", "mode") if k in raw]
        if given:
            raise Invalid(given[0], "give either metric:/mode: (one objective) or objectives: (several), not both")
        objectives = _objectives(raw["objectives"])
    else:
        if "pick" in raw:
            raise Invalid("pick", "chooses the retrain's trial among several objectives:, but this sweep has one "
                                  "metric:; remove pick")
        metric = _metric(raw.get("metric", "val_acc"), "metric", LEARNING)
        objectives = (Objective(metric, _mode(raw.get("mode", METRICS[metric]), metric, "mode")),)
    names = [o.metric for o in objectives]
    pick = raw.get("pick", names[0])
    if pick not in names:
        raise Invalid("pick", f"{show(pick)} is not one of the objectives; choose one of {', '.join(names)}")
    select = raw.get("select", SELECTS[0])
    if select not in SELECTS:
        raise Invalid("select", f"{show(select)} is not allowed; choose {' or '.join(SELECTS)}")
    return objectives, pick, select


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("objectives", f"{show(raw)} is not allowed; give a list such as "
                                    f"[{{metric: ood_val_acc, mode: max}}, {{metric: val_acc, mode: max}}]")
    out: list[Objective] = []
    for i, entry in enumerate(raw):
        path = join("objectives", i)
        mapping(entry, path, ("metric", "mode"), required=("metric", "mode"))
        # ASHA stops trials by the first objective: it must measure learning
        metric = _metric(entry["metric"], f"{path}.metric", LEARNING if i == 0 else tuple(METRICS))
        if metric in (o.metric for o in out):
            raise Invalid(f"{path}.metric", f"{metric} is listed twice; each objective once")
        out.append(Objective(metric, _mode(entry["mode"], metric, f"{path}.mode")))
    return tuple(out)


def _metric(value: Any, path: str, allowed: tuple) -> str:
    if isinstance(value, str) and value in METRICS and value not in allowed:
        raise Invalid(path, f"{value} cannot be ASHA's metric (the first objective): it does not measure "
                            f"learning; put one of {', '.join(allowed)} first")
    if not isinstance(value, str) or value not in allowed:
        raise Invalid(path, f"unknown metric {show(value)}{did_you_mean(value, allowed)}")
    return value


def _mode(value: Any, metric: str, path: str) -> str:
    if value not in ("max", "min"):
        raise Invalid(path, f"{show(value)} is not allowed; choose max or min")
    if value != METRICS[metric]:
        raise Invalid(path, f"{value} would pick the worst trial by {metric}; use {METRICS[metric]}")
    return value
