"""Search spaces are data: a YAML file -> a validated, frozen `SweepSpec` -> Optuna's define-by-run.

`load_space` checks everything before Ray starts; any mistake is a `SpaceError` naming the file,
the key path, the bad value and what is allowed. This is the only place that calls
`trial.suggest_*`. The format is documented in search_spaces/README.md.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

from trainables.config import TrainConfig, config_fields
from trainables.errors import did_you_mean

from . import space_check as check
from . import space_sections as sections
from .space_param import Param, parse_param
from .space_schema import FrozenDict, Invalid, SpaceError, field_value, freeze, mapping, read_yaml, show, string, thaw
from .space_sections import SAMPLERS, Asha, Data, OodVal, Resources, Retrain, Sampler, Trials

__all__ = ["SpaceError", "SweepSpec", "load_space", "Param", "METRICS", "SAMPLERS",
           "Sampler", "Asha", "Trials", "Resources", "Retrain", "Data", "OodVal"]

# Metrics the trainable reports (trainables.engine): val_* each epoch, ood_val_* when the sweep
# passes its corrupted validation set as extra_val={"ood_val": ...}.
METRICS = ("val_acc", "val_loss", "ood_val_acc", "ood_val_loss")
# TrainConfig keys the data: section owns, and keys that cannot be searched.
RESERVED = {"data": "data.path", "download": "data.download"}
SECTIONS = ("name", "description", "metric", "mode", "fixed", "params", "sampler", "asha", "trials",
            "resources", "retrain", "data", "ood_val", "enqueue", "smoke")
SMOKE_SECTIONS = ("fixed", "params", "sampler", "asha", "trials", "resources", "retrain", "data", "ood_val",
                  "enqueue")


@dataclass(frozen=True)
class SweepSpec:
    source_path: str
    name: str
    description: str
    metric: str
    mode: str
    fixed: FrozenDict
    params: tuple  # of Param, parents before the params conditioned on them
    sampler: Sampler
    asha: Asha
    trials: Trials
    resources: Resources
    retrain: Retrain
    data: Data
    ood_val: OodVal
    enqueue: tuple  # of FrozenDict: searched values of each known-good config
    smoke: FrozenDict  # the file's smoke: section (defaults filled in)
    smoke_applied: bool = False

    @property
    def epochs(self) -> int:
        """Epochs per trial = ASHA's max_t."""
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
        values = dict(self.fixed)
        for p in self.params:
            if p.active(values):
                values[p.name] = p.suggest(trial)
        return dict(self.fixed)

    def make_sampler(self):
        import optuna

        s = self.sampler
        with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if s.type == "tpe":
                return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                                  multivariate=True, group=True)
            if s.type == "random":
                return optuna.samplers.RandomSampler(seed=s.seed)
            if s.type == "cmaes":  # categorical and conditional params fall back to random sampling
                return optuna.samplers.CmaEsSampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                                    warn_independent_sampling=False)
            return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                             warn_independent_sampling=False)

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

    def with_smoke(self) -> "SweepSpec":
        """The same sweep shrunk by its smoke: section, named '<name>-smoke' so results never mix."""
        if self.smoke_applied:
            return self
        try:  # load_space already built it once, so only a hand-made spec can fail here
            return _smoke_build(self)
        except Invalid as exc:
            raise SpaceError(f"{self.source_path}: {exc.path}: {exc.message} (in smoke mode)") from None

    def with_data_path(self, path: str) -> "SweepSpec":
        """The same spec reading data from `path` (made absolute, like the YAML's)."""
        try:
            data = dataclasses.replace(self.data, path=sections.data_path(path, "data.path"))
        except Invalid as exc:
            raise SpaceError(f"{self.source_path}: {exc.path}: {exc.message}") from None
        return dataclasses.replace(self, data=data)

    def yaml_form(self) -> dict:
        """This spec in the YAML format (after defaults, overrides, coercion): load it back -> equal spec."""
        asha = {"grace_period": self.asha.grace_period, "reduction_factor": self.asha.reduction_factor}
        return {
            "name": self.name, "description": self.description, "metric": self.metric, "mode": self.mode,
            "fixed": dict(self.fixed), "params": {p.name: p.to_dict() for p in self.params},
            "sampler": dataclasses.asdict(self.sampler), "asha": asha,
            "trials": dataclasses.asdict(self.trials), "resources": dataclasses.asdict(self.resources),
            "retrain": {**dataclasses.asdict(self.retrain), "seeds": list(self.retrain.seeds)},
            "data": dataclasses.asdict(self.data), "enqueue": [dict(e) for e in self.enqueue],
            "ood_val": {**dataclasses.asdict(self.ood_val), "corruptions": list(self.ood_val.corruptions),
                        "severities": list(self.ood_val.severities)},
            "smoke": thaw(self.smoke),
        }

    def to_dict(self) -> dict:
        """JSON-able, for best.json and results: the YAML form plus where it came from."""
        return {"source_path": self.source_path, "smoke_applied": self.smoke_applied, **self.yaml_form()}


def load_space(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read, validate and freeze a search space; `overrides` ({"trials.num_samples": 8}) win over the file.

    Relative data paths resolve against the current working directory, like any CLI argument.
    """
    shown = os.fspath(path)
    try:
        with open(shown, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        hint = _nearby(shown) if isinstance(exc, FileNotFoundError) else ""
        raise SpaceError(f"{shown}: cannot read the search space ({type(exc).__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc}){hint}") from None
    raw = read_yaml(text, shown)
    if not isinstance(raw, dict):
        raise SpaceError(f"{shown}: the file holds {show(raw)}, not a mapping of settings "
                         f"(name:, metric:, fixed:, params:, ...)")
    raw, changed = _apply_overrides(raw, overrides or {}, shown)
    spec = None
    try:
        spec = _build(raw, os.path.abspath(shown))
        _smoke_build(spec)  # smoke mode must work for every file: check it now, not at --smoke-test time
    except Invalid as exc:
        where, note = exc.path, ""
        if spec is not None:  # the smoke variant failed: point into smoke: when the value came from there
            where, note = (f"smoke.{where}", "") if _holds(spec.smoke, where) else \
                (where, " (in smoke mode: narrow it under the smoke: section)")
        if any(where == k or where.startswith((k + ".", k + "[")) for k in changed):
            note += " (set by an override)"
        raise SpaceError(f"{shown}: {where}: {exc.message}{note}") from None
    return spec


def _holds(tree: Any, path: str) -> bool:
    for key in re.findall(r"[^.\[\]]+", path):
        if isinstance(tree, dict) and any(str(k) == key for k in tree):
            tree = next(v for k, v in tree.items() if str(k) == key)
        elif isinstance(tree, tuple) and key.isdigit() and int(key) < len(tree):
            tree = tree[int(key)]
        else:
            return False
    return True


def _nearby(shown: str) -> str:
    folder = os.path.dirname(shown) or "."
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith((".yaml", ".yml")))
    except OSError:
        return ""
    return did_you_mean(os.path.basename(shown), names) if names else ""


def _apply_overrides(raw: dict, overrides: Mapping[str, Any], shown: str) -> tuple[dict, list[str]]:
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        keys = str(dotted).split(".")
        if value is None:  # an unset CLI flag
            continue
        if not all(keys):
            raise SpaceError(f"{shown}: override {show(dotted)} is not a key path like trials.num_samples")
        node = raw
        for i, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpaceError(f"{shown}: override {dotted}: {'.'.join(keys[:i + 1])} is {show(node)}, "
                                 f"not a mapping of keys")
        node[keys[-1]] = value
    return raw, [str(k) for k, v in overrides.items() if v is not None]


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _smoke_build(spec: SweepSpec) -> SweepSpec:
    raw = _merge(spec.yaml_form(), thaw(spec.smoke))
    raw["name"] = f"{spec.name}-smoke"
    return _build(raw, spec.source_path, smoke_applied=True)


def _build(raw: dict, source_path: str, smoke_applied: bool = False) -> SweepSpec:
    mapping(raw, "", SECTIONS)
    types = config_fields()
    default_name = os.path.splitext(os.path.basename(source_path))[0]
    name = string(raw.get("name", default_name), "name", r"[A-Za-z0-9_-]+", "use letters, digits, _ and -")
    description = string(raw.get("description", ""), "description")
    metric = raw.get("metric", "val_acc")
    if not isinstance(metric, str) or metric not in METRICS:
        raise Invalid("metric", f"unknown metric {show(metric)}{did_you_mean(metric, METRICS)}")
    mode = raw.get("mode", "min" if metric.endswith("_loss") else "max")
    if mode not in ("max", "min"):
        raise Invalid("mode", f"{show(mode)} is not allowed; choose max or min")
    if mode != ("min" if metric.endswith("_loss") else "max"):
        raise Invalid("mode", f"{mode} would pick the worst trial by {metric}; use "
                              f"{'min' if mode == 'max' else 'max'}")

    fixed = _fixed(raw.get("fixed"), types)
    params = _params(raw.get("params"), fixed, types)
    check.check_values(fixed, params)

    parts = sections.read(raw, fixed["epochs"])
    _check_ood_val(metric, parts["ood_val"], fixed, params)
    enqueue = check.check_enqueue(raw.get("enqueue"), fixed, params, types)
    smoke = {} if raw.get("smoke") is None else raw["smoke"]
    mapping(smoke, "smoke", SMOKE_SECTIONS)
    for key in smoke.get("fixed") if isinstance(smoke.get("fixed"), dict) else ():
        if key in {p.name for p in params}:
            raise Invalid(f"smoke.fixed.{key}", f"{key} is searched; shrink it under smoke.params.{key} instead")
    return SweepSpec(source_path, name, description, metric, mode, freeze(fixed), params, enqueue=enqueue,
                     smoke=freeze(_merge(_smoke_defaults(fixed, parts), smoke)), smoke_applied=smoke_applied,
                     **parts)


def _check_ood_val(metric: str, ood, fixed: dict, params) -> None:
    if metric.startswith("ood_val") and not ood.corruptions:
        raise Invalid("metric", f"{metric} needs ood_val.corruptions: the corruptions to score validation "
                                f"images under, e.g. ood_val: {{corruptions: [gaussian_noise, fog, contrast]}}")
    if not ood.corruptions:
        return
    searched = [p.name for p in params if p.name in ("val_fraction", "subset")]
    if searched:
        raise Invalid(f"params.{searched[0]}", "is searched, but ood_val corrupts one fixed validation split; "
                                               "fix it under fixed:")
    if fixed.get("val_fraction", TrainConfig.val_fraction) == 0:
        raise Invalid("ood_val", "needs validation images, but fixed.val_fraction is 0")


def _smoke_defaults(fixed: dict, parts: dict) -> dict:
    """What --smoke-test does unless the smoke: section says otherwise: same code path, ~1 minute on a
    CPU; never more than the file itself asks for."""
    trials = parts["trials"]
    return {"fixed": {"epochs": min(fixed["epochs"], 2), "subset": min(fixed.get("subset") or 1000, 1000)},
            "asha": {"grace_period": 1},
            "trials": {"num_samples": min(trials.num_samples, 4), "max_concurrent": min(trials.max_concurrent, 2)},
            "retrain": {"epochs": 1, "seeds": [parts["retrain"].seeds[0]]}}


def _fixed(raw: Any, types: dict) -> dict:
    raw = {} if raw is None else raw
    mapping(raw, "fixed", types)
    for key in raw:
        if key in RESERVED:
            raise Invalid(f"fixed.{key}", f"set it as {RESERVED[key]} (or the CLI's --data), not under fixed:")
    fixed = {key: field_value(value, f"fixed.{key}", types[key]) for key, value in raw.items()}
    fixed.setdefault("epochs", TrainConfig.epochs)  # explicit: ASHA's max_t and retrain default read it
    return fixed


def _params(raw: Any, fixed: dict, types: dict) -> tuple[Param, ...]:
    if not isinstance(raw, dict) or not raw:
        raise Invalid("params", f"{show(raw)} is not allowed; a sweep searches at least one parameter, "
                                f"e.g. lr: {{type: loguniform, low: 1.0e-3, high: 0.3}}")
    params = {}
    for key, spec in raw.items():
        if key not in types or key in RESERVED:
            raise Invalid(f"params.{key}", f"{show(key)} is not a searchable TrainConfig key"
                                           f"{did_you_mean(key, [t for t in types if t not in RESERVED])}")
        if key == "epochs":
            raise Invalid("params.epochs", "epochs cannot be searched: it is ASHA's budget (max_t); set fixed.epochs")
        if key in fixed:
            raise Invalid(f"params.{key}", f"{key} is both fixed and searched; keep one")
        params[key] = parse_param(key, spec, types[key])
    return check.resolve_conditions(params, raw, fixed, types)
