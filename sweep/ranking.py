"""The one ranking rule: which trial is best (best.json, the retrain), and the order of every list of trials
(trials.csv, the report's leaderboard and figures). Two implementations had drifted: the report ranked by the first
objective while best.json followed `pick:`.

A trial is valued by the pick objective's metric (`pick:` among several objectives, else the metric) at its last
epoch, or at its best epoch (`select: best_epoch`). Trials with a value come before those without and errored ones
last; among them, trials that trained every epoch come first: a trial stopped at an early rung is not comparable with
one that trained to the end (the scheduler compares at rungs), and the retrain trains to the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

SELECT_TEXT = {"last_epoch": "its last epoch", "best_epoch": "its best epoch"}
T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    metric: str  # the pick objective's metric
    mode: str  # max | min
    select: str = "last_epoch"  # last_epoch | best_epoch

    @classmethod
    def of(cls, spec) -> "Rule":
        """From a SweepSpec."""
        o = spec.pick_objective
        return cls(o.metric, o.mode, spec.select or "last_epoch")

    @classmethod
    def from_dict(cls, spec: dict) -> "Rule":
        """From sweep.json's spec (any version: `pick`, `objectives` and `select` were added over time)."""
        metric = spec.get("pick") or spec["metric"]
        modes = {o.get("metric"): o.get("mode") for o in spec.get("objectives") or [] if isinstance(o, dict)}
        return cls(metric, modes.get(metric) or spec["mode"], spec.get("select") or "last_epoch")

    @property
    def column(self) -> str:
        """trials.csv's column holding each trial's value by this rule."""
        return f"{'best' if self.select == 'best_epoch' else 'final'}_{self.metric}"

    def text(self) -> str:
        return (f"ranked by {self.metric} ({'higher' if self.mode == 'max' else 'lower'} is better) at "
                f"{SELECT_TEXT.get(self.select, self.select)}; trials that trained every epoch first")

    def value(self, history: Iterable[dict], last: dict | None = None) -> float | None:
        """A trial's value: its metric at the last epoch (`last`, else the last epoch of `history`) or its best."""
        values = [float(h[self.metric]) for h in history if finite(h.get(self.metric))]
        if self.select == "best_epoch":
            return (max if self.mode == "max" else min)(values) if values else None
        if last is not None:
            return float(last[self.metric]) if finite(last.get(self.metric)) else None
        return values[-1] if values else None

    def key(self, status: str, value: float | None) -> tuple:
        sign = -1.0 if self.mode == "max" else 1.0
        return status == "errored", value is None, status != "completed", sign * (value or 0.0)

    def order(self, items: Iterable[T], status: Callable[[T], Any], value: Callable[[T], float | None]) -> list[T]:
        """`items` best first (a stable sort: ties keep their order)."""
        return sorted(items, key=lambda t: self.key(str(status(t)), value(t)))

    def best(self, items: Iterable[T], status: Callable[[T], Any], value: Callable[[T], float | None]) -> T | None:
        """The best trial that ended with a value (completed or stopped early), or None."""
        ok = [t for t in items if str(status(t)) in ("completed", "stopped_early") and value(t) is not None]
        return self.order(ok, status, value)[0] if ok else None


def finite(v: Any) -> bool:
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
