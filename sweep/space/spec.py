"""`SweepSpec`: a validated, frozen search space, and what the sweep asks of it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from trainables.config import TrainConfig
from trainables.errors import did_you_mean

from . import sections
from .define_by_run import define_by_run
from .errors import Invalid, SpaceError
from .objectives import Objective
from .samplers import make_sampler
from .sections import Data, OodVal, Resources, Retrain, Sampler, Trials
from .values import FrozenDict, show, thaw


@dataclass(frozen=True)
class SweepSpec:
    source_path: str
    name: str
    description: str
    objectives: tuple  # of Objective(metric, mode); the first is the trial scheduler's
    pick: str  # the objective's metric the retrain's trial is best by
    select: str  # last_epoch | best_epoch: which epoch of a trial stands for it
    fixed: FrozenDict
    params: tuple  # of Param, parents before the params conditioned on them
    sampler: Sampler
    trial_scheduler: Any  # sweep.trial_schedulers.TrialScheduler: its type (a row of the table) and settings
    trials: Trials
    resources: Resources
    retrain: Retrain
    data: Data
    ood_val: OodVal
    enqueue: tuple  # of FrozenDict: searched values of each known-good config
    smoke: FrozenDict  # the file's smoke: section (defaults filled in)
    smoke_applied: bool = False

    @property
    def metric(self) -> str:
        """The first objective's metric: what the trial scheduler stops (or exploits) trials by."""
        return self.objectives[0].metric

    @property
    def mode(self) -> str:
        return self.objectives[0].mode

    @property
    def pick_objective(self) -> Objective:
        """The objective the retrain's trial is best by (metric, mode)."""
        return next(o for o in self.objectives if o.metric == self.pick)

    @property
    def epochs(self) -> int:
        """Epochs per trial = the trial scheduler's max_t."""
        return self.fixed["epochs"]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def points_to_evaluate(self) -> list[dict]:
        """The enqueue: list as Ray's OptunaSearch(points_to_evaluate=...) wants it."""
        return [dict(e) for e in self.enqueue]

    def define_by_run(self, trial) -> dict:
        """Optuna define-by-run: suggest each active param (parents first); return the fixed constants."""
        return define_by_run(self.fixed, self.params, trial)

    def make_sampler(self):
        return make_sampler(self.sampler, self.trials.max_concurrent)

    def active(self, config: Mapping[str, Any]) -> dict:
        """`config` without the searched parameters it does not use (their `when:` does not hold). Under PBT Tune
        hands each trial a config carrying every key of the whole population."""
        values = dict(self.fixed)
        for p in self.params:
            if p.name in config and p.active(values):
                values[p.name] = config[p.name]
        return {k: v for k, v in config.items() if k in values}

    def trial_config(self, sampled: Mapping[str, Any]) -> TrainConfig:
        """fixed + one trial's sampled values (Tune's config, which may repeat the fixed ones) -> TrainConfig."""
        by_name = {p.name: p for p in self.params}
        for key, value in sampled.items():
            if key in self.fixed and value != self.fixed[key]:
                raise SpaceError(f"{self.source_path}: sampled {key}={show(value)} differs from fixed.{key} "
                                 f"({show(self.fixed[key])})")
            if key not in self.fixed and key not in by_name:
                raise SpaceError(f"{self.source_path}: sampled key {show(key)} is not a parameter of this space"
                                 f"{did_you_mean(key, by_name)}")
        values = dict(self.fixed)
        for p in self.params:
            if p.active(values) != (p.name in sampled):
                state = "lacks" if p.active(values) else "has inactive parameter"
                raise SpaceError(f"{self.source_path}: sampled config {state} {p.name} ({dict(sampled)})")
            if p.name in sampled:
                values[p.name] = sampled[p.name]
        return TrainConfig.from_dict(values, data=self.data.path)

    def with_data_path(self, path: str) -> "SweepSpec":
        """The same spec reading data from `path` (made absolute, like the YAML's)."""
        try:
            data = dataclasses.replace(self.data, path=sections.data_path(path, "data.path"))
        except Invalid as exc:
            raise SpaceError(f"{self.source_path}: {exc.path}: {exc.message}") from None
        return dataclasses.replace(self, data=data)

    def yaml_form(self) -> dict:
        """This spec in the YAML format (after defaults, overrides, coercion): load it back -> equal spec."""
        if len(self.objectives) == 1:
            goal = {"metric": self.metric, "mode": self.mode}
        else:
            goal = {"objectives": [o._asdict() for o in self.objectives], "pick": self.pick}
        return {
            "name": self.name, "description": self.description, **goal, "select": self.select,
            "fixed": dict(self.fixed), "params": {p.name: p.to_dict() for p in self.params},
            "sampler": dataclasses.asdict(self.sampler), **self.scheduler_form(),
            "trials": dataclasses.asdict(self.trials), "resources": dataclasses.asdict(self.resources),
            "retrain": {**dataclasses.asdict(self.retrain), "seeds": list(self.retrain.seeds)},
            "data": dataclasses.asdict(self.data), "enqueue": [dict(e) for e in self.enqueue],
            "ood_val": {**dataclasses.asdict(self.ood_val), "corruptions": list(self.ood_val.corruptions),
                        "severities": list(self.ood_val.severities)},
            "smoke": thaw(self.smoke),
        }

    def scheduler_form(self) -> dict:
        """The trial scheduler as YAML writes it: ASHA's settings as an `asha:` section (the form every shipped
        file uses, which an `asha.*` override then reaches), any other as `trial_scheduler:`."""
        form = self.trial_scheduler.to_dict()
        if form["type"] == "asha":
            return {"asha": {k: v for k, v in form.items() if k != "type"}}
        return {"trial_scheduler": form}

    def to_dict(self) -> dict:
        """JSON-able, for sweep.json, best.json and the report: the YAML form plus where it came from, and
        metric/mode (the first objective) and objectives always, whichever way the file wrote them."""
        return {"source_path": self.source_path, "smoke_applied": self.smoke_applied, **self.yaml_form(),
                "metric": self.metric, "mode": self.mode, "objectives": [o._asdict() for o in self.objectives],
                "pick": self.pick}
