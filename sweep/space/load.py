"""`load_space`: a YAML file (+ overrides, + smoke mode) -> a validated, frozen `SweepSpec`.

Everything is checked before Ray starts; any mistake is a `SpaceError` naming the file, the key path,
the bad value and what is allowed. The format is documented in search_spaces/README.md.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from trainables.config import TrainConfig, config_fields
from trainables.errors import did_you_mean

from .. import trial_schedulers
from . import check, objectives, sections
from . import overrides as ov
from .conditions import resolve_conditions
from .errors import Invalid, SpaceError
from .params import Param, parse_param
from .spec import SweepSpec
from .values import field_value, freeze, mapping, show, string
from .yaml_file import read_yaml

# TrainConfig keys the data: section owns, and keys that cannot be searched.
RESERVED = {"data": "data.path", "download": "data.download"}
SECTIONS = ("name", "description", "metric", "mode", "objectives", "pick", "select", "fixed", "params", "sampler",
            "trial_scheduler", "asha", "trials", "resources", "retrain", "data", "ood_val", "enqueue", "smoke")
SMOKE_SECTIONS = ("fixed", "params", "sampler", "trial_scheduler", "asha", "trials", "resources", "retrain", "data",
                  "ood_val", "enqueue")


def load_space(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None, *,
               smoke: bool = False) -> SweepSpec:
    """Read, validate and freeze a search space.

    `overrides` ({"trials.num_samples": 8}; None values = not given) win over the file and, with
    `smoke=True`, over its smoke: section too: file < smoke < overrides. The smoke variant is built and
    checked either way, so a file whose smoke mode is broken fails now, not at --smoke-test time.
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
    changes = ov.given(overrides)
    source = os.path.abspath(shown)
    spec = None
    try:
        spec = _build(ov.apply(raw, changes, shown), source)
        small = ov.apply(ov.smoke_form(spec), changes, shown)  # explicit overrides beat the smoke: section
        small["name"] = f"{spec.name}-smoke"  # even with --set name=x: smoke results never mix with real ones
        small_spec = _build(small, source, smoke_applied=True)
    except Invalid as exc:
        raise SpaceError(f"{shown}: {_where(exc, spec, changes)}") from None
    return small_spec if smoke else spec


def _where(exc: Invalid, spec: SweepSpec | None, changes: dict) -> str:
    """'key.path: message (why)' pointing at the line that set the bad value."""
    where, note = exc.path, ""
    if ov.touches(changes, where):
        note = " (set by an override)" if spec is None else " (set by an override, in smoke mode)"
    elif spec is not None:  # the smoke variant failed: point into smoke: when the value came from there
        where, note = (f"smoke.{where}", "") if ov.holds(spec.smoke, where) else \
            (where, " (in smoke mode: narrow it under the smoke: section)")
    return f"{where}: {exc.message}{note}"


def _nearby(shown: str) -> str:
    folder = os.path.dirname(shown) or "."
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith((".yaml", ".yml")))
    except OSError:
        return ""
    return did_you_mean(os.path.basename(shown), names) if names else ""


def _build(raw: dict, source_path: str, smoke_applied: bool = False) -> SweepSpec:
    mapping(raw, "", SECTIONS)
    types = config_fields()
    default_name = os.path.splitext(os.path.basename(source_path))[0]
    name = string(raw.get("name", default_name), "name", r"[A-Za-z0-9_-]+", "use letters, digits, _ and -")
    description = string(raw.get("description", ""), "description")
    goals, pick, select = objectives.read(raw)

    fixed = _fixed(raw.get("fixed"), types)
    params = _params(raw.get("params"), fixed, types)
    check.check_values(fixed, params)

    parts = sections.read(raw, fixed["epochs"], n_objectives=len(goals))
    context = trial_schedulers.Context(fixed["epochs"], params, parts["trials"].checkpoint_every)
    section, where = _scheduler_section(raw)
    parts["trial_scheduler"] = trial_schedulers.read(section, context, where)
    _check_ood_val(goals, parts["ood_val"], fixed, params)
    enqueue = check.check_enqueue(raw.get("enqueue"), fixed, params, types)
    smoke = {} if raw.get("smoke") is None else raw["smoke"]
    mapping(smoke, "smoke", SMOKE_SECTIONS)
    for key in smoke.get("fixed") if isinstance(smoke.get("fixed"), dict) else ():
        if key in {p.name for p in params}:
            raise Invalid(f"smoke.fixed.{key}", f"{key} is searched; shrink it under smoke.params.{key} instead")
    small = ov.smoke_defaults(fixed, parts, tuple(p.name for p in params), parts["trial_scheduler"])
    return SweepSpec(source_path, name, description, goals, pick, select, freeze(fixed), params, enqueue=enqueue,
                     smoke=freeze(ov.merge(small, smoke)), smoke_applied=smoke_applied,
                     **parts)


def _scheduler_section(raw: dict) -> tuple[object, str]:
    """(the trial_scheduler: mapping, its key path for messages). `asha:` is ASHA's settings under its old name: the
    section itself when no trial_scheduler: is given (every file before the table), merged under it when the
    scheduler is ASHA, and not used by another one (a file's asha: stays valid with --set trial_scheduler.type)."""
    section, asha = raw.get("trial_scheduler"), raw.get("asha")
    if asha is not None and not isinstance(asha, dict):
        raise Invalid("asha", f"{show(asha)} is not a mapping; write e.g. {{grace_period: 3, reduction_factor: 3}}")
    if section is None:
        return {"type": "asha", **(asha or {})}, "asha"
    if isinstance(section, dict) and section.get("type", "asha") == "asha" and asha:
        return {**asha, **section}, "trial_scheduler"
    return section, "trial_scheduler"


def _check_ood_val(goals: tuple, ood, fixed: dict, params) -> None:
    for i, goal in enumerate(goals):
        if goal.metric.startswith("ood_val") and not ood.corruptions:
            where = "metric" if len(goals) == 1 else f"objectives[{i}].metric"
            raise Invalid(where, f"{goal.metric} needs ood_val.corruptions: the corruptions to score validation "
                                 f"images under, e.g. ood_val: {{corruptions: [gaussian_noise, fog, contrast]}}")
    if not ood.corruptions:
        return
    searched = [p.name for p in params if p.name in ("val_fraction", "subset")]
    if searched:
        raise Invalid(f"params.{searched[0]}", "is searched, but ood_val corrupts one fixed validation split; "
                                               "fix it under fixed:")
    if fixed.get("val_fraction", TrainConfig.val_fraction) == 0:
        raise Invalid("ood_val", "needs validation images, but fixed.val_fraction is 0")


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
    return resolve_conditions(params, raw, fixed, types)
