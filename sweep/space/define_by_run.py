"""Optuna's define-by-run for a space: the only place that calls `trial.suggest_*`."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .params import Param


def define_by_run(fixed: Mapping[str, Any], params: Iterable[Param], trial) -> dict:
    """Suggest each active param (parents first, so a condition reads its parent's value); return the
    fixed constants, which OptunaSearch merges into the trial's config."""
    values = dict(fixed)
    for p in params:
        if p.active(values):
            values[p.name] = suggest(p, trial)
    return dict(fixed)


def suggest(p: Param, trial) -> Any:
    if p.type == "choice":
        return trial.suggest_categorical(p.name, list(p.values))
    if p.type in ("int", "logint"):
        return trial.suggest_int(p.name, p.low, p.high, step=p.step or 1, log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
