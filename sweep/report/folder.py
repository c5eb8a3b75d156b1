"""A sweep's results folder read back: the one place the report learns what a sweep did.

Only the files the sweep wrote (sweep.json, trials.csv, history.csv, best.json, final/metrics.json,
robustness/*/robustness.json) are read, so a report can be rebuilt at any time, on any machine.
"""
from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field

from ..ranking import Rule
from ..results import read_csv


def num(v) -> float | None:
    """A CSV cell as a finite float, or None (empty, text, nan, inf)."""
    try:
        f = float(v)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return None


@dataclass
class Sweep:
    folder: str
    manifest: dict
    trials: list[dict]
    history: list[dict]
    best: dict | None = None
    final: dict | None = None
    robustness: dict = field(default_factory=dict)  # kind (folder name) -> robustness.json
    _curves: dict = field(default_factory=dict, repr=False)  # metric -> curves(metric), read once

    @property
    def spec(self) -> dict:
        return self.manifest["spec"]

    @property
    def metric(self) -> str:
        return self.spec["metric"]

    @property
    def mode(self) -> str:
        return self.spec["mode"]

    @property
    def params(self) -> list[str]:
        return list(self.manifest.get("param_names") or self.spec["params"])

    @property
    def rule(self) -> Rule:
        """The one ranking rule (sweep/ranking.py): the pick objective's metric, at the last or the best epoch."""
        return Rule.from_dict(self.spec)

    @property
    def select(self) -> str:
        return self.rule.select

    def rank_value(self, row: dict) -> float | None:
        """A trial's value by the ranking rule: trials.csv's column for it, else (a sweep recorded before every
        objective had one) from its learning curve."""
        rule = self.rule
        if rule.column in row:
            return num(row[rule.column])
        return rule.value({rule.metric: v} for _, v in self.curves(rule.metric).get(row["trial_id"], []))

    @property
    def max_epochs(self) -> int:
        fixed = self.spec.get("fixed", {}).get("epochs")
        seen = [int(n) for t in self.trials if (n := num(t.get("epochs"))) is not None]
        return int(fixed) if fixed else max(seen, default=0)

    def curves(self, metric: str) -> dict[str, list[tuple[int, float]]]:
        """trial_id -> [(epoch, value)] sorted by epoch, finite values only."""
        if metric in self._curves:
            return self._curves[metric]
        out: dict[str, list[tuple[int, float]]] = {}
        for h in self.history:
            e, m = num(h.get("epoch")), num(h.get(metric))
            if e is not None and m is not None:
                out.setdefault(h["trial_id"], []).append((int(e), m))
        self._curves[metric] = {k: sorted(v) for k, v in out.items()}
        return self._curves[metric]

    def has_metric(self, metric: str) -> bool:
        return any(num(h.get(metric)) is not None for h in self.history)

    def ranked(self) -> list[dict]:
        """Trials best first by the ranking rule, as the sweep picks its best trial (sweep/ranking.py)."""
        return self.rule.order(self.trials, lambda t: t["status"], self.rank_value)


def _json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load(folder: str) -> Sweep:
    manifest = _json(os.path.join(folder, "sweep.json"))
    if manifest is None:
        raise FileNotFoundError(os.path.join(folder, "sweep.json"))
    history_path = os.path.join(folder, "history.csv")
    robustness = {}
    for path in sorted(glob.glob(os.path.join(folder, "robustness", "*", "robustness.json"))):
        robustness[os.path.basename(os.path.dirname(path))] = _json(path)
    return Sweep(folder=folder, manifest=manifest, trials=read_csv(os.path.join(folder, "trials.csv")),
                 history=read_csv(history_path) if os.path.exists(history_path) else [],
                 best=_json(os.path.join(folder, "best.json")),
                 final=_json(os.path.join(folder, "final", "metrics.json")), robustness=robustness)
