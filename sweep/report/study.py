"""An Optuna study rebuilt from a sweep's files: the input of Optuna's importance and plots, and of the journal.

Ray's OptunaSearch keeps its study in memory only; trials.csv + history.csv + sweep.json's spec hold all
that a study needs (each trial's parameters, state, per-epoch values), so the study is made again with
`optuna.trial.create_trial` whenever it is needed.
"""
from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .folder import Sweep, num

STATES = {"completed": TrialState.COMPLETE, "stopped_early": TrialState.PRUNED, "errored": TrialState.FAIL}
DIRECTIONS = {"max": "maximize", "min": "minimize"}


def distribution(p: dict):
    """The spec's YAML form of one parameter (sweep.json) -> the Optuna distribution it was sampled from."""
    kind = p["type"]
    if kind == "choice":
        return CategoricalDistribution(p["values"])
    if kind in ("int", "logint"):
        return IntDistribution(p["low"], p["high"], log=kind == "logint",
                               step=1 if kind == "logint" else (p.get("step") or 1))
    return FloatDistribution(p["low"], p["high"], log=kind == "loguniform",
                             step=None if kind == "loguniform" else p.get("step"))


def distributions(sweep: Sweep) -> dict:
    """Each parameter's distribution from the spec; one the spec lacks (a hand-made sweep.json) is inferred
    from the values the trials took, so the report still draws it."""
    spec = sweep.spec.get("params") or {}
    return {name: distribution(spec[name]) if name in spec else _observed(sweep, name) for name in sweep.params}


def _observed(sweep: Sweep, name: str):
    cells = sorted({t.get(name, "") for t in sweep.trials} - {""})
    nums = [num(c) for c in cells]
    if not cells or any(v is None for v in nums) or min(nums) == max(nums):
        return CategoricalDistribution(cells or [""])
    if all(float(v).is_integer() and "." not in c for v, c in zip(nums, cells)):
        return IntDistribution(int(min(nums)), int(max(nums)))
    return FloatDistribution(min(nums), max(nums), log=min(nums) > 0 and max(nums) / min(nums) > 50)


def _value(cell: str, dist):
    """A trials.csv cell back to the value Optuna sampled; None when inactive (conditional) or not in `dist`."""
    if cell in ("", None):
        return None
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:  # csv wrote str(value): match on that (64 vs '64', True vs 'True')
            if str(choice) == cell:
                return choice
        return None
    f = num(cell)
    if f is None:
        return None
    value = int(round(f)) if isinstance(dist, IntDistribution) else f
    return value if dist._contains(dist.to_internal_repr(value)) else None


def trial_params(sweep: Sweep, row: dict) -> dict:
    dists = distributions(sweep)
    params = {name: _value(row.get(name, ""), d) for name, d in dists.items()}
    return {k: v for k, v in params.items() if v is not None}


def value_at(sweep: Sweep, row: dict, metric: str, epoch: int | None = None, rule: str | None = None) -> float | None:
    """The metric by the ranking rule (default: the sweep's): at the last epoch reached (or at `epoch`), or the
    best up to it."""
    rule = rule or sweep.select
    if metric == sweep.metric and epoch is None:  # trials.csv holds it: the very number the sweep ranked by
        return num(row.get(f"{'best' if rule == 'best_epoch' else 'final'}_{metric}"))
    pts = [(e, v) for e, v in sweep.curves(metric).get(row["trial_id"], []) if epoch is None or e <= epoch]
    if not pts or (epoch is not None and pts[-1][0] != epoch):
        return None
    if rule == "best_epoch":
        return (max if _mode(sweep, metric) == "max" else min)(v for _, v in pts)
    return pts[-1][1]


def _mode(sweep: Sweep, metric: str) -> str:
    """Which way is better: the YAML says for its objectives; losses and times go down, the rest up."""
    for o in sweep.spec.get("objectives") or []:
        if isinstance(o, dict) and o.get("metric") == metric and o.get("mode") in DIRECTIONS:
            return o["mode"]
    if metric == sweep.metric:
        return sweep.mode
    return "min" if metric.endswith(("_loss", "_time_s")) else "max"


def _new_study(sweep: Sweep, storage=None, directions=None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created" per rebuild is noise
    return optuna.create_study(study_name=sweep.spec.get("name", "sweep"), storage=storage,
                               directions=directions or [DIRECTIONS[sweep.mode]])


def objective_metrics(sweep: Sweep) -> list[str]:
    """The metrics the sweep optimised: the YAML's `objectives:` when it lists several, else its one metric."""
    named = [o.get("metric") for o in sweep.spec.get("objectives") or [] if isinstance(o, dict)]
    return named if len(named) >= 2 else [sweep.metric]


def faithful_study(sweep: Sweep, storage=None) -> optuna.Study:
    """Every trial as it happened: completed (valued by the ranking rule, one value per objective), pruned by
    ASHA, or failed, with its per-epoch values of the first objective (ASHA's) as intermediate values."""
    metrics = objective_metrics(sweep)
    study = _new_study(sweep, storage, directions(sweep))
    dists = distributions(sweep)
    for row in sweep.trials:
        study.add_trial(faithful_trial(sweep, row, dists, metrics))
    return study


def directions(sweep: Sweep) -> list[str]:
    """Optuna's direction of each objective the sweep optimised."""
    return [DIRECTIONS[_mode(sweep, m)] for m in objective_metrics(sweep)]


def faithful_trial(sweep: Sweep, row: dict, dists: dict, metrics: list[str]) -> optuna.trial.FrozenTrial:
    """One trials.csv row (cells as the CSV holds them) as Optuna holds it; `dists`: distributions(sweep),
    `metrics`: objective_metrics(sweep). The rebuilt journal and the live one (journal.LiveJournal) both use it."""
    params = {k: v for k, d in dists.items() if (v := _value(row.get(k, ""), d)) is not None}
    state = STATES.get(row["status"], TrialState.FAIL)
    values = [value_at(sweep, row, m) for m in metrics] if state == TrialState.COMPLETE else None
    if values is not None and None in values:  # finished without a finite metric
        state, values = TrialState.FAIL, None
    attrs = {"trial_id": row["trial_id"], "status": row["status"], "epochs": row.get("epochs", "")}
    attrs.update({k: row[k] for k in ("time_s", "error") if row.get(k)})
    return optuna.trial.create_trial(
        state=state, values=values, params=params, distributions={k: dists[k] for k in params},
        intermediate_values={e: v for e, v in sweep.curves(sweep.metric).get(row["trial_id"], [])},
        user_attrs=attrs)


def valued_study(sweep: Sweep, metrics: list[str] | None = None, epoch: int | None = None,
                 rule: str | None = None, percent: bool = True) -> tuple[optuna.Study, list[str]]:
    """Trials as COMPLETE with the value(s) of `metrics` (default: the sweep's metric) by the ranking rule,
    at each trial's last epoch or at `epoch` (trials that did not reach it are left out). ASHA's stopped
    trials count too, valued where they stopped: importance and parallel coordinates see every trial.
    Accuracies in percent (`percent`), the report's one unit. Returns the study and the trial ids in its order."""
    metrics = metrics or [sweep.metric]
    study = _new_study(sweep, directions=[DIRECTIONS[_mode(sweep, m)] for m in metrics])
    dists = distributions(sweep)
    ids = []
    for row in sweep.trials:
        if row["status"] == "errored":
            continue
        values = [value_at(sweep, row, m, epoch, rule) for m in metrics]
        if any(v is None for v in values):
            continue
        values = [v * (100.0 if percent and m.endswith("_acc") else 1.0) for v, m in zip(values, metrics)]
        params = trial_params(sweep, row)
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=values, params=params,
            distributions={k: dists[k] for k in params}, user_attrs={"trial_id": row["trial_id"]}))
        ids.append(row["trial_id"])
    return study, ids
