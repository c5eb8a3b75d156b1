"""Warm start (`--warm-start results/<earlier sweep>`): earlier trials told to the new sweep's sampler, the best
few run first.

What fits: an earlier trial is taken as the config it actually trained with (its sweep's fixed values, its
sampled values, TrainConfig's defaults for the rest), so a parameter the new space searches but the earlier
sweep fixed or left at its default is filled from there, never guessed. It fits when every parameter the new
space searches, and switches on by its `when:` conditions, has a value inside that parameter's range or choices,
and no key the new space fixes was searched to another value. Keys both sweeps fix differently (epochs, model,
optimizer across parts) are the sweeps' context: the trials are kept and the difference is said once.

What it is worth: the new sweep's objectives, from trials.csv's final_<metric> when the earlier sweep wrote
it, else the trial's last history.csv epoch; a trial without one is dropped. Completed and ASHA-stopped trials
are told with their last value, as Ray's OptunaSearch told the earlier sampler.

Ray-free; the one Optuna step (`add_to_study`) takes the study that sweep/ray_adapter.py's OptunaSearch made.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field

from trainables.config import TrainConfig, config_fields, coerce
from trainables.errors import ConfigError, UserError

from .ranking import finite
from .results import read_csv
from .space.check import config_error
from .space.values import show

USED = ("completed", "stopped_early")
DEFAULT_TOP = 3


@dataclass(frozen=True)
class WarmStart:
    folders: tuple[str, ...]
    evaluated: tuple = ()  # of (params, values per objective, folder): told to the sampler
    enqueue: tuple = ()  # of params: run first, best first
    dropped: Counter = field(default_factory=Counter)  # reason -> trials
    notes: tuple[str, ...] = ()  # context both sweeps fix differently

    def summary(self) -> str:
        """The one line the console prints."""
        n_drop = sum(self.dropped.values())
        why = "; ".join(f"{n} {reason}" for reason, n in self.dropped.most_common())
        return (f"warm start from {', '.join(self.folders)}: {len(self.evaluated)} earlier trials told to the "
                f"sampler, the best {len(self.enqueue)} run first; {n_drop} dropped" + (f" ({why})" if why else ""))

    def to_dict(self) -> dict:
        """For sweep.json: which folders warmed this sweep and what came of them."""
        return {"folders": list(self.folders), "evaluated": len(self.evaluated),
                "enqueued": [dict(p) for p in self.enqueue], "dropped": dict(self.dropped),
                "notes": list(self.notes)}


def load(folders, spec, top: int = DEFAULT_TOP) -> WarmStart:
    """Every fitting trial of the earlier sweeps in `folders` for `spec`; bad folders raise UserError."""
    folders = tuple(os.path.abspath(f) for f in folders)
    evaluated, dropped, notes = [], Counter(), []
    for folder in folders:
        earlier, rows, history = _read(folder)
        note = _context(earlier, spec)
        if note:
            notes.append(f"{folder} {note}")
        for row in rows:
            params, values, reason = fit(row, history, earlier, spec)
            if reason:
                dropped[reason] += 1
            else:
                evaluated.append((params, values, folder, row.get("status") == "completed"))
    return WarmStart(folders, tuple((p, v, f) for p, v, f, _ in evaluated), _best(evaluated, spec, top),
                     dropped, tuple(notes))


def _read(folder: str) -> tuple[dict, list[dict], dict]:
    """(earlier spec dict, trials.csv rows, trial id -> its last history.csv row)."""
    flag = f"--warm-start {folder}"
    if not os.path.isdir(folder):
        raise UserError(f"{flag}: no such folder; give an earlier sweep's results folder (results/<name>)")
    manifest = os.path.join(folder, "sweep.json")
    if not os.path.isfile(manifest):
        raise UserError(f"{flag}: not a sweep's results folder (no sweep.json); give results/<name> of an "
                        f"earlier sweep")
    try:
        with open(manifest, encoding="utf-8") as f:
            earlier = json.load(f)["spec"]
        if not isinstance(earlier["fixed"], dict) or not isinstance(earlier["params"], dict):
            raise TypeError("spec.fixed and spec.params are not mappings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{flag}: {manifest} is not a sweep.json this program wrote "
                        f"({type(exc).__name__}: {exc})") from None
    trials = os.path.join(folder, "trials.csv")
    if not os.path.isfile(trials):
        raise UserError(f"{flag}: no trials.csv yet (the sweep stopped before writing results); "
                        f"finish it with --resume first")
    try:
        rows = read_csv(trials)
        history = {}
        if os.path.isfile(os.path.join(folder, "history.csv")):
            for h in read_csv(os.path.join(folder, "history.csv")):
                history[h.get("trial_id")] = h  # rows are in epoch order: the last one stays
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{flag}: cannot read its trials ({type(exc).__name__}: {exc})") from None
    if rows and not {"trial_id", "status"} <= set(rows[0]):
        raise UserError(f"{flag}: {trials} has no trial_id/status columns; it is not a trials.csv this program "
                        f"wrote")
    return earlier, rows, history


def fit(row: dict, history: dict, earlier: dict, spec) -> tuple[dict, tuple, str]:
    """(params of the new space, values of its objectives, "") for a fitting trial, else ({}, (), reason)."""
    if row.get("status") not in USED:
        return {}, (), f"{row.get('status') or 'unknown'}"
    try:
        ran = _effective(row, earlier)
    except ConfigError as exc:
        return {}, (), f"not a valid config now ({exc.key})"
    searched = set(earlier["params"])
    for key, value in spec.fixed.items():
        if key in searched and ran.get(key) != value:
            return {}, (), f"searched {key}, fixed at {show(value)} here"
    values, params = dict(spec.fixed), {}
    for p in spec.params:  # parents first: a condition reads its parent's value
        if not p.active(values):
            continue
        value = ran[p.name]
        if not p.contains(value):
            return {}, (), f"{p.name} outside params.{p.name}"
        values[p.name] = params[p.name] = value
    if config_error(values):  # e.g. an SGD-only setting under this space's fixed optimizer
        return {}, (), "not a valid config here"
    scores = []
    for o in spec.objectives:
        score = _score(row, history, o.metric)
        if score is None:
            return {}, (), f"no {o.metric} recorded"
        scores.append(score)
    return params, tuple(scores), ""


def _effective(row: dict, earlier: dict) -> dict:
    """The config the earlier trial trained with: defaults < its sweep's fixed < its sampled values."""
    types = config_fields()
    ran = TrainConfig().to_dict()
    for key, value in earlier["fixed"].items():
        if key not in types:
            raise ConfigError(f"unknown key {key}", key=key)
        ran[key] = coerce(key, value, types[key])
    for key in earlier["params"]:
        if key not in types:
            raise ConfigError(f"unknown key {key}", key=key)
        if row.get(key, "") != "":  # "": inactive in that trial (its condition off), so the default applied
            ran[key] = coerce(key, row[key], types[key])
    return ran


def _score(row: dict, history: dict, metric: str) -> float | None:
    for text in (row.get(f"final_{metric}", ""), history.get(row.get("trial_id"), {}).get(metric, "")):
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return None


def _context(earlier: dict, spec) -> str:
    """'fixed differently: epochs 30 (here 15), ...' for keys neither sweep searched."""
    ran = TrainConfig().to_dict()
    ran.update({k: v for k, v in earlier["fixed"].items() if k in ran})
    differ = [f"{k} {show(ran[k])} (here {show(v)})" for k, v in spec.fixed.items()
              if k not in earlier["params"] and k in ran and ran[k] != v]
    return ("ran with " + ", ".join(differ) + ": its trials are told as measured there") if differ else ""


def _best(evaluated: list, spec, top: int) -> tuple:
    """The top `top` distinct configs by the objective the retrain picks by; trials that ran every epoch first,
    as the sweep's own best trial is chosen."""
    i = [o.metric for o in spec.objectives].index(spec.pick)
    sign = -1 if spec.pick_objective.mode == "max" else 1
    ranked = sorted(evaluated, key=lambda e: (not e[3], sign * e[1][i]))
    out, seen = [], set()
    for params, *_ in ranked:
        key = tuple(sorted(params.items()))
        if key not in seen and len(out) < top:
            seen.add(key)
            out.append(params)
    return tuple(out)


def points(warm: WarmStart | None, spec) -> list[dict]:
    """What runs first: the earlier sweeps' best, then the YAML's enqueue: entries not among them, and not already
    evaluated (an added part of this sweep, or an earlier sweep, ran them: the sampler is told their values)."""
    first = [dict(p) for p in (warm.enqueue if warm else ())]
    ran = [dict(p) for p, _, _ in (warm.evaluated if warm else ())]
    return first + [p for p in spec.points_to_evaluate if p not in first and p not in ran]


def add_to_study(study, warm: WarmStart, spec) -> None:
    """Tell `study` every fitting earlier trial as a finished one. The distributions are the ones this space's
    define-by-run suggests (recorded on a FixedTrial), so the sampler reads the old trials as its own."""
    from optuna.trial import FixedTrial, create_trial

    for params, values, folder in warm.evaluated:
        trial = FixedTrial(dict(params))
        spec.define_by_run(trial)
        study.add_trial(create_trial(params=trial.params, distributions=trial.distributions, values=list(values),
                                     user_attrs={"warm_start": folder}))


def recorded(folder: str) -> dict | None:
    """The warm start an earlier run of this sweep recorded in its sweep.json (a resumed sweep keeps it)."""
    try:
        with open(os.path.join(folder, "sweep.json"), encoding="utf-8") as f:
            return json.load(f).get("warm_start")
    except (OSError, ValueError, AttributeError):
        return None


def from_runs(runs, spec) -> WarmStart:
    """The trials of this sweep's earlier parts (sweep/pipeline/segments.py) told to a new part's sampler, as Ray's
    OptunaSearch told them in their own part: completed and stopped-early ones with their last values."""
    evaluated = []
    for run in runs:
        for t in run.trials:
            values = tuple(t.metrics.get(o.metric) for o in spec.objectives)
            if str(t.status) in USED and all(finite(v) for v in values):
                params = {p.name: t.config[p.name] for p in spec.params if p.name in t.config}
                evaluated.append((params, tuple(float(v) for v in values), "this sweep's earlier trials"))
    return WarmStart(("this sweep",), tuple(evaluated))
